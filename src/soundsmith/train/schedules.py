"""Learning-rate schedules as ``LambdaLR`` multipliers whose state round-trips through ``state_dict``.

A schedule is a small callable object (not a closure) so that ``LambdaLR.state_dict()`` stores its fields as
plain numbers and a checkpoint restores it exactly. ``scale`` carries the NaN guard's LR reductions.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from soundsmith.errors import ConfigError
from soundsmith.train.config import TrainConfig


class LRMultiplier:
    """``step -> factor`` (the LR is ``base_lr * factor``), with a linear warmup from ``1 / warmup`` to 1.

    * ``constant``: 1 after warmup.
    * ``cosine``: from 1 down to ``min_lr_ratio`` over ``warmup_steps .. max_steps``.
    * ``step``: ``step_gamma ** (epoch // step_every_epochs)`` with ``epoch = step // steps_per_epoch``.
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

    def __call__(self, step: int) -> float:
        return self.scale * self.unscaled(step)

    def unscaled(self, step: int) -> float:
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


def build_scheduler(optimizer: Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    """A ``LambdaLR`` for ``optimizer`` following ``cfg.schedule``; call ``.step()`` after each optimizer step."""
    multiplier = LRMultiplier(
        cfg.schedule,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_steps,
        min_lr_ratio=cfg.min_lr_ratio,
        steps_per_epoch=steps_per_epoch,
        step_every_epochs=cfg.step_every_epochs,
        step_gamma=cfg.step_gamma,
    )
    return LambdaLR(optimizer, multiplier)


def reconfigure(scheduler: LambdaLR, cfg: TrainConfig, steps_per_epoch: int) -> None:
    """Give a restored scheduler the schedule shape of the current config (kind, length, warmup, steps).

    ``LambdaLR.load_state_dict`` brings back the multiplier's fields as they were when the checkpoint was written;
    a run resumed with another ``--max-steps`` (or schedule setting) must follow the new one. The step counter and
    the NaN-recovery ``scale`` stay as restored; call :func:`set_lr_scale` afterwards to apply the LR.
    """
    for fn in scheduler.lr_lambdas:
        if isinstance(fn, LRMultiplier):
            fn.kind = cfg.schedule
            fn.max_steps = int(cfg.max_steps)
            fn.warmup_steps = int(cfg.warmup_steps)
            fn.min_lr_ratio = float(cfg.min_lr_ratio)
            fn.steps_per_epoch = int(steps_per_epoch)
            fn.step_every_epochs = int(cfg.step_every_epochs)
            fn.step_gamma = float(cfg.step_gamma)


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
