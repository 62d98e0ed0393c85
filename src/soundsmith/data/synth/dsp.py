"""Small DSP helpers shared by the synthetic renderers (envelopes, filters, coloured noise, levels).

Every function is pure: randomness comes in as an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
PEAK_LIMIT = 0.9  # every rendered clip peaks at or below this (headroom for 16-bit PCM)


def midi_to_hz(midi: float) -> float:
    """MIDI pitch -> frequency in Hz (A4 = 69 = 440 Hz)."""
    return float(440.0 * 2.0 ** ((midi - 69.0) / 12.0))


def midi_to_note(midi: int) -> str:
    """MIDI pitch -> note name with octave, e.g. 69 -> "A4", 61 -> "C#4"."""
    return f"{NOTE_NAMES[int(midi) % 12]}{int(midi) // 12 - 1}"


def note_to_midi(note: str) -> int:
    """Note name with octave ("A4", "C#3", "Bb2") -> MIDI pitch. Raises ValueError for other strings."""
    text = note.strip()
    flats = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}
    name = text[:2] if len(text) > 2 and text[1] in "#b" else text[:1]
    octave = text[len(name) :]
    name = name[:1].upper() + name[1:]
    name = flats.get(name, name)
    if name not in NOTE_NAMES or not octave.lstrip("-").isdigit():
        raise ValueError(f"not a note name: {note!r} (expected e.g. 'A4', 'C#3', 'Bb2')")
    return NOTE_NAMES.index(name) + 12 * (int(octave) + 1)


@lru_cache(maxsize=256)
def _sos(order: int, freqs: tuple[float, ...], btype: str, sample_rate: int) -> np.ndarray:
    nyq = sample_rate / 2.0
    wn = [min(max(f / nyq, 1e-4), 0.999) for f in freqs]
    return signal.butter(order, wn if len(wn) > 1 else wn[0], btype=btype, output="sos")


def filt(x: np.ndarray, btype: str, freqs: float | tuple[float, float], sample_rate: int, order: int = 2):
    """Butterworth filter (``btype`` lowpass/highpass/bandpass) of ``x [T]``; cached design."""
    f = (float(freqs),) if np.isscalar(freqs) else tuple(float(v) for v in freqs)  # type: ignore[arg-type]
    return signal.sosfilt(_sos(order, f, btype, sample_rate), x)


def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise ``[n]`` with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    white = rng.standard_normal(n)
    if exponent == 0:
        return white
    spec = np.fft.rfft(white)
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    out = np.fft.irfft(spec, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def fade(x: np.ndarray, sample_rate: int, fade_in: float = 0.01, fade_out: float = 0.01) -> np.ndarray:
    """Apply linear fades (seconds) to both ends of ``x [T]`` in place; returns ``x``."""
    n_in = min(int(fade_in * sample_rate), x.shape[0] // 2)
    n_out = min(int(fade_out * sample_rate), x.shape[0] // 2)
    if n_in > 0:
        x[:n_in] *= np.linspace(0.0, 1.0, n_in)
    if n_out > 0:
        x[-n_out:] *= np.linspace(1.0, 0.0, n_out)
    return x


def decay_env(n: int, sample_rate: int, tau: float, attack: float = 0.002) -> np.ndarray:
    """Percussive envelope ``[n]``: linear attack then exp(-t/tau)."""
    t = np.arange(n) / sample_rate
    env = np.exp(-t / tau)
    n_att = max(1, min(int(attack * sample_rate), n))
    env[:n_att] *= np.linspace(0.0, 1.0, n_att)
    return env


def place(out: np.ndarray, x: np.ndarray, start: int) -> None:
    """Add ``x`` into ``out`` from sample ``start``, cropping what falls outside."""
    if start >= out.shape[0] or start + x.shape[0] <= 0:
        return
    lo = max(start, 0)
    hi = min(start + x.shape[0], out.shape[0])
    out[lo:hi] += x[lo - start : hi - start]


def loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS) via ``soundsmith.audio.measure_loudness``; -inf-safe (returns -120)."""
    from soundsmith.audio import measure_loudness

    value = float(measure_loudness(np.asarray(audio, dtype=np.float64), sample_rate))
    return value if np.isfinite(value) else -120.0


def set_loudness(audio: np.ndarray, sample_rate: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """Scale ``audio [T]`` to ``target_lufs``, then down to ``PEAK_LIMIT`` if needed.

    Returns (float32 audio, the loudness actually reached in LUFS).
    """
    current = loudness(audio, sample_rate)
    if current <= -119.0:
        return audio.astype(np.float32), current
    out = audio * 10.0 ** ((target_lufs - current) / 20.0)
    peak = float(np.max(np.abs(out)))
    reached = target_lufs
    if peak > PEAK_LIMIT:
        out *= PEAK_LIMIT / peak
        reached += 20.0 * np.log10(PEAK_LIMIT / peak)
    return out.astype(np.float32), round(float(reached), 2)


def limit_peak(audio: np.ndarray) -> np.ndarray:
    """Scale ``audio`` down so its peak is at most ``PEAK_LIMIT`` (never up)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > PEAK_LIMIT:
        audio = audio * (PEAK_LIMIT / peak)
    return audio.astype(np.float32)
