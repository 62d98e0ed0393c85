"""Learning-rate schedules as ``LambdaLR`` multipliers whose state round-trips through ``state_dict``.

A schedule is a small callable object (not a closure) so that ``LambdaLR.state_dict()`` stores its fields as
plain numbers and a checkpoint restores it exactly. ``scale`` carries the NaN guard's LR reductions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from soundsmith.errors import ConfigError
from soundsmith.train.config import SCHEDULES, TrainConfig


@dataclass
class ScheduleConfig:
    """An LR schedule's shape (the ``train.*`` schedule fields, for one optimizer); see :class:`LRMultiplier`."""

    kind: str = "constant"  # constant | cosine | step
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    step_every_epochs: int = 10
    step_gamma: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ConfigError(f"ScheduleConfig.kind must be one of {', '.join(SCHEDULES)}; got {self.kind!r}")
        for key, minimum in (("warmup_steps", 0), ("step_every_epochs", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"ScheduleConfig.{key} must be an integer >= {minimum}, got {value!r}")
        if not (0 <= self.min_lr_ratio <= 1):
            raise ConfigError(f"ScheduleConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if not (0 < self.step_gamma <= 1):
            raise ConfigError(f"ScheduleConfig.step_gamma must be in (0, 1], got {self.step_gamma!r}")

    @classmethod
    def from_train(cls, cfg: TrainConfig) -> ScheduleConfig:
        return cls(cfg.schedule, cfg.warmup_steps, cfg.min_lr_ratio, cfg.step_every_epochs, cfg.step_gamma)


class LRMultiplier:
    """``step -> factor`` (the LR is ``base_lr * factor``), with a linear warmup from ``1 / warmup`` to 1.

    * ``constant``: 1 after warmup.
    * ``cosine``: from 1 down to ``min_lr_ratio`` over ``warmup_steps .. max_steps``.
    * ``step``: ``step_gamma ** (epoch // step_every_epochs)`` with ``epoch = step // steps_per_epoch``.

    ``stride``: global steps per scheduler step (an optimizer that updates every ``stride`` steps calls
    ``.step()`` once per update, so update ``u`` reads the factor of global step ``u * stride``).
    """

    def __init__(
        self,
        kind: str,
        max_steps: int,
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        steps_per_epoch: int = 1,
        step_every_epochs: int = 10,
        step_gamma: float = 0.5,
        scale: float = 1.0,
        stride: int = 1,
    ) -> None:
        if kind not in ("constant", "cosine", "step"):
            raise ConfigError(f"unknown LR schedule {kind!r}; use constant, cosine or step")
        if steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.kind = kind
        self.max_steps = int(max_steps)
        self.warmup_steps = int(warmup_steps)
        self.min_lr_ratio = float(min_lr_ratio)
        self.steps_per_epoch = int(steps_per_epoch)
        self.step_every_epochs = int(step_every_epochs)
        self.step_gamma = float(step_gamma)
        self.scale = float(scale)
        self.stride = int(stride)

    def __call__(self, step: int) -> float:
        return self.scale * self.unscaled(step)

    def unscaled(self, step: int) -> float:
        step = step * getattr(self, "stride", 1)  # checkpoints written before per-optimizer schedules lack it
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        if self.kind == "constant":
            return warm
        if self.kind == "cosine":
            span = max(1, self.max_steps - self.warmup_steps)
            progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
            return warm * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
        epoch = step // self.steps_per_epoch
        return warm * self.step_gamma ** (epoch // self.step_every_epochs)


class ScheduledOptimizer(Protocol):
    """What a schedule reads of an optimizer's rules (``soundsmith.train.optimizers.OptimizerSpec`` has it; the
    protocol keeps this module from importing that one, which imports this)."""

    schedule: ScheduleConfig | None
    start_step: int
    every: int


def _shape(cfg: TrainConfig, spec: ScheduledOptimizer | None) -> tuple[ScheduleConfig, int, int]:
    """(schedule, length in global steps from the optimizer's start, stride) for one optimizer."""
    if spec is None:
        return ScheduleConfig.from_train(cfg), cfg.max_steps, 1
    shape = spec.schedule or ScheduleConfig.from_train(cfg)
    return shape, max(1, cfg.max_steps - spec.start_step), spec.every


def build_scheduler(
    optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int, spec: ScheduledOptimizer | None = None
) -> LambdaLR:
    """A ``LambdaLR`` for ``optimizer`` following ``spec.schedule`` (or ``cfg.schedule``); call ``.step()`` after
    each update of that optimizer."""
    shape, length, stride = _shape(cfg, spec)
    multiplier = LRMultiplier(
        shape.kind,
        max_steps=length,
        warmup_steps=shape.warmup_steps,
        min_lr_ratio=shape.min_lr_ratio,
        steps_per_epoch=steps_per_epoch,
        step_every_epochs=shape.step_every_epochs,
        step_gamma=shape.step_gamma,
        stride=stride,
    )
    return LambdaLR(optimizer, multiplier)


def reconfigure(
    scheduler: LambdaLR, cfg: TrainConfig, steps_per_epoch: int, spec: ScheduledOptimizer | None = None
) -> None:
    """Give a restored scheduler the schedule shape of the current config (kind, length, warmup, steps).

    ``LambdaLR.load_state_dict`` brings back the multiplier's fields as they were when the checkpoint was written;
    a run resumed with another ``--max-steps`` (or schedule setting) must follow the new one. The step counter and
    the NaN-recovery ``scale`` stay as restored; call :func:`set_lr_scale` afterwards to apply the LR.
    """
    shape, length, stride = _shape(cfg, spec)
    for fn in scheduler.lr_lambdas:
        if isinstance(fn, LRMultiplier):
            fn.kind = shape.kind
            fn.max_steps = int(length)
            fn.warmup_steps = int(shape.warmup_steps)
            fn.min_lr_ratio = float(shape.min_lr_ratio)
            fn.steps_per_epoch = int(steps_per_epoch)
            fn.step_every_epochs = int(shape.step_every_epochs)
            fn.step_gamma = float(shape.step_gamma)
            fn.stride = int(stride)


def set_lr_scale(scheduler: LambdaLR, scale: float) -> None:
    """Set the extra LR factor (NaN recovery) on every group and apply it to the optimizer now."""
    for fn in scheduler.lr_lambdas:
        if isinstance(fn, LRMultiplier):
            fn.scale = float(scale)
    step = scheduler.last_epoch
    lrs = [base * fn(step) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs  # what get_last_lr() reports
