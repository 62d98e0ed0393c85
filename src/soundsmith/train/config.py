"""Training hyperparameters: one :class:`TrainConfig` for every model family."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from soundsmith.errors import ConfigError

SCHEDULES = ("constant", "cosine", "step")
PRECISIONS = ("32-true", "bf16-mixed")
STRATEGIES = ("auto", "ddp", "fsdp")


@dataclass
class TrainConfig:
    """How to train (not what): the loop, optimizer, schedule, precision and hardware.

    ``batch_size`` is the global batch per optimizer step: ``batch_size = micro_batch * grad_accum * world_size``.
    Steps count optimizer iterations (a step skipped by the NaN guard still counts toward ``max_steps``).
    DataLoader workers are a data setting: ``data.num_workers`` (``train.num_workers`` is refused).
    The optimizer fields (``lr``, ``betas``, ``weight_decay``, the schedule, ``clip_grad_norm``) are the defaults an
    objective's optimizers follow; an objective with several optimizers may give each its own through
    :class:`~soundsmith.train.optimizers.OptimizerSpec`.
    """

    max_steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"  # constant | cosine | step
    warmup_steps: int = 0
    step_every_epochs: int = 10  # schedule="step": multiply the LR by step_gamma every this many epochs
    step_gamma: float = 0.5
    min_lr_ratio: float = 0.0  # schedule="cosine": final LR = lr * min_lr_ratio
    clip_grad_norm: float = 1.0  # 0 = no clipping (the norm is still computed for the NaN guard)
    ema_decay: float = 0.0  # 0 = no EMA weights
    precision: str = "32-true"  # 32-true | bf16-mixed
    valid_every: int = 500  # 0 = never (except at the end when a validation set is given)
    sample_every: int = 1000  # 0 = never
    checkpoint_every: int = 500  # 0 = only at the end
    keep_last: int = 3
    seed: int = 0
    log_every: int = 50
    nan_patience: int = 5  # consecutive non-finite steps before restoring the last checkpoint
    nan_lr_factor: float = 0.5  # LR multiplier applied at each restore
    max_nan_restores: int = 3
    # > 1: a step whose loss exceeds spike_factor x the running mean of recent losses (per optimizer) is treated
    # like a non-finite one (update skipped; nan_patience in a row restore the last checkpoint). 0 = off.
    spike_factor: float = 0.0
    accelerator: str = "auto"  # cpu | cuda | gpu | mps | auto
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # YAML gives lists
        positive = ("max_steps", "batch_size", "grad_accum", "keep_last", "num_nodes", "nan_patience")
        for key in positive:
            _check_int(key, getattr(self, key), minimum=1)
        non_negative = (
            "warmup_steps",
            "valid_every",
            "sample_every",
            "checkpoint_every",
            "seed",
            "max_nan_restores",
        )
        for key in non_negative:
            _check_int(key, getattr(self, key), minimum=0)
        _check_int("step_every_epochs", self.step_every_epochs, minimum=1)
        _check_int("log_every", self.log_every, minimum=1)
        if not (_finite(self.lr) and self.lr > 0):
            raise ConfigError(f"train.lr must be a positive number, got {self.lr!r}")
        if not (_finite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"train.betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"train.schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        if not (_finite(self.step_gamma) and 0 < self.step_gamma <= 1):
            raise ConfigError(f"train.step_gamma must be in (0, 1], got {self.step_gamma!r}")
        if not (_finite(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1):
            raise ConfigError(f"train.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if not (_finite(self.clip_grad_norm) and self.clip_grad_norm >= 0):
            raise ConfigError(f"train.clip_grad_norm must be >= 0 (0 = off), got {self.clip_grad_norm!r}")
        if not (_finite(self.ema_decay) and 0 <= self.ema_decay < 1):
            raise ConfigError(f"train.ema_decay must be in [0, 1) (0 = off), got {self.ema_decay!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"train.precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"
            )
        if not (_finite(self.nan_lr_factor) and 0 < self.nan_lr_factor <= 1):
            raise ConfigError(f"train.nan_lr_factor must be in (0, 1], got {self.nan_lr_factor!r}")
        if not (_finite(self.spike_factor) and (self.spike_factor == 0 or self.spike_factor > 1)):
            raise ConfigError(f"train.spike_factor must be 0 (off) or > 1, got {self.spike_factor!r}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"train.strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}")
        if not isinstance(self.accelerator, str) or not self.accelerator:
            raise ConfigError(
                f"train.accelerator must be a name such as 'cpu', 'cuda' or 'auto', got {self.accelerator!r}"
            )
        if isinstance(self.devices, bool) or not (
            (isinstance(self.devices, int) and (self.devices >= 1 or self.devices == -1))
            or (isinstance(self.devices, str) and self.devices)
        ):
            raise ConfigError(f"train.devices must be a positive int, -1 or 'auto', got {self.devices!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a (YAML) mapping; an unknown key is a ConfigError naming it and listing the valid ones."""
        known = {f.name for f in fields(cls)}
        if "num_workers" in values:
            raise ConfigError(
                "train.num_workers is not a train key: DataLoader workers are set by data.num_workers; "
                "move the value there"
            )
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown train key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**values)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"train.{key} must be an integer >= {minimum}, got {value!r}")
