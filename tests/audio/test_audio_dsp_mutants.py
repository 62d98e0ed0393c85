"""soundsmith.audio.dsp: edges left untested by mutation testing (scripts/mutation.sh audio/dsp).

Every expected value here comes from an independent reference (numpy, librosa, or a hand computation), never from
calling the code under test a second time. Device handling is checked on the ``meta`` device (no data, but device
and shape propagate), so it is exercised on CPU-only machines too.
"""

from __future__ import annotations

import re
import warnings

import librosa
import numpy as np
import pytest
import torch
from test_audio_dsp import librosa_filterbank, librosa_mel

import soundsmith.audio.dsp as dsp
from soundsmith.audio import (
    MelConfig,
    change_speed,
    griffin_lim,
    istft,
    mel_filterbank,
    mel_spectrogram,
    peak_normalize,
    stft,
)
from soundsmith.audio.dsp import mel_to_linear
from soundsmith.errors import AudioError, ConfigError

SMALL = MelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=20)


def exact(message: str) -> str:
    """A ``match=`` pattern that accepts exactly ``message``."""
    return "^" + re.escape(message) + "$"


def ref_filterbank(cfg: MelConfig) -> np.ndarray:
    return librosa_filterbank(cfg, np.float64)


def ref_mel(x: np.ndarray, cfg: MelConfig) -> np.ndarray:
    return librosa_mel(x.astype(np.float64), cfg)


def ref_mel_to_linear(mel: np.ndarray, cfg: MelConfig, n_iter: int) -> np.ndarray:
    """The documented algorithm in numpy: clamped pseudo-inverse, then Lee & Seung multiplicative NNLS updates."""
    fb = ref_filterbank(cfg)
    eps = np.sqrt(np.finfo(np.float64).tiny)
    mag = np.maximum(np.linalg.pinv(fb) @ mel, 0.0) + eps
    fb_t_mel = fb.T @ mel
    for _ in range(n_iter):
        mag = mag * fb_t_mel / (fb.T @ (fb @ mag) + eps)
    return mag


def ref_griffin_lim(mel: np.ndarray, cfg: MelConfig, n_iter: int, momentum: float, seed: int, length: int):
    """Fast Griffin-Lim (Perraudin et al. 2013) with librosa's STFT pair, from the documented starting phases
    (2 pi U[0, 1) drawn as float64 from ``torch.Generator().manual_seed(seed)``)."""
    mag = ref_mel_to_linear(mel, cfg, 16)
    frames, hop = mag.shape[-1], cfg.hop_length
    gen = torch.Generator().manual_seed(seed)
    angles = np.exp(2j * np.pi * torch.rand(mag.shape, generator=gen, dtype=torch.float64).numpy())
    # iterate at the requested length when it re-analyses to the same frame count (T // hop + 1 == frames)
    natural = length if length // hop + 1 == frames else (frames - 1) * hop
    kw = dict(n_fft=cfg.n_fft, hop_length=hop, win_length=cfg.win_length, window="hann", center=True)
    pad_mode = "reflect" if natural > cfg.n_fft // 2 else "constant"  # too short to reflect: zero padding
    prev = np.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = librosa.stft(librosa.istft(mag * angles, length=natural, **kw), pad_mode=pad_mode, **kw)
        angles = rebuilt - prev * (momentum / (1 + momentum))
        angles = angles / (np.abs(angles) + 1e-16)
        prev = rebuilt
    out = np.zeros(length)
    out[: min(length, natural)] = librosa.istft(mag * angles, length=natural, **kw)[:length]
    return out


