"""Thin adapters from the evaluation suite to `soundsmith.audio` and `soundsmith.data` (docs/CONTRACTS.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundsmith.audio import MelConfig, mel_spectrogram
from soundsmith.audio import load_audio as _load_audio
from soundsmith.errors import ManifestError

__all__ = ["MelConfig", "Row", "load_audio", "log_mel", "read_rows"]


def log_mel(audio: torch.Tensor | np.ndarray, cfg: Any) -> torch.Tensor:
    """Log-mel `[..., n_mels, frames]` of audio `[..., T]`."""
    return mel_spectrogram(torch.as_tensor(audio, dtype=torch.float32), cfg, log=True)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Mono float32 `[T]` at `sample_rate` (raises AudioError naming the file)."""
    audio, _ = _load_audio(path, sample_rate=sample_rate, mono=True)
    return np.asarray(audio, dtype=np.float32)


@dataclass
class Row:
    """The few manifest fields the evaluation uses."""

    id: str
    path: Path
    labels: list[str]
    captions: list[str]
    meta: dict
    split: str


def read_rows(manifest: str | Path) -> list[Row]:
    """Rows of a manifest with resolved audio paths (ids: `meta["id"]`, else the `audio` string)."""
    from soundsmith.data import read_manifest

    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: manifest not found; pass the path of a manifest .jsonl file")
    m = read_manifest(manifest)
    return [
        Row(r.id, Path(r.audio_path(m.root)), list(r.labels), list(r.captions), dict(r.meta), r.split)
        for r in m.rows
    ]
