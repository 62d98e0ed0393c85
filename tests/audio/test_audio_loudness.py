"""soundsmith.audio.loudness: BS.1770 loudness through pyloudnorm, short clips, silence."""

from __future__ import annotations

import warnings

import numpy as np
import pyloudnorm
import pytest
import torch

from soundsmith.audio import measure_loudness, normalize_loudness
from soundsmith.errors import AudioError

SR = 16000


def sine(seconds: float, amp: float = 0.5, freq: float = 997.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_matches_pyloudnorm() -> None:
    x = sine(1.0) + 0.05 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    expected = pyloudnorm.Meter(SR).integrated_loudness(x.astype(np.float64))
    assert measure_loudness(x, SR) == pytest.approx(expected, abs=1e-9)
    assert measure_loudness(torch.from_numpy(x), SR) == pytest.approx(expected, abs=1e-6)


def test_halving_amplitude_lowers_6_db() -> None:
    assert measure_loudness(sine(1.0, 0.5), SR) - measure_loudness(sine(1.0, 0.25), SR) == pytest.approx(
        20 * np.log10(2), abs=1e-3
    )


def test_stereo_channels_first() -> None:
    x = sine(1.0)
    mono = measure_loudness(x, SR)
    stereo = measure_loudness(np.stack([x, x]), SR)
    assert stereo == pytest.approx(mono + 10 * np.log10(2), abs=1e-3)  # two equal channels add power


def test_short_clip_fallback() -> None:
    long = measure_loudness(sine(1.0), SR)
    short = measure_loudness(sine(0.1), SR)  # under one 400 ms block
    assert np.isfinite(short) and abs(short - long) < 1.0  # steady tone: same loudness
    assert np.isfinite(measure_loudness(sine(0.399), SR))


def test_silence_is_minus_inf_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert measure_loudness(np.zeros(SR, np.float32), SR) == float("-inf")
        assert measure_loudness(np.full(SR, 1e-6, np.float32), SR) == float("-inf")  # below -70 LUFS gate
        assert measure_loudness(np.zeros(100, np.float32), SR) == float("-inf")
        out = normalize_loudness(np.zeros(SR, np.float32), SR)
    np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize("target", [-30.0, -23.0, -14.0])
def test_normalize_reaches_target(target: float) -> None:
    y = normalize_loudness(sine(1.0, 0.1), SR, target_lufs=target)
    assert y.dtype == np.float32
    assert measure_loudness(y, SR) == pytest.approx(target, abs=0.05)


def test_normalize_max_peak_and_torch() -> None:
    x = torch.from_numpy(sine(1.0, 0.1)).to(torch.float64)
    loud = normalize_loudness(x, SR, target_lufs=0.0)
    assert isinstance(loud, torch.Tensor) and loud.dtype == torch.float64 and loud.abs().max() > 1.0
    capped = normalize_loudness(x, SR, target_lufs=0.0, max_peak=0.99)
    assert capped.abs().max() == pytest.approx(0.99, abs=1e-9)
    assert measure_loudness(capped, SR) < 0.0


def test_bad_input() -> None:
    with pytest.raises(AudioError, match="NaN or Inf"):
        measure_loudness(np.array([0.1, np.nan] * 4000), SR)
    with pytest.raises(AudioError, match="empty"):
        measure_loudness(np.zeros(0), SR)
    with pytest.raises(AudioError, match="sample rate"):
        measure_loudness(sine(1.0), 0)
    with pytest.raises(AudioError, match="C <= 5"):
        measure_loudness(np.zeros((8, SR)), SR)
    with pytest.raises(AudioError, match=r"\[C, T\]"):
        normalize_loudness(np.zeros((1, 2, 100)), SR)
