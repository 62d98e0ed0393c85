"""soundsmith.audio.dsp: mel vs librosa, STFT, Griffin-Lim, mu-law, peak normalisation."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from soundsmith.audio import (
    MelConfig,
    griffin_lim,
    istft,
    mel_filterbank,
    mel_spectrogram,
    mu_law_decode,
    mu_law_encode,
    peak_normalize,
    stft,
)
from soundsmith.audio.dsp import mel_to_linear
from soundsmith.errors import AudioError, ConfigError

CONFIGS = [
    MelConfig(),
    MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmax=11025.0),
    MelConfig(
        sample_rate=24000, n_fft=2048, hop_length=300, win_length=1200, n_mels=128, fmin=30.0, fmax=10000.0
    ),
]


def make_signal(sr: int, seconds: float, dtype=np.float64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = (
        0.5 * np.sin(2 * np.pi * 440 * t)
        + 0.2 * np.sin(2 * np.pi * 3000 * t)
        + 0.05 * rng.standard_normal(len(t))
    )
    return x.astype(dtype)


def librosa_filterbank(cfg: MelConfig, dtype: type = np.float32) -> np.ndarray:
    return librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=False,
        norm="slaney",
        dtype=dtype,
    )


def librosa_mel(x: np.ndarray, cfg: MelConfig) -> np.ndarray:
    return librosa.feature.melspectrogram(
        y=x,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        power=1.0,
        center=True,
        pad_mode="reflect",
        htk=False,
        norm="slaney",
    )


@pytest.mark.parametrize("cfg", CONFIGS)
def test_filterbank_matches_librosa(cfg: MelConfig) -> None:
    ref = librosa_filterbank(cfg)
    fb = mel_filterbank(cfg)
    assert fb.shape == (cfg.n_mels, cfg.n_fft // 2 + 1) and fb.dtype == torch.float32
    np.testing.assert_allclose(fb.numpy(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_log_mel_matches_librosa(cfg: MelConfig) -> None:
    x = make_signal(cfg.sample_rate, 0.5)
    ref = np.log(np.maximum(librosa_mel(x, cfg), 1e-5))
    ours = mel_spectrogram(torch.from_numpy(x).float(), cfg)
    assert ours.shape == ref.shape == (cfg.n_mels, len(x) // cfg.hop_length + 1)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-3)  # float32 rounding
    ours64 = mel_spectrogram(x, cfg)  # float64 numpy -> float64 tensor
    assert ours64.dtype == torch.float64
    np.testing.assert_allclose(ours64.numpy(), ref, atol=1e-5)


def test_linear_mel_and_clamp() -> None:
    cfg = MelConfig()
    x = make_signal(16000, 0.3)
    lin = mel_spectrogram(torch.from_numpy(x), cfg, log=False)
    np.testing.assert_allclose(lin.numpy(), librosa_mel(x, cfg), rtol=1e-5, atol=1e-8)
    silent = mel_spectrogram(torch.zeros(1600), cfg)
    assert torch.all(silent == np.log(1e-5))


def test_mel_config_validation() -> None:
    with pytest.raises(ConfigError, match="fmax"):
        MelConfig(fmax=9000.0)  # above Nyquist at 16 kHz
    with pytest.raises(ConfigError, match="win_length"):
        MelConfig(win_length=2048)
    with pytest.raises(ConfigError, match="sample_rate"):
        MelConfig(sample_rate=0)


@pytest.mark.parametrize("length", [1, 100, 512, 513, 1600, 16001])
def test_frame_count(length: int) -> None:
    cfg = MelConfig()
    mel = mel_spectrogram(torch.randn(length, generator=torch.Generator().manual_seed(0)), cfg)
    assert mel.shape == (cfg.n_mels, length // cfg.hop_length + 1)
    assert torch.isfinite(mel).all()


def test_batched_mel_equals_per_item() -> None:
    cfg = MelConfig()
    x = torch.randn(3, 2, 4000, generator=torch.Generator().manual_seed(1))  # [B, C, T]
    batched = mel_spectrogram(x, cfg)
    assert batched.shape == (3, 2, cfg.n_mels, 4000 // cfg.hop_length + 1)
    for b in range(3):
        for c in range(2):
            torch.testing.assert_close(batched[b, c], mel_spectrogram(x[b, c], cfg), atol=1e-5, rtol=1e-5)
    flat = mel_spectrogram(x[:, 0], cfg)  # [B, T]
    torch.testing.assert_close(flat, batched[:, 0], atol=1e-5, rtol=1e-5)


def test_stft_istft_round_trip() -> None:
    x = torch.randn(2, 8000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    spec = stft(x, n_fft=512, hop_length=128, win_length=400)
    assert spec.shape == (2, 257, 8000 // 128 + 1) and spec.is_complex()
    y = istft(spec, n_fft=512, hop_length=128, win_length=400, length=8000)
    torch.testing.assert_close(y, x, atol=1e-9, rtol=0)
    ref = librosa.stft(
        x[0].numpy(), n_fft=512, hop_length=128, win_length=400, center=True, pad_mode="reflect"
    )
    np.testing.assert_allclose(spec[0].numpy(), ref, atol=1e-8)


def test_griffin_lim_reconstructs_sine() -> None:
    cfg = MelConfig()
    t = torch.arange(16000, dtype=torch.float32) / 16000
    x = 0.5 * torch.sin(2 * torch.pi * 440 * t)
    mel = mel_spectrogram(x, cfg)
    y = griffin_lim(mel, cfg, n_iter=32, seed=0)
    assert y.shape == ((mel.shape[-1] - 1) * cfg.hop_length,) and y.dtype == torch.float32
    rebuilt = mel_spectrogram(y, cfg)[:, 2:-2]  # edges lack the full window
    target = mel[:, 2:-2]
    rel = (rebuilt.exp() - target.exp()).norm() / target.exp().norm()
    assert rel < 0.25
    # the pitch survives to within the mel resolution (band spacing near 440 Hz, ~47 Hz here)
    centres = librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax)
    spacing = np.diff(centres)[np.searchsorted(centres, 440)]
    spec = np.abs(np.fft.rfft(y.numpy()))
    assert abs(np.fft.rfftfreq(len(y), 1 / 16000)[spec.argmax()] - 440) < spacing
    rms = y[1600:-1600].pow(2).mean().sqrt()
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.1  # level kept


def test_griffin_lim_seeded_and_batched() -> None:
    cfg = MelConfig()
    x = torch.randn(2, 3200, generator=torch.Generator().manual_seed(3)) * 0.1
    mel = mel_spectrogram(x, cfg)
    a = griffin_lim(mel, cfg, n_iter=4, seed=5)
    b = griffin_lim(mel, cfg, n_iter=4, generator=torch.Generator().manual_seed(5))
    c = griffin_lim(mel, cfg, n_iter=4, seed=6)
    assert a.shape == (2, 3200)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(a, c)
    with pytest.raises(AudioError, match="mel bands"):
        griffin_lim(torch.zeros(80, 10), cfg)


def test_mu_law_round_trip_and_range() -> None:
    x = np.linspace(-1.0, 1.0, 100001)
    q = mu_law_encode(x)
    assert q.dtype == np.int64 and q.min() == 0 and q.max() == 255
    assert set(np.unique(q)) == set(range(256))  # every level used
    levels = mu_law_decode(np.arange(256))
    assert np.all(np.diff(levels) > 0) and levels[0] == -1.0 and abs(levels[-1] - 1.0) < 1e-6
    y = mu_law_decode(q)
    # each value decodes to a level no farther than the quantisation step around it
    idx = np.clip(np.searchsorted(levels, x), 1, 255)
    step = levels[idx] - levels[idx - 1]
    assert np.all(np.abs(y - x) <= step + 1e-6)
    assert np.abs(y - x).max() < 0.035  # the largest step (near +-1) is about 0.03
    assert np.abs(y - x)[np.abs(x) < 0.01].max() < 3e-4  # fine near zero


def test_mu_law_torch_matches_numpy() -> None:
    x = torch.rand(4, 1000, generator=torch.Generator().manual_seed(4)) * 2.4 - 1.2  # includes clipping
    q = mu_law_encode(x)
    assert q.dtype == torch.int64 and q.shape == x.shape
    np.testing.assert_array_equal(q.numpy(), mu_law_encode(x.numpy()))
    np.testing.assert_allclose(mu_law_decode(q).numpy(), mu_law_decode(q.numpy()), atol=1e-7)
    assert mu_law_encode(torch.tensor([-5.0, 5.0])).tolist() == [0, 255]
    assert mu_law_encode(np.zeros(1), 16)[0] in (7, 8)


def test_peak_normalize() -> None:
    x = np.stack([np.full(10, 0.1), np.linspace(-0.5, 0.2, 10), np.zeros(10)]).astype(np.float32)
    y = peak_normalize(x, 0.9)
    assert y.dtype == np.float32
    np.testing.assert_allclose(np.abs(y[:2]).max(axis=1), [0.9, 0.9], rtol=1e-6)
    np.testing.assert_array_equal(y[2], 0)  # silence untouched, no NaN
    whole = peak_normalize(x, 0.9, axis=None)
    assert abs(np.abs(whole).max() - 0.9) < 1e-6
    np.testing.assert_allclose(whole[0] / whole[1][0], x[0] / x[1][0], rtol=1e-6)  # balance kept
    t = peak_normalize(torch.from_numpy(x), 0.9)
    np.testing.assert_allclose(t.numpy(), y, rtol=1e-6)
    with pytest.raises(AudioError, match="NaN"):
        peak_normalize(np.array([np.nan, 1.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    cfg = MelConfig()
    x = torch.randn(2, 8000, generator=torch.Generator().manual_seed(7))
    cpu, gpu = mel_spectrogram(x, cfg), mel_spectrogram(x.cuda(), cfg)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
    a = griffin_lim(cpu, cfg, n_iter=4, seed=0)
    b = griffin_lim(cpu.cuda(), cfg, n_iter=4, seed=0)
    torch.testing.assert_close(b.cpu(), a, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(mu_law_encode(x.cuda()).cpu(), mu_law_encode(x))


# --- edges found untested by mutation testing (scripts/mutation.sh audio/dsp, docs/testing.md) -----------------
def test_mel_config_boundaries() -> None:
    MelConfig(n_fft=8, win_length=1, hop_length=1)  # the smallest valid window and hop
    MelConfig(fmin=0.0, fmax=8000.0)  # fmax may equal Nyquist
    for bad in (dict(sample_rate=-1), dict(hop_length=0), dict(win_length=0)):
        with pytest.raises(ConfigError):
            MelConfig(**bad)
    with pytest.raises(ConfigError, match="fmin"):
        MelConfig(fmin=4000.0, fmax=4000.0)  # an empty band range


@pytest.mark.parametrize(
    "fn,name",
    [(mel_spectrogram, "mel_spectrogram"), (mu_law_encode, "mu_law_encode"), (mu_law_decode, "mu_law_decode"),
     (peak_normalize, "peak_normalize"), (griffin_lim, "griffin_lim")],
)  # fmt: skip
def test_wrong_input_type_is_named(fn, name) -> None:
    with pytest.raises(AudioError, match=rf"^{name}: expected a numpy array or torch tensor, got list$"):
        fn([0.1, 0.2])


def test_griffin_lim_defaults_log_input_length_and_float64() -> None:
    cfg = MelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=20)
    x = 0.3 * torch.sin(2 * torch.pi * 300 * torch.arange(2000, dtype=torch.float64) / 16000)
    mel = mel_spectrogram(x, cfg)  # float64 in
    # the documented defaults: 32 iterations, momentum 0.99, seed 0
    default = griffin_lim(mel, cfg)
    assert torch.equal(default, griffin_lim(mel, cfg, n_iter=32, momentum=0.99, seed=0))
    assert default.dtype == torch.float64  # float64 stays float64 (complex128 phases)
    # linear-mel input with log=False is the same computation as log-mel input
    torch.testing.assert_close(
        griffin_lim(mel.exp(), cfg, n_iter=4, log=False), griffin_lim(mel, cfg, n_iter=4)
    )
    # an explicit length (here the signal's own, between (frames - 1) * hop and frames * hop) is used in every
    # iteration and for the output
    assert griffin_lim(mel, cfg, n_iter=3, length=2000).shape == (2000,)


def test_griffin_lim_one_frame_is_a_clear_error() -> None:
    cfg = MelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=20)
    mel = mel_spectrogram(torch.randn(30, generator=torch.Generator().manual_seed(1)), cfg)
    assert mel.shape[-1] == 1
    with pytest.raises(AudioError, match="1 frame"):
        griffin_lim(mel, cfg, n_iter=2)


def test_griffin_lim_any_output_length() -> None:
    cfg = MelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=20)
    mel = mel_spectrogram(torch.randn(2000, generator=torch.Generator().manual_seed(1)), cfg)
    for length in (1000, 4000):
        assert griffin_lim(mel, cfg, n_iter=2, length=length).shape == (length,)


def test_fast_griffin_lim_momentum_converges_faster_than_plain() -> None:
    cfg = MelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=32)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000, dtype=torch.float64) / 16000
    x = 0.3 * torch.sin(2 * torch.pi * 300 * t) + 0.2 * torch.sin(2 * torch.pi * 1250 * t * (1 + t))
    x = x + 0.01 * torch.randn(8000, generator=g, dtype=torch.float64)
    target = mel_spectrogram(x, cfg, log=False)

    def error(y: torch.Tensor) -> float:
        return float((mel_spectrogram(y, cfg, log=False) - target).norm() / target.norm())

    fast = error(griffin_lim(target, cfg, n_iter=16, log=False))
    plain = error(griffin_lim(target, cfg, n_iter=16, log=False, momentum=0.0))
    assert fast < plain < 1.0, (fast, plain)


def test_peak_normalize_dtypes_and_torch_errors() -> None:
    ints = peak_normalize(np.array([[0, 2, -4]], dtype=np.int16), 0.5)
    assert ints.dtype == np.float32
    np.testing.assert_allclose(ints, [[0.0, 0.25, -0.5]])
    t = peak_normalize(torch.tensor([[0.0, 0.0], [0.2, -0.4]]), 0.8)
    assert torch.equal(t[0], torch.zeros(2))
    torch.testing.assert_close(t[1], torch.tensor([0.4, -0.8]))
    with pytest.raises(AudioError, match="NaN"):
        peak_normalize(torch.tensor([float("nan"), 1.0]))
    with pytest.raises(AudioError, match="peak"):
        peak_normalize(np.ones(3), peak=0.0)


def test_griffin_lim_starts_from_uniform_phases_drawn_on_the_cpu() -> None:
    """n_iter=0 returns the starting point: the target magnitude with phases 2*pi*U[0, 1) (float64 draws from the
    seed's CPU generator, so CPU and CUDA runs start alike)."""
    cfg = MelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=20)
    mel = mel_spectrogram(
        torch.randn(2000, generator=torch.Generator().manual_seed(2), dtype=torch.float64), cfg
    )
    mag = mel_to_linear(mel.exp(), cfg)
    phase = torch.rand(mag.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * (
        2 * np.pi
    )
    start = istft(mag * torch.polar(torch.ones_like(phase), phase), cfg.n_fft, cfg.hop_length, cfg.win_length)
    torch.testing.assert_close(griffin_lim(mel, cfg, n_iter=0, seed=7), start, rtol=0, atol=1e-12)


def test_shift_log_mel_moves_a_band_by_the_octave_and_keeps_time():
    import librosa

    from soundsmith.audio.dsp import shift_log_mel

    cfg = MelConfig()
    centres = librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax, htk=False)[1:-1]
    k = int(np.argmin(np.abs(centres - 1000.0)))
    mel = torch.full((1, cfg.n_mels, 5), -10.0)
    mel[0, k, 2] = 0.0  # one bright band, in one frame
    up = shift_log_mel(mel, 12.0, cfg)
    peak = int(up[0, :, 2].argmax())
    assert abs(centres[peak] / centres[k] - 2.0) < 0.15  # an octave up: twice the frequency
    torch.testing.assert_close(up[0, :, [0, 1, 3, 4]], mel[0, :, [0, 1, 3, 4]])  # the other frames: as they were
    torch.testing.assert_close(shift_log_mel(mel, 0.0, cfg), mel)
    down = shift_log_mel(mel, -12.0, cfg)
    assert abs(centres[int(down[0, :, 2].argmax())] / centres[k] - 0.5) < 0.1
    # moved up, the lowest bands have no source: they take the spectrogram's floor
    assert torch.all(shift_log_mel(torch.zeros(1, cfg.n_mels, 2) + mel[..., :2], 24.0, cfg)[0, 0] == -10.0)
    with pytest.raises(ConfigError, match="has 32 bands, the MelConfig 64"):
        shift_log_mel(torch.zeros(1, 32, 4), 3.0, cfg)
