"""Signal processing in torch: STFT, mel spectrograms, Griffin-Lim, mu-law, peak normalisation.

Every function accepts any number of leading batch dimensions (``[..., T]``) and follows the input
tensor's device and dtype, so the same code gives the same results on CPU and CUDA. numpy inputs are
turned into tensors (mel, Griffin-Lim) or answered in numpy (mu-law, peak normalisation).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import librosa
import numpy as np
import torch

from soundsmith.errors import AudioError, ConfigError

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class MelConfig:
    """Mel front end; the defaults are AudioLDM's (16 kHz, 10 ms hop, 64 mels up to 8 kHz)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    win_length: int = 1024
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ConfigError(f"MelConfig.sample_rate must be positive, got {self.sample_rate}")
        if not 0 < self.win_length <= self.n_fft or self.hop_length <= 0:
            raise ConfigError(
                f"MelConfig: need 0 < win_length <= n_fft and hop_length > 0, got n_fft={self.n_fft}, "
                f"win_length={self.win_length}, hop_length={self.hop_length}"
            )
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ConfigError(
                f"MelConfig: need 0 <= fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, "
                f"fmax={self.fmax}, sample_rate={self.sample_rate}"
            )

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @classmethod
    def at_rate(cls, sample_rate: int, **fields) -> MelConfig:
        """The default front end at ``sample_rate``: ``fmax`` is 8 kHz or the Nyquist frequency below it."""
        return cls(sample_rate=sample_rate, fmax=min(8000.0, sample_rate / 2), **fields)


@functools.lru_cache(maxsize=16)
def _mel_basis(cfg: MelConfig) -> np.ndarray:
    # librosa's slaney filterbank is the reference the AudioLDM/HiFi-GAN front ends use.
    return librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=False,
        norm="slaney",
        dtype=np.float64,
    )


