"""Integrated loudness (ITU-R BS.1770-4, through pyloudnorm) and loudness normalisation.

Audio is ``[T]`` (mono) or ``[C, T]`` with at most 5 channels (BS.1770 channel order L, R, C, Ls, Rs).

Short clips: BS.1770 gates 400 ms blocks. A clip shorter than one block is measured as a single block
spanning the whole clip (the -70 LUFS absolute gate still applies) instead of raising.
Silence (or anything below the -70 LUFS gate) measures ``-inf`` with no warnings, and
``normalize_loudness`` returns it unchanged.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyloudnorm
import torch

from soundsmith.errors import AudioError

# The one silence threshold: a clip whose level (RMS, or peak where a caller says so) is below it counts as silent
# (evaluation's silence rate, fine-tuning's clip check, the CLI's near-silence warning).
SILENCE_DBFS = -60.0
SILENCE_PEAK = 10 ** (SILENCE_DBFS / 20)  # the same threshold as a peak amplitude

ArrayLike = np.ndarray | torch.Tensor

#: BS.1770 gating block, seconds.
BLOCK_SECONDS = 0.4
_MAX_CHANNELS = 5


def _to_frames_first(audio: ArrayLike, sample_rate: int, what: str) -> np.ndarray:
    """``[T]`` / ``[C, T]`` numpy or tensor -> float64 ``[T]`` / ``[T, C]`` as pyloudnorm wants."""
    if sample_rate is None or sample_rate <= 0:
        raise AudioError(f"{what}: sample rate must be positive, got {sample_rate!r}")
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        if x.shape[0] > _MAX_CHANNELS:
            raise AudioError(
                f"{what}: expected [T] or [C, T] with C <= {_MAX_CHANNELS}, got shape {x.shape}; "
                "measure a batch item by item, or transpose a [T, C] array"
            )
        x = x.T
    elif x.ndim != 1:
        raise AudioError(f"{what}: expected audio [T] or [C, T], got shape {x.shape}")
    if x.shape[0] == 0:
        raise AudioError(f"{what}: audio is empty (zero samples)")
    if not np.isfinite(x).all():
        raise AudioError(f"{what}: audio contains NaN or Inf samples")
    return x


def _measure(x: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of frames-first float64 audio, -inf for silence."""
    if not np.any(x):
        return float("-inf")
    block = BLOCK_SECONDS
    if x.shape[0] < block * sample_rate:
        block = x.shape[0] / sample_rate  # one block spanning the whole clip
        while block * sample_rate > x.shape[0]:  # pyloudnorm requires T >= block * rate exactly
            block = np.nextafter(block, 0.0)
    meter = pyloudnorm.Meter(sample_rate, block_size=block)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        lufs = float(meter.integrated_loudness(x))
    return lufs if np.isfinite(lufs) else float("-inf")


def measure_loudness(audio: ArrayLike, sample_rate: int) -> float:
    """Integrated loudness in LUFS of ``[T]`` or ``[C, T]`` audio; ``-inf`` for silence."""
    return _measure(_to_frames_first(audio, sample_rate, "measure_loudness"), sample_rate)


def normalize_loudness(
    audio: ArrayLike, sample_rate: int, target_lufs: float = -23.0, max_peak: float | None = None
) -> ArrayLike:
    """Scale ``[T]`` or ``[C, T]`` audio to ``target_lufs`` integrated loudness.

    The gain may push peaks past 1.0; give ``max_peak`` (e.g. 0.99) to lower the gain until the peak
    fits, at the cost of ending below the target. Silence is returned unchanged. numpy in -> numpy out
    (same dtype), tensor in -> tensor out (same device and dtype).
    """
    x = _to_frames_first(audio, sample_rate, "normalize_loudness")
    lufs = _measure(x, sample_rate)
    if not np.isfinite(lufs):
        gain = 1.0
    else:
        gain = 10.0 ** ((target_lufs - lufs) / 20.0)
        if max_peak is not None:
            top = float(np.max(np.abs(x)))
            if top * gain > max_peak:
                gain = max_peak / top
    if isinstance(audio, torch.Tensor):
        return audio * gain
    out = np.asarray(audio)
    dtype = out.dtype if np.issubdtype(out.dtype, np.floating) else np.float32
    return (out * gain).astype(dtype)
