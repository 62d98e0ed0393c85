"""What a run shows: metrics.jsonl, TensorBoard scalars, a loss-curve PNG, sample WAVs and spectrograms.

Only rank 0 writes; other ranks get a monitor with ``enabled=False`` whose methods do nothing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


class Monitor:
    """Writes under ``out_dir``: ``metrics.jsonl``, ``tb/``, ``loss.png``, ``samples/``."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self._writer = None
        self._history: dict[str, list[tuple[int, float]]] = {}
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._load_history()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.out_dir / "tb"))
            except Exception as e:  # tensorboard missing or broken: the JSONL log still works
                log.warning("TensorBoard logging off: %s", e)

    def _load_history(self) -> None:
        """Reload earlier curves from metrics.jsonl (resumed runs keep their whole loss plot)."""
        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            self._remember(row)

    def _remember(self, row: dict[str, Any]) -> None:
        step = row.get("step")
        for key in ("train/loss", "valid/loss"):
            if (
                key in row
                and step is not None
                and isinstance(row[key], (int, float))
                and math.isfinite(row[key])
            ):
                # a resumed run replays steps: drop the points it supersedes
                points = [p for p in self._history.get(key, []) if p[0] < step]
                self._history[key] = points + [(int(step), float(row[key]))]

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """One JSON line ``{"step": ..., **metrics}`` and a TensorBoard scalar per numeric metric."""
        if not self.enabled:
            return
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        self._remember(row)
        if self._writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def plot_losses(self) -> Path | None:
        """Redraw ``loss.png`` (train and validation loss against step)."""
        if not self.enabled or not self._history:
            return None
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for key, points in sorted(self._history.items()):
            steps, values = zip(*points)
            ax.plot(steps, values, label=key, marker="o" if len(points) < 20 else None)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if all(v > 0 for pts in self._history.values() for _, v in pts):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = self.out_dir / "loss.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def log_audio(self, step: int, audio: torch.Tensor | np.ndarray, sample_rate: int) -> list[Path]:
        """Save ``audio [N, T]`` as ``samples/step-XXXXXXX-i.wav`` with a spectrogram PNG beside each."""
        if not self.enabled:
            return []
        audio = audio.detach().float().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
        audio = np.nan_to_num(audio.astype(np.float32).reshape(-1, audio.shape[-1]))
        folder = self.out_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, clip in enumerate(audio):
            path = folder / f"step-{step:07d}-{i}.wav"
            _save_wav(path, clip, sample_rate, {"step": str(step)})
            _save_spectrogram(path.with_suffix(".png"), clip, sample_rate)
            if self._writer is not None:
                peak = float(np.abs(clip).max()) or 1.0
                self._writer.add_audio(
                    f"sample/{i}", torch.from_numpy(clip / max(1.0, peak)), step, sample_rate
                )
            paths.append(path)
        return paths

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().mean().item()
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf
    return value


def _save_wav(path: Path, clip: np.ndarray, sample_rate: int, metadata: dict[str, str]) -> None:
    try:
        from soundsmith.audio import save_audio
    except ImportError:
        save_audio = None
    if save_audio is not None:
        save_audio(path, clip, sample_rate, metadata=metadata)
        return
    import soundfile as sf

    sf.write(str(path), np.clip(clip, -1.0, 1.0), sample_rate)


def _save_spectrogram(path: Path, clip: np.ndarray, sample_rate: int) -> None:
    """Log-mel image (soundsmith.audio.mel_spectrogram when available, else a log-magnitude STFT)."""
    try:
        from soundsmith.audio import MelConfig, mel_spectrogram

        cfg = MelConfig(sample_rate=sample_rate, fmax=sample_rate / 2)
        image = mel_spectrogram(torch.from_numpy(clip), cfg).numpy()
        hop = cfg.hop_length
    except Exception:  # audio module not there (yet) or a rate its defaults do not fit
        hop = 256
        x = torch.from_numpy(clip)
        n_fft = 1024 if x.numel() >= 1024 else max(16, 1 << (x.numel().bit_length() - 1))
        window = torch.hann_window(n_fft)
        spec = torch.stft(x, n_fft, hop_length=min(hop, n_fft // 4), window=window, return_complex=True)
        image = torch.log(spec.abs().clamp(min=1e-5)).numpy()
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.imshow(image, origin="lower", aspect="auto", cmap="magma")
    ax.set_xlabel(f"frame (hop {hop} at {sample_rate} Hz)")
    ax.set_ylabel("bin")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


class TrainWindow:
    """Training metrics and throughput since the last log line (means per key over the steps that logged it)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.steps, self.samples, self.audio_s = 0, 0, 0.0
        self.t0 = time.perf_counter()

    def add(self, metrics: dict[str, float], samples: int, audio_s: float) -> None:
        """One step's metrics; an optimizer that steps every k steps adds its keys every k steps."""
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1
        self.steps += 1
        self.samples += samples
        self.audio_s += audio_s

    def means(self) -> dict[str, float]:
        return {k: v / self.counts[k] for k, v in self.sums.items()}

    def rates(self) -> tuple[float, float]:
        """``(samples per second, seconds of audio per second)`` since :meth:`reset`."""
        elapsed = max(1e-9, time.perf_counter() - self.t0)
        return self.samples / elapsed, self.audio_s / elapsed