def mel_filterbank(
    cfg: MelConfig, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Slaney mel filterbank (slaney-normalised triangles) ``[n_mels, n_fft // 2 + 1]``."""
    return torch.tensor(_mel_basis(cfg), device=device, dtype=dtype)  # a copy: the cache stays intact


def _as_float_tensor(x: ArrayLike, what: str) -> torch.Tensor:
    """numpy or tensor -> float32 or float64 tensor (float64 stays, other dtypes become float32)."""
    if isinstance(x, np.ndarray):
        # native byte order and positive strides (a reversed or big-endian array is copied, torch takes neither)
        dtype = (
            np.dtype(np.float64) if x.dtype.kind == "f" and x.dtype.itemsize == 8 else np.dtype(np.float32)
        )
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
    if not isinstance(x, torch.Tensor):
        raise AudioError(f"{what}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x


def _window(win_length: int, like: torch.Tensor) -> torch.Tensor:
    dtype = like.real.dtype if like.is_complex() else like.dtype
    return torch.hann_window(win_length, periodic=True, device=like.device, dtype=dtype)


def stft(x: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None) -> torch.Tensor:
    """Centered STFT with a periodic Hann window: ``[..., T]`` -> complex ``[..., n_fft // 2 + 1, frames]``.

    Frames = ``T // hop_length + 1``. The signal is reflect-padded by ``n_fft // 2`` at both ends like
    librosa's ``pad_mode="reflect"``; a signal too short to reflect (``T <= n_fft // 2``) is zero-padded.
    """
    win_length = win_length or n_fft
    x = _as_float_tensor(x, "stft")
    lead, length = x.shape[:-1], x.shape[-1]
    if length == 0:
        raise AudioError("stft: the signal is empty (zero samples)")
    flat = x.reshape(-1, length)  # [N, T]
    pad = n_fft // 2
    mode = "reflect" if length > pad else "constant"
    flat = torch.nn.functional.pad(flat[:, None], (pad, pad), mode=mode)[:, 0]  # [N, T + 2 pad]
    spec = torch.stft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=_window(win_length, flat),
        center=False,
        return_complex=True,
    )  # [N, F, frames]
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(
    spec: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    length: int | None = None,
) -> torch.Tensor:
    """Inverse of :func:`stft`: complex ``[..., F, frames]`` -> ``[..., T]``.

    ``length`` defaults to ``(frames - 1) * hop_length``.
    """
    win_length = win_length or n_fft
    lead, (freqs, frames) = spec.shape[:-2], spec.shape[-2:]
    if length is None:
        length = (frames - 1) * hop_length
    flat = spec.reshape(-1, freqs, frames)
    wav = torch.istft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=_window(win_length, flat),
        center=True,
        length=length,
    )  # [N, T]
    return wav.reshape(*lead, wav.shape[-1])


def mel_spectrogram(
    x: ArrayLike, cfg: MelConfig | None = None, log: bool = True, floor: float = 1e-5
) -> torch.Tensor:
    """Magnitude mel spectrogram ``[..., T]`` -> ``[..., n_mels, T // hop_length + 1]``.

    ``log=True`` returns ``log(clamp(mel, min=floor))``. Matches ``librosa.feature.melspectrogram(power=1,
    center=True, pad_mode="reflect", htk=False, norm="slaney")``. Runs on the input's device.
    """
    cfg = cfg or MelConfig()
    x = _as_float_tensor(x, "mel_spectrogram")
    mag = stft(x, cfg.n_fft, cfg.hop_length, cfg.win_length).abs()  # [..., F, frames]
    fb = mel_filterbank(cfg, device=mag.device, dtype=mag.dtype)  # [M, F]
    mel = torch.matmul(fb, mag)  # [..., M, frames]
    return torch.log(torch.clamp(mel, min=floor)) if log else mel


def shift_log_mel(mel: torch.Tensor, semitones: float, cfg: MelConfig) -> torch.Tensor:
    """Log-mel ``[..., n_mels, frames]`` (``cfg``'s filterbank) with its content moved up by ``semitones`` (down
    when negative): each band takes the value at its centre frequency / 2^(semitones / 12), interpolated on the mel
    scale between the bands' centres. Bands whose source lies below the lowest centre take the spectrogram's
    minimum; above the highest, the highest band's value. Timing is untouched."""
    n = mel.shape[-2]
    if n != cfg.n_mels:
        raise ConfigError(f"shift_log_mel: the spectrogram has {n} bands, the MelConfig {cfg.n_mels}")
    centres_hz = librosa.mel_frequencies(n_mels=n + 2, fmin=cfg.fmin, fmax=cfg.fmax, htk=False)[1:-1]
    source_hz = centres_hz / 2.0 ** (float(semitones) / 12.0)
    centres = librosa.hz_to_mel(centres_hz)
    index = np.interp(librosa.hz_to_mel(np.maximum(source_hz, 1e-3)), centres, np.arange(n, dtype=np.float64))
    lo = np.floor(index).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = torch.tensor(index - lo, dtype=mel.dtype, device=mel.device)[:, None]
    out = mel[..., lo, :] * (1 - w) + mel[..., hi, :] * w
    below = torch.from_numpy(source_hz < centres_hz[0]).to(mel.device)
    return torch.where(below[:, None], mel.min(), out)


def mel_to_linear(mel: torch.Tensor, cfg: MelConfig, n_iter: int = 16) -> torch.Tensor:
    """Non-negative linear magnitude ``[..., F, frames]`` whose mel projection approximates ``mel``.

    Starts from the clamped pseudo-inverse, then runs ``n_iter`` multiplicative NNLS updates
    (Lee & Seung), which keep the estimate non-negative and lower ``||fb @ S - mel||``.
    """
    fb = mel_filterbank(cfg, device=mel.device, dtype=mel.dtype)  # [M, F]
    eps = torch.finfo(mel.dtype).tiny ** 0.5
    mag = torch.clamp(torch.matmul(torch.linalg.pinv(fb), mel), min=0.0) + eps  # [..., F, frames]
    fb_t_mel = torch.matmul(fb.T, mel)  # [..., F, frames]
    for _ in range(n_iter):
        mag = mag * fb_t_mel / (torch.matmul(fb.T, torch.matmul(fb, mag)) + eps)
    return mag


def griffin_lim(
    mel: ArrayLike,
    cfg: MelConfig | None = None,
    n_iter: int = 32,
    *,
    log: bool = True,
    momentum: float = 0.99,
    generator: torch.Generator | None = None,
    seed: int = 0,
    length: int | None = None,
) -> torch.Tensor:
    """Invert a mel spectrogram ``[..., n_mels, frames]`` to a waveform ``[..., T]`` (fast Griffin-Lim).

    Args:
        mel: log-mel (``log=True``, as from :func:`mel_spectrogram`) or linear mel magnitudes.
        n_iter: Griffin-Lim iterations (with ``momentum``, Perraudin et al. 2013).
        generator: CPU generator for the initial random phases; else ``torch.Generator().manual_seed(seed)``.
            Phases are drawn on the CPU first, so CPU and CUDA runs start from the same phases.
        length: output samples; default ``(frames - 1) * hop_length``. The iterations run at the natural length
            when ``length`` would re-analyse to another frame count; the result is then cropped or zero-padded.
    """
    cfg = cfg or MelConfig()
    mel = _as_float_tensor(mel, "griffin_lim")
    if mel.shape[-2] != cfg.n_mels:
        raise AudioError(f"griffin_lim: expected {cfg.n_mels} mel bands, got mel of shape {tuple(mel.shape)}")
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    mag = mel_to_linear(torch.exp(mel) if log else mel, cfg)  # [..., F, frames]
    # 1. random initial phases, drawn first on the CPU
    phase = torch.rand(mag.shape, generator=generator, dtype=torch.float64) * (2 * np.pi)
    angles = torch.polar(torch.ones_like(phase), phase).to(device=mag.device, dtype=_complex(mag.dtype))
    frames = mag.shape[-1]
    if frames < 2:
        raise AudioError(
            f"griffin_lim: a mel of {frames} frame(s) is under one hop ({cfg.hop_length} samples) of audio; "
            "give at least 2 frames"
        )
    length = (frames - 1) * cfg.hop_length if length is None else int(length)
    # iterate at a length whose re-analysis gives the same frame count: the requested one when it does
    natural = (
        length
        if (frames - 1) * cfg.hop_length <= length < frames * cfg.hop_length
        else (frames - 1) * cfg.hop_length
    )
    args = (cfg.n_fft, cfg.hop_length, cfg.win_length)
    # 2. iterate: project onto consistent spectrograms, keep the target magnitude
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = stft(istft(mag * angles, *args, length=natural), *args)
        angles = rebuilt - prev * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        prev = rebuilt
    out = istft(mag * angles, *args, length=natural)
    if length <= natural:
        return out[..., :length]
    return torch.nn.functional.pad(out, (0, length - natural))


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def mu_law_encode(x: ArrayLike, quantization_channels: int = 256) -> ArrayLike:
    """Mu-law companding of audio in [-1, 1] to integers ``0 .. quantization_channels - 1`` (int64).

    Values outside [-1, 1] are clipped. numpy in -> numpy out, tensor in -> tensor out (same device).
    """
    mu = quantization_channels - 1
    if isinstance(x, np.ndarray):
        y = np.clip(x.astype(np.float64), -1.0, 1.0)
        y = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
        return np.floor((y + 1) / 2 * mu + 0.5).astype(np.int64)
    x = _as_float_tensor(x, "mu_law_encode").clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / np.log1p(mu)
    return torch.floor((y + 1) / 2 * mu + 0.5).long()


def mu_law_decode(q: ArrayLike, quantization_channels: int = 256) -> ArrayLike:
    """Inverse of :func:`mu_law_encode`: integers -> float audio in [-1, 1] (float32)."""
    mu = quantization_channels - 1
    if isinstance(q, np.ndarray):
        y = 2 * q.astype(np.float64) / mu - 1
        return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)
    if not isinstance(q, torch.Tensor):
        raise AudioError(f"mu_law_decode: expected a numpy array or torch tensor, got {type(q).__name__}")
    y = 2 * q.double() / mu - 1
    return (torch.sign(y) * torch.expm1(y.abs() * np.log1p(mu)) / mu).float()


