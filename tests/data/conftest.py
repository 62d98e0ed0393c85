"""Fixtures for the soundsmith.data tests: tiny WAV files written with soundfile."""

import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def write_tone(
    path: Path, seconds: float = 0.5, sr: int = 8000, freq: float = 440.0, channels: int = 1
) -> Path:
    """A sine tone (plus a little seeded noise) as 16-bit WAV/FLAC at ``path``; parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    if channels > 1:
        x = np.stack([x] * channels, axis=1)
    sf.write(str(path), x.astype(np.float32), sr)
    return path


@pytest.fixture
def tone():
    """``tone(path, seconds=0.5, sr=8000, freq=440.0, channels=1) -> path``."""
    return write_tone
