"""Fixtures for the server tests: a tiny saved WaveNet, and a gated fake family to hold jobs in the queue."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from soundsmith.errors import ConfigError
from soundsmith.pipelines.base import Pipeline

TINY_WAVENET = dict(
    residual_channels=8, dilation_channels=8, skip_channels=16, stacks=1, layers_per_stack=5, sample_rate=8000
)


@pytest.fixture(scope="session")
def wavenet_dir(tmp_path_factory) -> Path:
    """A tiny, untrained WaveNet saved as a model directory (the server serves it like any other)."""
    from soundsmith.models.registry import save_model
    from soundsmith.models.wavenet import WaveNet, WaveNetConfig

    torch.manual_seed(0)
    return save_model(
        WaveNet(WaveNetConfig(**TINY_WAVENET)), tmp_path_factory.mktemp("models") / "tiny-wavenet"
    )


@dataclass
class GateConfig:
    sample_rate: int = 8000


class GateModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.config = GateConfig()
        self.gain = torch.nn.Parameter(torch.tensor(0.5))


class GatePipeline(Pipeline):
    """A fake family: waits until ``gate`` opens (so tests can fill the queue), then returns sines.

    The prompt ``"refuse"`` raises a user error, ``"crash"`` a bug; it takes ``negative_prompt``.
    """

    family = "gate"

    def __init__(self) -> None:
        super().__init__(GateModel())
        self.gate = threading.Event()
        self.started = threading.Event()
        self.calls: list[dict[str, Any]] = []

    def generate(self, prompt, duration, *, steps, guidance, seeds, progress, negative_prompt=None):
        self.started.set()
        assert self.gate.wait(timeout=20), "test forgot to open the gate"
        self.calls.append({"prompt": prompt, "negative_prompt": negative_prompt, "steps": steps})
        if prompt == "refuse":
            raise ConfigError("this model refuses the prompt 'refuse'")
        if prompt == "crash":
            raise RuntimeError("boom")
        t = np.arange(int(round(duration * self.sample_rate))) / self.sample_rate
        audio = np.stack([0.1 * (1 + s % 5) * np.sin(2 * np.pi * 440 * t) for s in seeds]).astype(np.float32)
        return audio, {"negative_prompt": negative_prompt}


@pytest.fixture
def gate() -> GatePipeline:
    pipe = GatePipeline()
    yield pipe
    pipe.gate.set()  # never leave a worker thread blocked
