"""A family declared entirely inside this file passes the same contract checks as the shipped families.

Config dataclass, network, objective, pipeline, tiny preset and declaration all live here; nothing outside
this file names the family. ``families.register`` adds it for the test and ``unregister`` removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from contract_checks import check_all
from torch import nn

import soundsmith
from soundsmith import families
from soundsmith.errors import ModelError
from soundsmith.models.registry import save_model
from soundsmith.pipelines import Pipeline
from soundsmith.train.objectives import Objective, available_objectives, get_objective


@dataclass
class ToyConfig:
    sample_rate: int = 8000
    channels: int = 4


class ToyNet(nn.Module):
    """``audio [B, T] -> features [B, channels, T]`` (a causal-free 3-tap conv, then a 1x1 back to audio)."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.conv = nn.Conv1d(1, config.channels, 3, padding=1)
        self.out = nn.Conv1d(config.channels, 1, 1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(audio.unsqueeze(1)))  # [B, C, T]

    def reconstruct(self, audio: torch.Tensor) -> torch.Tensor:
        return self.out(self(audio)).squeeze(1)  # [B, T]


class ToyObjective(Objective):
    def losses(self, batch: dict[str, Any], opt_index: int) -> dict[str, torch.Tensor]:
        audio = batch["audio"]
        return {"loss": torch.mean((self.model.reconstruct(audio) - audio) ** 2)}


class ToyPipeline(Pipeline):
    family = "toy"

    @torch.no_grad()
    def generate(self, prompt, duration, *, steps, guidance, seeds, progress, **family_kwargs):
        n = int(round(duration * self.sample_rate))
        # 1. noise drawn per candidate from its own seed
        noise = torch.stack([torch.randn(n, generator=torch.Generator().manual_seed(s)) for s in seeds])
        # 2. through the network
        audio = self.model.reconstruct(0.1 * noise).clamp(-1, 1)  # [N, T]
        return audio.numpy().astype(np.float32), {"noise": "gaussian"}


@pytest.fixture
def toy_family(tmp_path):
    preset = tmp_path / "toy_tiny.yaml"
    preset.write_text(
        yaml.safe_dump(
            {
                "family": "toy",
                "model": {"sample_rate": 8000, "channels": 4},
                "data": {"sample_rate": 8000, "clip_seconds": 0.02},
                "train": {"batch_size": 2, "max_steps": 2},
            }
        )
    )
    family = families.register(
        families.Family(
            name="toy",
            config=ToyConfig,
            model=ToyNet,
            objective=ToyObjective,
            pipeline=ToyPipeline,
            description="a test-only family",
            contract_forward=lambda model, b: model(b["audio"]),
            contract_shape=lambda cfg, B, T: (B, cfg.channels, T),
            tiny_config=str(preset),
        )
    )
    yield family
    families.unregister("toy")


def test_toy_family_passes_the_contract_checks(toy_family, tmp_path):
    check_all(toy_family, tmp_path)


def test_toy_family_is_found_by_every_reader(toy_family, tmp_path):
    assert "toy" in families.family_names("generator") and "toy" in available_objectives()
    assert get_objective("toy") is ToyObjective
    torch.manual_seed(0)
    save_model(ToyNet(ToyConfig()), tmp_path / "m")
    pipe = soundsmith.load(tmp_path / "m")
    assert isinstance(pipe, ToyPipeline)
    out = pipe("anything", duration=0.01, seed=2, num_candidates=2)
    assert out.audio.shape == (2, 80) and out.meta["family"] == "toy" and out.meta["noise"] == "gaussian"
    assert (
        out.meta["model"] == str(tmp_path / "m") and out.meta["soundsmith_version"] == soundsmith.__version__
    )


def test_unregistered_family_is_unknown(tmp_path):
    families.register(families.Family(name="toy", config=ToyConfig, model=ToyNet))
    try:
        save_model(ToyNet(ToyConfig()), tmp_path / "m")
    finally:
        families.unregister("toy")
    with pytest.raises(ModelError, match="unknown model family 'toy'; valid families: .*wavenet"):
        soundsmith.load(tmp_path / "m")
