"""Mel VAE: a KL-regularised convolutional autoencoder over log-mel, the latent space of the latent families.

Layout, chosen by measurement (docs/autoencoders.md): 1-D convolutions over time with the mel bands as
channels. On the 2-core CPU a 2-D conv stack over ``[64 mels x frames]`` (channels 16/32/64) ran ~10x slower
than this 1-D stack for the same latent size, far from the 500x real-time target. The latent has
``latent_channels`` channels at 1/``time_downsample`` of the mel frame rate: with the defaults,
``[B, 128, frames / 4]``, as many numbers per second as AudioLDM's 8 channels x 16 bands x frames / 4 (a 2x
compression of the log-mel), laid out for a denoiser that attends over time.

Shapes: log-mel ``[B, n_mels, frames]`` (any ``frames``: padded with silence to a multiple of
``time_downsample``, cropped back after decoding) -> posterior mean and log-variance
``[B, latent_channels, ceil(frames / time_downsample)]`` -> log-mel ``[B, n_mels, frames]``.
``scale_factor`` (computed on training data, see :func:`latent_scale_factor`) scales the latents that
:meth:`MelVAE.encode_latents` gives and :meth:`MelVAE.decode_latents` takes to unit standard deviation, as
Stable Diffusion's 0.18215. The network is pure: the losses live in ``train/objectives/vae.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundsmith.audio import MelConfig
from soundsmith.errors import ConfigError

SILENCE_LOG_MEL = math.log(1e-5)  # what mel_spectrogram gives for silence (its clamp)


@dataclass
class VAEConfig:
    channels: list[int] = field(default_factory=lambda: [64, 128, 256])  # one level each; halve time between
    latent_channels: int = 128
    kernel_size: int = 3
    mel_mean: float = -5.0  # log-mel normalisation: (mel - mel_mean) / mel_std before the encoder
    mel_std: float = 4.0
    scale_factor: float = 1.0  # latent scale: encode_latents() returns z * scale_factor (set from data)
    # mel front end (travels with the weights)
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    win_length: int = 1024
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0

    def __post_init__(self) -> None:
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ConfigError(f"VAEConfig.channels={self.channels}: give one positive width per level")
        if self.latent_channels <= 0 or self.kernel_size <= 0 or self.kernel_size % 2 != 1:
            raise ConfigError(
                f"VAEConfig: latent_channels ({self.latent_channels}) must be positive and kernel_size "
                f"({self.kernel_size}) odd"
            )
        if not (self.mel_std > 0 and self.scale_factor > 0):
            raise ConfigError(
                f"VAEConfig: mel_std ({self.mel_std}) and scale_factor ({self.scale_factor}) must be positive"
            )
        self.mel_config()

    @property
    def time_downsample(self) -> int:
        return 2 ** (len(self.channels) - 1)

    def mel_config(self) -> MelConfig:
        return MelConfig(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
        )


class ResBlock1d(nn.Module):
    """``[B, C, T] -> [B, C, T]``: x + conv(silu(conv(silu(x))))."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class Encoder(nn.Module):
    """Normalised log-mel ``[B, M, T]`` (T a multiple of the downsampling) -> ``[B, 2 * latent, T / down]``."""

    def __init__(self, c: VAEConfig) -> None:
        super().__init__()
        k = c.kernel_size
        self.conv_in = nn.Conv1d(c.n_mels, c.channels[0], k, padding=k // 2)
        layers: list[nn.Module] = [ResBlock1d(c.channels[0], k)]
        for c_in, c_out in zip(c.channels[:-1], c.channels[1:]):
            layers += [nn.Conv1d(c_in, c_out, 4, stride=2, padding=1), ResBlock1d(c_out, k)]
        self.body = nn.Sequential(*layers)
        self.conv_out = nn.Conv1d(c.channels[-1], 2 * c.latent_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(F.silu(self.body(self.conv_in(x))))


class Decoder(nn.Module):
    """Latent ``[B, latent, T']`` -> normalised log-mel ``[B, M, T' * down]``."""

    def __init__(self, c: VAEConfig) -> None:
        super().__init__()
        k = c.kernel_size
        widths = c.channels[::-1]
        self.conv_in = nn.Conv1d(c.latent_channels, widths[0], k, padding=k // 2)
        layers: list[nn.Module] = [ResBlock1d(widths[0], k)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1), ResBlock1d(c_out, k)]
        self.body = nn.Sequential(*layers)
        self.conv_out = nn.Conv1d(widths[-1], c.n_mels, k, padding=k // 2)

    def forward(self, z: Tensor) -> Tensor:
        return self.conv_out(F.silu(self.body(self.conv_in(z))))


class MelVAE(nn.Module):
    """KL-regularised autoencoder over log-mel ``[B, n_mels, frames]`` (see the module docstring)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def mel_config(self) -> MelConfig:
        return self.config.mel_config()

    def latent_frames(self, frames: int) -> int:
        """Latent length for a mel of ``frames`` frames: ``ceil(frames / time_downsample)``."""
        return -(-frames // self.config.time_downsample)

    def _check_mel(self, mel: Tensor) -> None:
        if mel.dim() != 3 or mel.shape[1] != self.config.n_mels:
            raise ConfigError(
                f"mel VAE expects a log-mel [B, {self.config.n_mels}, frames], got shape {tuple(mel.shape)}; "
                "compute it with the VAE's mel_config()"
            )

    def encode(self, mel: Tensor) -> tuple[Tensor, Tensor]:
        """Log-mel ``[B, M, T]`` -> posterior ``(mean, logvar)``, each ``[B, latent, ceil(T / down)]`` (unscaled)."""
        self._check_mel(mel)
        c = self.config
        frames = mel.shape[-1]
        pad = self.latent_frames(frames) * c.time_downsample - frames
        x = (mel - c.mel_mean) / c.mel_std
        if pad:  # silence on the right
            x = F.pad(x, (0, pad), value=(SILENCE_LOG_MEL - c.mel_mean) / c.mel_std)
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor, frames: int | None = None) -> Tensor:
        """Unscaled latent ``[B, latent, T']`` -> log-mel ``[B, M, frames]`` (default ``T' * time_downsample``)."""
        c = self.config
        mel = self.decoder(z) * c.mel_std + c.mel_mean
        return mel if frames is None else mel[..., :frames]

    def forward(self, mel: Tensor) -> Tensor:
        """Deterministic reconstruction through the posterior mean: log-mel ``[B, M, T] -> [B, M, T]``."""
        mean, _ = self.encode(mel)
        return self.decode(mean, mel.shape[-1])

    @torch.no_grad()
    def encode_latents(self, mel: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Scaled latents for a generator to model: ``[B, latent, T']``, ``z * scale_factor``.

        With ``generator`` the latent is sampled from the posterior (noise drawn from it); else its mean.
        """
        mean, logvar = self.encode(mel)
        z = mean
        if generator is not None:
            noise = torch.randn(mean.shape, generator=generator, device="cpu", dtype=mean.dtype)
            z = mean + torch.exp(0.5 * logvar) * noise.to(mean.device)
        return z * self.config.scale_factor

    @torch.no_grad()
    def decode_latents(self, z: Tensor, frames: int | None = None) -> Tensor:
        """Scaled latents ``[B, latent, T']`` -> log-mel ``[B, M, frames]`` (inverse of :meth:`encode_latents`)."""
        return self.decode(z / self.config.scale_factor, frames)


@torch.no_grad()
def latent_scale_factor(model: MelVAE, mels: Iterable[Tensor]) -> float:
    """``1 / std`` of the unscaled posterior means over ``mels`` (batches ``[B, M, T]`` of training data)."""
    total, total_sq, count = 0.0, 0.0, 0
    for mel in mels:
        mean, _ = model.encode(mel)
        total += float(mean.double().sum())
        total_sq += float(mean.double().square().sum())
        count += mean.numel()
    if count == 0:
        raise ConfigError("latent_scale_factor: no mel batches given; pass batches of training data")
    var = total_sq / count - (total / count) ** 2
    return 1.0 / math.sqrt(max(var, 1e-12))
