"""Pitch tracks for attribute checks: pYIN (librosa, the default) or torchcrepe (optional).

``track_pitch(audio [T], sr)`` returns a :class:`PitchTrack` (f0 per frame, NaN where unvoiced, and which
frames carry sound), from which the attribute checks read a clip's median pitch, its lowest sustained pitch
(the root of a phrase), the direction of its pitch movement and how tonal it is.

Measured on corpus notes with known MIDI pitch (docs/evaluation.md, ``scripts/pitch_accuracy.py``): pYIN is
the default; torchcrepe needs ``pip install torchcrepe``, whose import needs a torchaudio matching torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from soundsmith.errors import ModelError

FMIN_HZ = 30.0  # below the corpus's lowest note (bass E1, 41 Hz)
FMAX_HZ = (
    2100.0  # above the corpus's highest note (C7, 2093 Hz); sweeps go higher, their lower part is tracked
)
FRAME = 2048
HOP = 512
# pYIN's defaults (0.1-semitone grid, 100 thresholds) cost ~17x more on CPU; a 0.25-semitone grid keeps the
# error well inside the 50-cent tolerance (median error measured in docs/evaluation.md)
PYIN_RESOLUTION = 0.25
PYIN_THRESHOLDS = 50
ACTIVE_DB = -35.0  # frames within this many dB of the clip's loudest frame carry sound
METHODS = ("pyin", "crepe")
FINE_TOLERANCE_CENTS = 50.0  # ``fine``: YIN's reading replaces pYIN's within this of it


@dataclass
class PitchTrack:
    """``f0_hz [F]`` (NaN when unvoiced) and ``active [F]`` (frame energy near the clip's peak)."""

    f0_hz: np.ndarray
    active: np.ndarray
    hop_s: float

    @property
    def voiced(self) -> np.ndarray:
        return self.active & np.isfinite(self.f0_hz)

    def voiced_fraction(self) -> float:
        """Share of sounding frames with a pitch (tonal sounds near 1, noise near 0)."""
        n = int(self.active.sum())
        return float(self.voiced.sum() / n) if n else 0.0

    def median_midi(self) -> float:
        f = self.f0_hz[self.voiced]
        return hz_to_midi(float(np.median(f))) if f.size else math.nan

    def low_midi(self, q: float = 10.0) -> float:
        """The ``q``-th percentile of voiced pitch in MIDI (a phrase's root: its lowest sustained note)."""
        f = self.f0_hz[self.voiced]
        return hz_to_midi(float(np.percentile(f, q))) if f.size else math.nan

    def direction(self, min_semitones: float = 1.0) -> int:
        """+1 rising, -1 falling, 0 flat/unknown: median pitch of the last third of voiced frames against the
        first third, in semitones."""
        f = self.f0_hz[self.voiced]
        if f.size < 6:
            return 0
        k = f.size // 3
        delta = 12.0 * math.log2(float(np.median(f[-k:])) / float(np.median(f[:k])))
        return 0 if abs(delta) < min_semitones else (1 if delta > 0 else -1)


def hz_to_midi(hz: float) -> float:
    return 69.0 + 12.0 * math.log2(hz / 440.0) if hz > 0 else math.nan


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((float(midi) - 69.0) / 12.0)


def cents_error(measured_midi: float, target_midi: float) -> float:
    """|measured - target| in cents (NaN when nothing was measured)."""
    return abs(100.0 * (measured_midi - float(target_midi))) if math.isfinite(measured_midi) else math.nan


def _active_frames(audio: np.ndarray, n_frames: int) -> np.ndarray:
    import librosa

    rms = librosa.feature.rms(y=audio, frame_length=FRAME, hop_length=HOP, center=True)[0][:n_frames]
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    active = db > max(db.max() + ACTIVE_DB, -70.0)
    return np.pad(active, (0, n_frames - active.size))


def track_pitch(
    audio: np.ndarray,
    sr: int,
    method: str = "pyin",
    fmin: float = FMIN_HZ,
    fmax: float = FMAX_HZ,
    fine: bool = False,
) -> PitchTrack:
    """Pitch track of a mono clip ``[T]`` at ``sr`` Hz with ``method`` ("pyin" or "crepe"). ``fine``: each voiced
    frame's f0 read off pYIN's grid (:func:`fine_f0`), for errors smaller than the grid's step."""
    x = np.asarray(audio, dtype=np.float32)
    fmax = min(fmax, sr / 2 - 1)
    if fine and method == "pyin":
        track = track_pitch(x, sr, method, fmin, fmax)
        return PitchTrack(fine_f0(x, sr, track.f0_hz, fmin, fmax), track.active, track.hop_s)
    if method == "pyin":
        import librosa

        f0, voiced, _ = librosa.pyin(
            x,
            fmin=fmin,
            fmax=fmax,
            sr=sr,
            frame_length=FRAME,
            hop_length=HOP,
            center=True,
            resolution=PYIN_RESOLUTION,
            n_thresholds=PYIN_THRESHOLDS,
        )
        f0 = np.where(voiced, f0, np.nan)
    elif method == "crepe":
        f0 = _crepe(x, sr, fmin, fmax)
    else:
        raise ModelError(f"pitch method {method!r}: use one of {', '.join(METHODS)}")
    return PitchTrack(f0_hz=f0.astype(np.float64), active=_active_frames(x, f0.shape[0]), hop_s=HOP / sr)


def fine_f0(
    audio: np.ndarray, sr: int, f0_hz: np.ndarray, fmin: float = FMIN_HZ, fmax: float = FMAX_HZ
) -> np.ndarray:
    """``f0_hz [F]`` (pYIN's, on its grid of :data:`PYIN_RESOLUTION` semitones: 25 cents) with each voiced frame
    read again by YIN on the same frames, whose parabolic interpolation gives a continuous f0, where YIN reads
    within :data:`FINE_TOLERANCE_CENTS` of pYIN (elsewhere, an octave slip of YIN's, pYIN's value stays). A
    pitch error of 10 cents reads 10, not 0 or 25: what a decoder keeping pitch to 25 cents is measured with."""
    import librosa

    x = np.asarray(audio, dtype=np.float32)
    yin = librosa.yin(x, fmin=fmin, fmax=min(fmax, sr / 2 - 1), sr=sr, frame_length=FRAME, hop_length=HOP,
                      center=True)  # fmt: skip
    out = np.array(f0_hz, dtype=np.float64, copy=True)
    n = min(out.size, yin.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        close = np.isfinite(out[:n]) & (np.abs(1200.0 * np.log2(yin[:n] / out[:n])) <= FINE_TOLERANCE_CENTS)
    out[:n][close] = yin[:n][close]
    return out


def _crepe(x: np.ndarray, sr: int, fmin: float, fmax: float) -> np.ndarray:
    try:
        import torch
        import torchcrepe
    except ImportError as e:  # torchcrepe imports torchaudio, which must match the installed torch
        raise ModelError(
            f"pitch method 'crepe' needs torchcrepe (pip install torchcrepe) and a torchaudio matching torch ({e})"
        ) from e
    audio = torch.from_numpy(x).view(1, -1)
    f0, periodicity = torchcrepe.predict(
        audio,
        sr,
        HOP,
        max(fmin, 32.7),
        min(fmax, 1975.0),
        "tiny",
        return_periodicity=True,
        batch_size=512,
        device="cpu",
    )
    f0 = f0[0].numpy()
    voiced = periodicity[0].numpy() >= 0.5
    return np.where(voiced, f0, np.nan)


LOCAL_BINS = 41  # ~80 Hz at 16 kHz with the 8192-point FFT


def lowest_partial_midi(
    audio: np.ndarray, sr: int, floor_db: float = 30.0, prominence_db: float = 10.0, fmin: float = 25.0
) -> float:
    """MIDI pitch of the lowest prominent peak of the clip's average spectrum (sounding frames): a peak at most
    ``floor_db`` below the strongest and ``prominence_db`` above the median of the ``LOCAL_BINS`` around it, from ``fmin`` to 5 kHz. The
    lowest note of a chord, where pYIN finds the chord's common subharmonic instead; NaN when no peak."""
    import librosa
    from scipy.ndimage import median_filter
    from scipy.signal import find_peaks

    x = np.asarray(audio, dtype=np.float32)
    if x.size < 2048 or not np.any(x):
        return math.nan
    n_fft = 8192 if x.size >= 8192 else 2048
    mag = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=n_fft // 4, center=True))
    energy = (mag**2).sum(axis=0)
    db_frames = 10 * np.log10(np.maximum(energy, 1e-20))
    sounding = db_frames > db_frames.max() - 30.0
    spectrum = 20 * np.log10(np.maximum(mag[:, sounding].mean(axis=1), 1e-10))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    band = (freqs >= fmin) & (freqs <= min(5000.0, sr / 2 - 1))
    idx = np.flatnonzero(band)
    local = median_filter(spectrum, size=LOCAL_BINS, mode="nearest")  # the level around each bin
    peaks, _ = find_peaks(spectrum[idx], height=spectrum[idx].max() - floor_db)
    peaks = peaks[spectrum[idx][peaks] - local[idx][peaks] >= prominence_db]
    return hz_to_midi(float(freqs[idx[peaks[0]]])) if peaks.size else math.nan