def change_speed(audio: torch.Tensor, speed: torch.Tensor) -> torch.Tensor:
    """Play each clip of ``audio [B, T]`` at ``speed [B]`` times its rate (linear resampling, so pitch and tempo move
    together: 2 ** (k / 12) shifts by k semitones), cropped or zero-padded back to ``T`` samples. Augmentation, not
    a resampler (no anti-alias filter: use ``soundsmith.audio.resample`` for that)."""
    if audio.dim() != 2 or speed.shape != (audio.shape[0],):
        raise AudioError(
            f"change_speed: audio [B, T] and speed [B], got {tuple(audio.shape)} and {tuple(speed.shape)}"
        )
    if not bool((speed > 0).all()):
        raise AudioError(f"change_speed: every speed must be positive, got {speed.tolist()}")
    B, T = audio.shape
    out = torch.zeros_like(audio)
    for b in range(B):
        n = max(2, int(round(T / float(speed[b]))))
        x = torch.nn.functional.interpolate(
            audio[b].view(1, 1, T), size=n, mode="linear", align_corners=False
        )
        out[b, : min(n, T)] = x.view(n)[:T]
    return out


def peak_normalize(audio: ArrayLike, peak: float = 0.95, axis: int | None = -1) -> ArrayLike:
    """Scale so that ``max |audio| == peak`` over ``axis`` (per item of a ``[B, T]`` batch by default).

    Use ``axis=None`` to keep the balance of a multichannel clip ``[C, T]``. Silent items are left as
    they are. numpy in -> numpy out, tensor in -> tensor out.
    """
    if peak <= 0:
        raise AudioError(f"peak_normalize: peak must be positive, got {peak}")
    if isinstance(audio, np.ndarray):
        audio = audio if np.issubdtype(audio.dtype, np.floating) else audio.astype(np.float32)
        top = np.max(np.abs(audio), axis=axis, keepdims=True)
        if not np.isfinite(top).all():
            raise AudioError("peak_normalize: audio contains NaN or Inf samples")
        return (audio * np.where(top > 0, peak / np.where(top > 0, top, 1), 1)).astype(audio.dtype)
    audio = _as_float_tensor(audio, "peak_normalize")
    top = audio.abs().amax(dim=axis, keepdim=True) if axis is not None else audio.abs().max()
    if not torch.isfinite(top).all():
        raise AudioError("peak_normalize: audio contains NaN or Inf samples")
    return audio * torch.where(top > 0, peak / torch.where(top > 0, top, 1), 1)
