"""Thin adapters to the audio and data packages, with minimal fallbacks.

The evaluation suite was written while `soundsmith.audio` and `soundsmith.data` were being written in parallel.
Every function here prefers the real implementation (docs/CONTRACTS.md) and falls back to a minimal one only
when that package is not importable yet. Once both packages have landed, the fallbacks can be deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundsmith.errors import AudioError, ManifestError


@dataclass
class MelConfig:  # fallback copy of soundsmith.audio.MelConfig (same fields and defaults)
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    win_length: int = 1024
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0


_FILTER_CACHE: dict[tuple, torch.Tensor] = {}


def _fallback_mel(x: torch.Tensor, cfg: Any) -> torch.Tensor:
    import librosa

    key = (cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    if key not in _FILTER_CACHE:
        fb = librosa.filters.mel(
            sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax
        )
        _FILTER_CACHE[key] = torch.from_numpy(fb).float()
    fb = _FILTER_CACHE[key]
    shape = x.shape
    window = torch.hann_window(cfg.win_length, device=x.device)
    spec = torch.stft(
        x.reshape(-1, shape[-1]).float(),
        cfg.n_fft,
        cfg.hop_length,
        cfg.win_length,
        window=window,
        center=True,
        return_complex=True,
    )
    mel = fb.to(x.device) @ spec.abs()  # [N, n_mels, frames]
    return torch.log(torch.clamp(mel, min=1e-5)).reshape(*shape[:-1], cfg.n_mels, -1)


def log_mel(audio: torch.Tensor | np.ndarray, cfg: Any) -> torch.Tensor:
    """Log-mel `[..., n_mels, frames]` of audio `[..., T]` (soundsmith.audio.mel_spectrogram when present)."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    try:
        from soundsmith.audio import mel_spectrogram
    except ImportError:
        return _fallback_mel(x, cfg)
    return mel_spectrogram(x, cfg, log=True)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Mono float32 `[T]` at `sample_rate` (soundsmith.audio.load_audio when present)."""
    try:
        from soundsmith.audio import load_audio as real_load
    except ImportError:
        real_load = None
    if real_load is not None:
        audio, _ = real_load(path, sample_rate=sample_rate, mono=True)
        return np.asarray(audio, dtype=np.float32)
    import soundfile as sf
    import soxr

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types
        raise AudioError(f"{path}: cannot read audio ({exc}); check the file is a valid WAV/FLAC/OGG") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the audio file is empty; regenerate or remove it")
    mono = data.mean(axis=1)
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: audio contains NaN or Inf samples; regenerate the file")
    return mono.astype(np.float32)


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
    """Rows of a manifest (soundsmith.data.read_manifest when present, else plain JSONL)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: manifest not found; pass the path of a manifest .jsonl file")
    try:
        from soundsmith.data import read_manifest
    except ImportError:
        read_manifest = None
    rows: list[Row] = []
    if read_manifest is not None:
        m = read_manifest(manifest)
        for r in m.rows:
            path = Path(r.audio_path(m.root))
            rows.append(Row(r.id, path, list(r.labels or []), list(r.captions or []), dict(r.meta or {}), r.split))
        return rows
    for n, line in enumerate(manifest.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            audio = d["audio"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ManifestError(f"{manifest}, row {n}: not a JSON object with an 'audio' key ({exc})") from exc
        meta = d.get("meta") or {}
        rows.append(
            Row(
                id=str(meta.get("id", audio)),
                path=(manifest.parent / audio) if not Path(audio).is_absolute() else Path(audio),
                labels=list(d.get("labels") or []),
                captions=list(d.get("captions") or []),
                meta=dict(meta),
                split=str(d.get("split", "")),
            )
        )
    return rows
