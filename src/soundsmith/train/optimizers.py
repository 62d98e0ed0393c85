"""Per-optimizer training rules: cadence, warm-up delay, gradient clipping and LR schedule.

An objective's ``configure_optimizers(cfg)`` returns a list whose items are either a bare ``torch.optim.Optimizer``
(every step from step 0, ``TrainConfig``'s clipping and schedule: the original interface) or an
:class:`OptimizerSpec` saying when and how that optimizer steps. A GAN, for example::

    def configure_optimizers(self, cfg):
        gen = torch.optim.AdamW(self.model.parameters(), lr=2e-4, betas=(0.8, 0.99))
        disc = torch.optim.AdamW(self.disc.parameters(), lr=2e-4, betas=(0.8, 0.99))
        return [
            OptimizerSpec(gen),  # index 0: every step, train.* clipping and schedule
            OptimizerSpec(disc, start_step=5000, every=1, clip_grad_norm=10.0,
                          schedule=ScheduleConfig(kind="cosine", warmup_steps=500)),
        ]

Everything here is a pure function of the global step, so a resumed run replays the same cadence exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer

from soundsmith.errors import ConfigError
from soundsmith.train.schedules import ScheduleConfig


@dataclass
class OptimizerSpec:
    """One optimizer and the rules for stepping it.

    Steps are the engine's global optimizer steps, counted from 0 (step ``s`` is the ``s+1``-th batch).

    Attributes:
        optimizer: the optimizer (its param groups carry the base LR; the schedule multiplies it).
        every: step only when ``(s - start_step) % every == 0``; e.g. ``every=2`` on the generator and 1 on the
            discriminator gives two discriminator updates per generator update.
        start_step: inactive before this step (e.g. a discriminator warm-up delay of 5000 generator-only steps).
        clip_grad_norm: max gradient norm for this optimizer's parameters; None = ``train.clip_grad_norm``;
            0 = no clipping (the norm is still computed for the NaN guard).
        schedule: LR schedule; None = the ``train.*`` schedule fields. Its ``warmup_steps`` and the cosine length
            count global steps from ``start_step`` (the cosine ends at ``train.max_steps``).
    """

    optimizer: Optimizer
    every: int = 1
    start_step: int = 0
    clip_grad_norm: float | None = None
    schedule: ScheduleConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, Optimizer):
            raise ConfigError(
                f"OptimizerSpec.optimizer must be a torch.optim.Optimizer, got {type(self.optimizer).__name__}"
            )
        for key, minimum in (("every", 1), ("start_step", 0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"OptimizerSpec.{key} must be an integer >= {minimum}, got {value!r}")
        clip = self.clip_grad_norm
        if clip is not None and not (
            isinstance(clip, (int, float))
            and not isinstance(clip, bool)
            and math.isfinite(clip)
            and clip >= 0
        ):
            raise ConfigError(f"OptimizerSpec.clip_grad_norm must be >= 0 (0 = off) or None, got {clip!r}")
        if self.schedule is not None and not isinstance(self.schedule, ScheduleConfig):
            raise ConfigError(
                f"OptimizerSpec.schedule must be a ScheduleConfig or None, got {type(self.schedule).__name__}"
            )

    def active(self, step: int) -> bool:
        """Whether this optimizer updates at global step ``step`` (0-based)."""
        return step >= self.start_step and (step - self.start_step) % self.every == 0


def as_specs(items: object, owner: str) -> list[OptimizerSpec]:
    """``configure_optimizers``' result as specs (a bare optimizer becomes ``OptimizerSpec(optimizer)``)."""
    if isinstance(items, (Optimizer, OptimizerSpec)):
        items = [items]
    specs = []
    for i, item in enumerate(items):  # type: ignore[attr-defined]
        if isinstance(item, OptimizerSpec):
            specs.append(item)
        elif isinstance(item, Optimizer):
            specs.append(OptimizerSpec(item))
        else:
            raise ConfigError(
                f"{owner}.configure_optimizers item {i} is a {type(item).__name__}; "
                "return torch.optim.Optimizer or OptimizerSpec items"
            )
    if not specs:
        raise ConfigError(f"{owner}.configure_optimizers returned no optimizer")
    return specs
