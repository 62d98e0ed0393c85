"""Tiny model, objective and dataset for the training-engine tests (also imported by subprocess scripts)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives.base import Objective

SAMPLE_RATE = 800
LENGTH = 32


@dataclass
class TinyConfig:
    length: int = LENGTH
    hidden: int = 16
    sample_rate: int = SAMPLE_RATE


class TinyNet(nn.Module):
    """``audio [B, T] -> [B, T]``: two linear layers with dropout and a buffer."""

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.inp = nn.Linear(config.length, config.hidden)
        self.drop = nn.Dropout(0.1)
        self.out = nn.Linear(config.hidden, config.length)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.drop(torch.tanh(self.inp(x))))


class TinyObjective(Objective):
    """Denoising MSE; draws its noise from the global torch RNG (so resume must restore RNG state)."""

    find_unused_parameters = False

    def __init__(
        self,
        model: TinyNet,
        nan_calls: set[int] | None = None,
        nan_index: int | None = None,
        spike_calls: set[int] | None = None,
    ) -> None:
        super().__init__(model)
        self.nan_calls = nan_calls or set()
        self.spike_calls = spike_calls or set()  # calls whose loss is x1000: finite, but a divergence
        self.nan_index = nan_index
        self.n_calls = 0
        self.sleep = 0.0
        self.noise = 0.1

    def losses(self, batch: dict[str, Any], opt_index: int) -> dict[str, Tensor]:
        self.n_calls += 1
        x = batch["audio"]  # [B, T]
        noisy = x + self.noise * torch.randn_like(x) if self.noise else x
        loss = (self.model(noisy) - x).pow(2).mean()
        if self.n_calls in self.nan_calls:
            loss = loss * float("nan")
        if self.n_calls in self.spike_calls:
            loss = loss * 1000.0
        if self.nan_index is not None and bool((batch["index"] == self.nan_index).any()):
            loss = loss * float("nan")
        if self.sleep:
            import time

            time.sleep(self.sleep)
        return {"loss": loss, "mae": (self.model(x) - x).abs().mean().detach()}

    @torch.no_grad()
    def sample(self, batch: dict[str, Any]) -> Tensor | None:
        return self.model(batch["audio"]).clamp(-1, 1)


class SineSet(Dataset):
    """``n`` items ``{"audio": [T], "index": int}`` whose content depends on ``(index, epoch)``."""

    def __init__(self, n: int = 32, length: int = LENGTH) -> None:
        self.n, self.length, self.epoch = n, length, 0
        self.bad_files = 0
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(i * 1000 + self.epoch)
        t = torch.arange(self.length, dtype=torch.float32)
        freq = 0.05 + 0.3 * torch.rand((), generator=g)
        audio = 0.5 * torch.sin(2 * math.pi * freq * t) + 0.05 * torch.randn(self.length, generator=g)
        return {"audio": audio, "index": i}


def make_objective(seed: int = 0, **kwargs: Any) -> TinyObjective:
    torch.manual_seed(seed)
    return TinyObjective(TinyNet(TinyConfig()), **kwargs)


def small_config(**overrides: Any) -> TrainConfig:
    values = dict(
        max_steps=8,
        batch_size=8,
        lr=1e-2,
        schedule="cosine",
        warmup_steps=2,
        valid_every=0,
        sample_every=0,
        checkpoint_every=4,
        keep_last=10,
        log_every=2,
        accelerator="cpu",
        devices=1,
        seed=3,
    )
    values.update(overrides)
    return TrainConfig(**values)


def weights(path_or_objective: Any) -> dict[str, Tensor]:
    """Model weights of an objective, or of the newest checkpoint in ``out_dir/checkpoints``."""
    if isinstance(path_or_objective, Objective):
        return {k: v.detach().clone() for k, v in path_or_objective.model.state_dict().items()}
    from soundsmith.train.checkpoint import latest_checkpoint

    found = latest_checkpoint(Path(path_or_objective) / "checkpoints")
    assert found is not None
    return model_state(found[1])


def model_state(checkpoint: dict[str, Any]) -> dict[str, Tensor]:
    """The model weights in a checkpoint (the ``model.*`` entries of its objective state, prefix removed)."""
    state = checkpoint["objective"]
    return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}


def assert_same(a: dict[str, Tensor], b: dict[str, Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0.0:
            assert torch.equal(a[k], b[k]), (
                f"{k} differs: max {float((a[k].float() - b[k].float()).abs().max())}"
            )
        else:
            assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0), (
                f"{k} differs: max {float((a[k].float() - b[k].float()).abs().max())}"
            )


class TinyGanObjective(TinyObjective):
    """Two optimizers: the generator (``model``, AdamW, every step) and a discriminator (SGD with momentum,
    from step ``D_START`` every ``D_EVERY`` steps, its own clipping and cosine schedule with warmup)."""

    D_START, D_EVERY, D_CLIP, D_LR = 3, 2, 0.5, 0.05

    def __init__(self, model: TinyNet) -> None:
        super().__init__(model)
        self.disc = nn.Sequential(nn.Linear(LENGTH, 16), nn.Tanh(), nn.Linear(16, 1))

    def configure_optimizers(self, cfg: TrainConfig) -> list[Any]:
        from soundsmith.train.optimizers import OptimizerSpec
        from soundsmith.train.schedules import ScheduleConfig

        gen = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=cfg.betas)
        disc = torch.optim.SGD(self.disc.parameters(), lr=self.D_LR, momentum=0.9)
        schedule = ScheduleConfig(kind="cosine", warmup_steps=2, min_lr_ratio=0.1)
        return [
            gen,  # a bare optimizer: the old interface, train.* clipping and schedule
            OptimizerSpec(disc, every=self.D_EVERY, start_step=self.D_START, clip_grad_norm=self.D_CLIP,
                          schedule=schedule),
        ]  # fmt: skip

    def losses(self, batch: dict[str, Any], opt_index: int) -> dict[str, Tensor]:
        x = batch["audio"]  # [B, T]
        fake = self.model(x + self.noise * torch.randn_like(x))  # [B, T]; global RNG: resume must restore it
        if opt_index == 0:
            recon = (fake - x).pow(2).mean()
            adv = (
                nn.functional.softplus(-self.disc(fake)).mean()
                if 1 in self.active_optimizers
                else 0.0 * recon
            )
            return {"loss": recon + 0.1 * adv, "adv": adv.detach()}
        real_logit, fake_logit = self.disc(x), self.disc(fake.detach())  # [B, 1]
        loss = nn.functional.softplus(-real_logit).mean() + nn.functional.softplus(fake_logit).mean()
        return {"loss": 10.0 * loss}  # large gradients, so that the discriminator's clipping binds


def make_gan_objective(seed: int = 0) -> TinyGanObjective:
    torch.manual_seed(seed)
    return TinyGanObjective(TinyNet(TinyConfig()))


def objective_weights(path_or_objective: Any) -> dict[str, Tensor]:
    """All weights of an objective (model and discriminator), or of the newest checkpoint in ``out_dir``."""
    if isinstance(path_or_objective, Objective):
        return {k: v.detach().clone() for k, v in path_or_objective.state_dict().items()}
    from soundsmith.train.checkpoint import latest_checkpoint

    found = latest_checkpoint(Path(path_or_objective) / "checkpoints")
    assert found is not None
    return dict(found[1]["objective"])