def ref_change_speed(row: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of ``row`` to ``n`` samples with half-pixel centres (torch's align_corners=False):
    output sample i reads the input at (i + 0.5) * T / n - 0.5 (clamped to the ends), cropped/zero-padded to T."""
    T = len(row)
    src = (np.arange(n) + 0.5) * (T / n) - 0.5
    y = np.interp(src, np.arange(T), row)
    out = np.zeros(T)
    out[: min(n, T)] = y[:T]
    return out


# --- MelConfig -----------------------------------------------------------------------------------------------------
def test_mel_config_sample_rate_check_and_its_message() -> None:
    with pytest.raises(ConfigError, match=exact("MelConfig.sample_rate must be positive, got 0")):
        MelConfig(sample_rate=0)
    with pytest.raises(ConfigError, match=exact("MelConfig.sample_rate must be positive, got -5")):
        MelConfig(sample_rate=-5)
    tiny = MelConfig(sample_rate=1, fmax=0.5)  # 1 Hz is a positive rate; fmax at its Nyquist
    assert tiny.sample_rate == 1 and tiny.n_freqs == 513


# --- filterbank, numpy conversion, devices -------------------------------------------------------------------------
def test_mel_filterbank_is_built_on_the_requested_device() -> None:
    fb = mel_filterbank(SMALL, device="meta", dtype=torch.float64)
    assert fb.device.type == "meta" and fb.dtype == torch.float64 and fb.shape == (20, 129)


def test_stft_and_mel_follow_the_input_device() -> None:
    spec = stft(torch.zeros(2, 300, device="meta"), n_fft=64, hop_length=16)  # the window follows the input
    assert spec.device.type == "meta" and spec.dtype == torch.complex64
    assert spec.shape == (2, 33, 300 // 16 + 1)
    for shape in [(1000,), (3, 1000)]:  # so does the filterbank
        mel = mel_spectrogram(torch.zeros(shape, device="meta"), SMALL)
        assert mel.device.type == "meta" and mel.dtype == torch.float32
        assert mel.shape == (*shape[:-1], 20, 1000 // 64 + 1)
    lin = mel_to_linear(torch.zeros(20, 7, device="meta", dtype=torch.float64), SMALL)
    assert lin.device.type == "meta" and lin.shape == (129, 7) and lin.dtype == torch.float64


def test_griffin_lim_keeps_its_phases_on_the_input_device(monkeypatch) -> None:
    # torch.istft has no meta kernel: a shape-only stand-in lets the rest run on the meta device
    def shape_only_istft(spec, n_fft, hop_length, win_length=None, length=None):
        return torch.zeros(*spec.shape[:-2], length, device=spec.device, dtype=spec.real.dtype)

    monkeypatch.setattr(dsp, "istft", shape_only_istft)
    out = griffin_lim(torch.zeros(2, 20, 5, device="meta"), SMALL, n_iter=0)
    assert out.device.type == "meta" and out.shape == (2, 4 * 64) and out.dtype == torch.float32


def test_numpy_inputs_of_other_dtypes_become_float32() -> None:
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(1500) * 3000).astype(np.int16)
    cases = {
        "float32": pcm.astype(np.float32) / 32768,
        "int16 reversed (negative stride)": pcm[::-1],
        "big-endian int16 (AIFF)": pcm.astype(">i2"),
    }
    for what, x in cases.items():
        mel = mel_spectrogram(x, SMALL, log=False)
        assert mel.dtype == torch.float32, what
        ref = ref_mel(np.asarray(x), SMALL)
        np.testing.assert_allclose(mel.numpy(), ref, rtol=1e-4, atol=1e-3, err_msg=what)


def test_integer_tensors_become_float32() -> None:
    out = peak_normalize(torch.tensor([[0, 2, -4]], dtype=torch.int16), 0.5)
    assert out.dtype == torch.float32
    assert out.tolist() == [[0.0, 0.25, -0.5]]


# Bugs found on the way, fixed in dsp._as_float_tensor: negative-stride float arrays reached torch.from_numpy
# uncopied, and big-endian float64 was narrowed to float32
def test_reversed_float_numpy_input_is_accepted() -> None:
    x = np.sin(np.arange(1500) / 7.0)[::-1]  # e.g. a time-reversal augmentation
    np.testing.assert_allclose(mel_spectrogram(x, SMALL, log=False).numpy(), ref_mel(x, SMALL), atol=1e-8)


def test_big_endian_float64_numpy_input_stays_float64() -> None:
    x = np.sin(np.arange(1500) / 7.0).astype(">f8")
    assert mel_spectrogram(x, SMALL).dtype == torch.float64


# --- stft / istft --------------------------------------------------------------------------------------------------
def test_stft_error_messages() -> None:
    with pytest.raises(AudioError, match=exact("stft: expected a numpy array or torch tensor, got list")):
        stft([0.1, 0.2, 0.3], n_fft=4, hop_length=1)
    with pytest.raises(AudioError, match=exact("stft: the signal is empty (zero samples)")):
        stft(torch.zeros(2, 0), n_fft=4, hop_length=1)


def test_istft_default_length_with_an_odd_n_fft() -> None:
    x = torch.randn(42, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spec = stft(x, n_fft=15, hop_length=4)
    assert spec.shape == (8, 42 // 4 + 1)
    y = istft(spec, n_fft=15, hop_length=4)  # (frames - 1) * hop, even though n_fft is odd
    assert y.shape == (40,)
    torch.testing.assert_close(y, x[:40], rtol=0, atol=1e-12)
    ref = librosa.istft(spec.numpy(), hop_length=4, n_fft=15, window="hann", center=True, length=40)
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-12)


# --- mel_to_linear -------------------------------------------------------------------------------------------------
def test_mel_to_linear_starts_from_the_clamped_pseudo_inverse() -> None:
    mel = np.random.default_rng(1).random((20, 6))
    start = mel_to_linear(torch.from_numpy(mel), SMALL, n_iter=0).numpy()
    np.testing.assert_allclose(start, ref_mel_to_linear(mel, SMALL, 0), rtol=1e-9, atol=1e-12)
    assert (start > 0).all()  # clamped at zero, plus a positive eps: strictly positive
    assert (np.linalg.pinv(ref_filterbank(SMALL)) @ mel < 0).any()  # (the clamp is exercised)


def test_mel_to_linear_runs_16_nnls_updates_by_default() -> None:
    rng = np.random.default_rng(2)
    for mel in (rng.random((20, 6)), np.eye(20)[:, :5] + 0.01):
        out = mel_to_linear(torch.from_numpy(mel), SMALL).numpy()
        np.testing.assert_allclose(out, ref_mel_to_linear(mel, SMALL, 16), rtol=1e-9, atol=1e-12)
        # (the iterations matter here: a 17th would move the result)
        assert not np.allclose(out, ref_mel_to_linear(mel, SMALL, 17), rtol=1e-6, atol=0)
        assert (out >= 0).all()


@pytest.mark.parametrize("n_iter", [1, 16])
@pytest.mark.parametrize("scale", [1e-14, 1e-16])
def test_mel_to_linear_stays_non_negative_for_very_quiet_input(scale: float, n_iter: int) -> None:
    """float32 mels this quiet (-280 to -320 dB) bring the update denominators down to the eps guard."""
    mel = torch.from_numpy(np.random.default_rng(3).random((20, 6)) * scale).float()
    out = mel_to_linear(mel, SMALL, n_iter=n_iter)
    assert torch.isfinite(out).all() and (out >= 0).all()


def test_mel_to_linear_stays_finite_when_denormals_are_flushed() -> None:
    """Its eps must be a normal number: with flush-to-zero a denormal eps is 0, and 0 / 0 = NaN on the all-zero
    filterbank columns (DC and Nyquist here)."""
    mel = torch.from_numpy(np.random.default_rng(4).random((20, 6)))
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals")
    try:
        outs = [mel_to_linear(mel.to(dtype), SMALL) for dtype in (torch.float32, torch.float64)]
    finally:
        torch.set_flush_denormal(False)
    for out in outs:
        assert torch.isfinite(out).all() and (out >= 0).all()


# --- griffin_lim ---------------------------------------------------------------------------------------------------
def _mel_16_frames() -> np.ndarray:
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy()
    return ref_mel(x, SMALL)  # [20, 16]


@pytest.mark.parametrize("scale", [1.0, 1e-17])
@pytest.mark.parametrize("extra", [-10, 0, 37, 63, 64, 500])
def test_griffin_lim_matches_a_librosa_reference(extra: int, scale: float) -> None:
    """Output length (frames - 1) * hop + extra, for a normal and a near-silent mel (scale 1e-17: |STFT| near the
    1e-16 guard of the phase normalisation)."""
    mel = _mel_16_frames() * scale
    length = 15 * 64 + extra  # iterated at this length when it has 16 frames (extra 0..63), else at 960
    out = griffin_lim(mel, SMALL, n_iter=5, log=False, seed=3, length=length)
    assert out.shape == (length,) and out.dtype == torch.float64
    ref = ref_griffin_lim(mel, SMALL, n_iter=5, momentum=0.99, seed=3, length=length)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    tail = out.numpy()[960:]
    if 0 < extra < 64:  # still 16 frames: iterated at the full length, so the tail is reconstructed
        assert (tail != 0).any()
    elif extra >= 64:  # 17 frames: iterated at 960 samples, then zero-padded
        assert (tail == 0).all()


@pytest.mark.filterwarnings(
    "ignore:n_fft=256 is too large:UserWarning"
)  # librosa, on the 64-sample reference
def test_griffin_lim_two_frames_is_enough() -> None:
    mel = _mel_16_frames()[:, :2]
    out = griffin_lim(mel, SMALL, n_iter=3, log=False, momentum=0.5, seed=1)
    assert out.shape == (64,)
    ref = ref_griffin_lim(mel, SMALL, n_iter=3, momentum=0.5, seed=1, length=64)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_griffin_lim_one_frame_message() -> None:
    message = (
        "griffin_lim: a mel of 1 frame(s) is under one hop (64 samples) of audio; give at least 2 frames"
    )
    with pytest.raises(AudioError, match=exact(message)):
        griffin_lim(_mel_16_frames()[:, :1], SMALL, n_iter=1, log=False)


# --- change_speed --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "audio_shape,speed_shape",
    [((2, 3, 4), (2,)), ((6,), (6,)), ((2, 5), (3,)), ((2, 5), (5,)), ((2, 5), (2, 1)), ((2, 5), ())],
)
def test_change_speed_shape_check(audio_shape, speed_shape) -> None:
    message = f"change_speed: audio [B, T] and speed [B], got {audio_shape} and {speed_shape}"
    with pytest.raises(AudioError, match=exact(message)):
        change_speed(torch.zeros(audio_shape), torch.ones(speed_shape))


@pytest.mark.parametrize("speeds", [[1.0, 0.0], [-1.0, 2.0], [float("nan"), 1.0]])
def test_change_speed_speed_check(speeds) -> None:
    message = f"change_speed: every speed must be positive, got {speeds}"
    with pytest.raises(AudioError, match=exact(message)):
        change_speed(torch.zeros(2, 8), torch.tensor(speeds))


@pytest.mark.parametrize(
    "T,speed,n",
    [
        (8, 1.0, 8),  # unchanged
        (8, 2.0, 4),  # faster: 4 samples, then zero padding
        (9, 2.0, 4),  # 4.5 rounds half to even: 4
        (15, 2.0, 8),  # 7.5 rounds half to even: 8
        (10, 4.0, 2),  # 2.5 -> 2
        (11, 4.0, 3),  # 2.75 -> 3
        (4, 2.0, 2),  # exactly 2
        (8, 16.0, 2),  # 0.5 rounds to 0: at least 2 samples
        (3, 3.0, 2),  # 1 -> 2
        (8, 0.5, 16),  # slower: 16 samples, cropped to 8
        (10, 0.75, 13),  # 13.33 -> 13, cropped
        (6, 1.25, 5),  # 4.8 -> 5
    ],
)
def test_change_speed_new_length_and_values(T: int, speed: float, n: int) -> None:
    row = 1.0 + np.arange(T, dtype=np.float64) ** 2  # positive and curved: linear interpolation shows
    out = change_speed(torch.from_numpy(row)[None], torch.tensor([speed]))
    assert out.shape == (1, T) and out.dtype == torch.float64
    got = out[0].numpy()
    assert int((got != 0).sum()) == min(n, T)  # the new length, then zero padding
    np.testing.assert_allclose(got, ref_change_speed(row, n), rtol=0, atol=1e-12)


def test_change_speed_hand_computed_values() -> None:
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 10.0, 0.0, 10.0]])
    out = change_speed(x, torch.tensor([0.5, 2.0]))
    # row 0: 8 samples read at (i + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, ..., cropped to 4
    # row 1: 2 samples read at (i + 0.5) * 2 - 0.5 = 0.5 and 2.5, then zero padding
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.25, 0.75, 1.25], [5.0, 5.0, 0.0, 0.0]]))


def test_change_speed_rows_are_independent() -> None:
    rng = np.random.default_rng(5)
    audio = rng.standard_normal((4, 50))
    speeds = [0.5, 1.0, 1.5, 3.0]
    out = change_speed(torch.from_numpy(audio), torch.tensor(speeds, dtype=torch.float64))
    assert out.shape == (4, 50) and out.dtype == torch.float64
    for b, (n, s) in enumerate(zip([100, 50, 33, 17], speeds, strict=True)):
        assert n == max(2, round(50 / s))
        np.testing.assert_allclose(out[b].numpy(), ref_change_speed(audio[b], n), rtol=0, atol=1e-12)
    # float32 audio stays float32
    out32 = change_speed(torch.from_numpy(audio).float(), torch.tensor(speeds))
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32[2].numpy(), ref_change_speed(audio[2], 33), atol=1e-5)


# --- peak_normalize ------------------------------------------------------------------------------------------------
def test_peak_normalize_default_peak_is_0_95() -> None:
    np.testing.assert_allclose(peak_normalize(np.array([0.5, -0.25])), [0.95, -0.475], rtol=1e-12)
    torch.testing.assert_close(peak_normalize(torch.tensor([0.5, -0.25])), torch.tensor([0.95, -0.475]))


def test_peak_normalize_keeps_numpy_float_dtypes() -> None:
    y64 = peak_normalize(np.array([[0.2, -0.4], [0.1, 0.05]]), 0.8)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, [[0.4, -0.8], [0.8, 0.4]], rtol=1e-15)
    y16 = peak_normalize(np.array([0.25, -0.5], dtype=np.float16), 0.5)
    assert y16.dtype == np.float16
    np.testing.assert_array_equal(y16, np.array([0.25, -0.5], dtype=np.float16))


def test_peak_normalize_nan_messages() -> None:
    message = exact("peak_normalize: audio contains NaN or Inf samples")
    with pytest.raises(AudioError, match=message):
        peak_normalize(np.array([[0.1, np.inf]]))
    with pytest.raises(AudioError, match=message):
        peak_normalize(torch.tensor([[0.1, float("nan")]]))


def test_peak_normalize_silent_numpy_items_raise_no_warning() -> None:
    x = np.array([[0.0, 0.0, 0.0], [0.1, -0.2, 0.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. no "divide by zero" RuntimeWarning
        y = peak_normalize(x, 0.5)
    np.testing.assert_allclose(y, [[0.0, 0.0, 0.0], [0.25, -0.5, 0.0]], rtol=1e-6)


def test_peak_normalize_gradient_leaves_silent_items_alone() -> None:
    x = torch.tensor([[0.0, 0.0, 0.0], [0.5, -0.25, 0.1]], dtype=torch.float64, requires_grad=True)
    peak_normalize(x, 0.8).sum().backward()
    # silent row: identity. Row 1: d/dx_j sum(0.8 x / max|x|) = 0.8 / 0.5 = 1.6, minus, at the peak (x_0 = 0.5),
    # 0.8 * sum(x) / 0.5 ** 2 = 0.8 * 0.35 / 0.25 = 1.12
    torch.testing.assert_close(
        x.grad, torch.tensor([[1.0, 1.0, 1.0], [0.48, 1.6, 1.6]], dtype=torch.float64), rtol=0, atol=1e-12
    )
