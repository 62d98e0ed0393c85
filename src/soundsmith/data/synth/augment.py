"""The recording chain a real clip goes through: room reverb, microphone EQ, background noise, codec band limit.

``draw_chain(rng)`` draws which stages apply and their parameters (randomness first); ``apply_chain(audio,
sample_rate, chain)`` applies them deterministically (the chain carries its own noise seed). The chain dict is
the annotation (``meta["render_chain"]`` in the corpus manifest):

- ``reverb``: ``rt60_s``, ``predelay_ms``, ``wet_db`` (wet level relative to dry): convolution with a synthesized
  room impulse response (sparse early reflections + exponentially decaying noise tail whose high band decays
  faster), via ``scipy.signal.fftconvolve``;
- ``mic_eq``: ``low_cut_hz`` (high-pass), ``presence_db`` (boost or cut of 2-6 kHz), ``high_cut_hz``;
- ``noise``: ``color`` (white|pink|brown) at ``snr_db`` (signal power over the active part / noise power);
- ``codec``: ``band`` (telephone 300-3400 Hz, or a low-pass at ``cutoff_hz``) and ``bits`` (mu-law, 8 for
  telephone, else none).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import signal

from soundsmith.data.synth.dsp import colored_noise, filt, limit_peak

STAGE_PROBABILITY = {"reverb": 0.6, "mic_eq": 0.6, "noise": 0.5, "codec": 0.3}
RT60_S = (0.2, 1.2)
SNR_DB = (5.0, 30.0)
NOISE_COLORS = ("white", "pink", "brown")
CODEC_CUTOFFS_HZ = (4000.0, 5500.0, 7000.0)


def draw_chain(rng: np.random.Generator) -> dict[str, Any]:
    """Draw the stages of one recording chain (each with ``STAGE_PROBABILITY``) and their parameters."""
    chain: dict[str, Any] = {}
    coins = {stage: bool(rng.random() < p) for stage, p in STAGE_PROBABILITY.items()}
    if coins["reverb"]:
        chain["reverb"] = {
            "rt60_s": round(float(rng.uniform(*RT60_S)), 2),
            "predelay_ms": round(float(rng.uniform(2.0, 25.0)), 1),
            "wet_db": round(float(rng.uniform(-14.0, 0.0)), 1),
        }
    if coins["mic_eq"]:
        chain["mic_eq"] = {
            "low_cut_hz": round(float(rng.uniform(40.0, 250.0)), 0),
            "presence_db": round(float(rng.uniform(-6.0, 6.0)), 1),
            "high_cut_hz": round(float(rng.uniform(5000.0, 7800.0)), 0),
        }
    if coins["noise"]:
        chain["noise"] = {
            "color": str(rng.choice(NOISE_COLORS)),
            "snr_db": round(float(rng.uniform(*SNR_DB)), 1),
        }
    if coins["codec"]:
        telephone = bool(rng.random() < 0.4)
        chain["codec"] = (
            {"band": "telephone", "cutoff_hz": 3400.0, "bits": 8}
            if telephone
            else {"band": "lowpass", "cutoff_hz": float(rng.choice(CODEC_CUTOFFS_HZ)), "bits": None}
        )
    chain["seed"] = int(rng.integers(0, 2**31 - 1))
    return chain


def room_impulse_response(sample_rate: int, rt60_s: float, predelay_ms: float, seed: int) -> np.ndarray:
    """A synthetic room impulse response ``[T]`` (direct path at 0, unit peak).

    Early reflections: 6-12 pulses in the first 5-50 ms after the pre-delay. Late tail: Gaussian noise with
    an exponential envelope reaching -60 dB at ``rt60_s``; its band above 3 kHz decays twice as fast (air and
    wall absorption), so the tail darkens as it dies out, as in measured rooms.
    """
    rng = np.random.default_rng(seed)
    n = int(min(rt60_s * 1.1, 2.0) * sample_rate)
    t = np.arange(n) / sample_rate
    h = np.zeros(n)
    h[0] = 1.0
    start = int(predelay_ms / 1000 * sample_rate)
    for _ in range(int(rng.integers(6, 13))):
        at = start + int(rng.uniform(0.005, 0.05) * sample_rate)
        if at < n:
            h[at] += float(rng.uniform(0.2, 0.6)) * float(rng.choice([-1, 1]))
    noise = rng.standard_normal(n)
    decay = np.exp(-6.91 * t / rt60_s)  # 60 dB at rt60
    high = filt(noise, "highpass", min(3000.0, 0.4 * sample_rate), sample_rate)
    tail = (noise - high) * decay + high * decay**2
    tail[: start + int(0.005 * sample_rate)] = 0.0
    h += 0.3 * tail
    return h / np.max(np.abs(h))


def _mu_law(x: np.ndarray, bits: int) -> np.ndarray:
    mu = 2**bits - 1
    peak = float(np.max(np.abs(x))) or 1.0
    y = np.sign(x / peak) * np.log1p(mu * np.abs(x / peak)) / np.log1p(mu)
    y = np.round((y + 1) / 2 * mu) / mu * 2 - 1
    return peak * np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu


def apply_chain(audio: np.ndarray, sample_rate: int, chain: dict[str, Any]) -> np.ndarray:
    """Apply a chain from :func:`draw_chain` to ``audio [T]``; returns float32 ``[T]`` peaking <= PEAK_LIMIT.

    Order: room (reverb) -> microphone (EQ) -> background noise -> codec, as in a real recording.
    """
    x = np.asarray(audio, dtype=np.float64)
    n = x.shape[0]
    level = float(np.sqrt(np.mean(x**2))) + 1e-12
    rng = np.random.default_rng(chain.get("seed", 0))
    if "reverb" in chain:
        r = chain["reverb"]
        h = room_impulse_response(sample_rate, r["rt60_s"], r["predelay_ms"], int(rng.integers(0, 2**31 - 1)))
        wet = signal.fftconvolve(x, h[1:], mode="full")[:n]
        wet_rms, dry_rms = np.sqrt(np.mean(wet**2)) + 1e-12, np.sqrt(np.mean(x**2)) + 1e-12
        x = x + wet * (dry_rms / wet_rms) * 10 ** (r["wet_db"] / 20)
    if "mic_eq" in chain:
        e = chain["mic_eq"]
        x = filt(x, "highpass", e["low_cut_hz"], sample_rate)
        presence = filt(x, "bandpass", (2000.0, min(6000.0, 0.45 * sample_rate)), sample_rate)
        x = x + (10 ** (e["presence_db"] / 20) - 1) * presence
        if e["high_cut_hz"] < 0.45 * sample_rate:
            x = filt(x, "lowpass", e["high_cut_hz"], sample_rate)
    if "noise" in chain:
        nz = chain["noise"]
        frames = x[: n - n % 512].reshape(-1, 512) if n >= 512 else x[None, :]
        power = np.mean(frames**2, axis=1)
        active = power[power > power.max() * 1e-3] if power.max() > 0 else power
        signal_power = float(np.mean(active)) if active.size else 0.0
        bed = colored_noise(n, rng, {"white": 0.0, "pink": 1.0, "brown": 2.0}[nz["color"]])
        x = x + bed * np.sqrt(signal_power / 10 ** (nz["snr_db"] / 10))
    if "codec" in chain:
        c = chain["codec"]
        if c["band"] == "telephone":
            x = filt(x, "bandpass", (300.0, min(c["cutoff_hz"], 0.45 * sample_rate)), sample_rate, order=4)
        elif c["cutoff_hz"] < 0.45 * sample_rate:
            x = filt(x, "lowpass", c["cutoff_hz"], sample_rate, order=6)
        if c.get("bits"):
            x = _mu_law(x, int(c["bits"]))
    x *= level / (float(np.sqrt(np.mean(x**2))) + 1e-12)  # keep the clip's level; the peak limit may lower it
    return limit_peak(x)
