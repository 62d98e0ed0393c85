"""GAN discriminators for waveform decoders (training only): multi-period and multi-resolution.

- :class:`MultiPeriodDiscriminator` (HiFi-GAN, Kong et al. 2020): the waveform folded into ``[T / p, p]`` for
  several prime periods ``p``, each judged by a stack of ``(k, 1)`` convolutions; it sees periodic structure
  (pitch, harmonics) that a plain 1-D discriminator misses.
- :class:`MultiResolutionDiscriminator` (UnivNet, Jang et al. 2021; used by Vocos): 2-D convolutions over
  magnitude spectrograms at several STFT resolutions; it sees the spectral detail.

Both return, for a batch ``[B, T]``, one ``(logits, features)`` pair per sub-discriminator: ``logits`` a tensor
with the batch first, ``features`` the list of intermediate activations used by the feature-matching loss.
Widths are small by default: these run on a CPU next to a small generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

Judgement = tuple[Tensor, list[Tensor]]

LEAK = 0.1


class PeriodDiscriminator(nn.Module):
    """One period ``p``: ``[B, T] -> ([B, 1, T'/p, p] logits, features)`` (T' = T padded to a multiple of p)."""

    def __init__(self, period: int, channels: tuple[int, ...] = (16, 32, 64, 128), kernel_size: int = 5):
        super().__init__()
        self.period = period
        widths = (1, *channels)
        pad = (kernel_size // 2, 0)
        self.convs = nn.ModuleList(
            [
                weight_norm(
                    nn.Conv2d(c_in, c_out, (kernel_size, 1), (3, 1) if i < len(channels) - 1 else 1, pad)
                )
                for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:]))
            ]
        )
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, (1, 0)))

    def forward(self, x: Tensor) -> Judgement:
        B, T = x.shape
        if T % self.period:
            x = F.pad(x, (0, self.period - T % self.period), mode="reflect")
        h = x.view(B, 1, -1, self.period)  # [B, 1, T/p, p]
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), LEAK)
            features.append(h)
        h = self.post(h)
        features.append(h)
        return h.flatten(1), features


class MultiPeriodDiscriminator(nn.Module):
    def __init__(
        self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), channels: tuple[int, ...] = (16, 32, 64, 128)
    ):
        super().__init__()
        self.discriminators = nn.ModuleList([PeriodDiscriminator(p, channels) for p in periods])

    def forward(self, x: Tensor) -> list[Judgement]:
        return [d(x) for d in self.discriminators]


class ResolutionDiscriminator(nn.Module):
    """One STFT resolution: ``[B, T] -> ([B, frames * freqs'] logits, features)`` over the log-free magnitude."""

    def __init__(self, n_fft: int, hop_length: int, channels: int = 16) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        self.convs = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(1, c, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
            ]
        )
        self.post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: Tensor) -> Judgement:
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, return_complex=True).abs()  # [B, F, N]
        h = spec.transpose(1, 2)[:, None]  # [B, 1, frames, freqs]
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), LEAK)
            features.append(h)
        h = self.post(h)
        features.append(h)
        return h.flatten(1), features


class MultiResolutionDiscriminator(nn.Module):
    def __init__(
        self,
        resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64)),
        channels: int = 16,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList([ResolutionDiscriminator(n, h, channels) for n, h in resolutions])

    def forward(self, x: Tensor) -> list[Judgement]:
        return [d(x) for d in self.discriminators]


def discriminator_loss(real: list[Judgement], fake: list[Judgement]) -> Tensor:
    """Least-squares GAN (HiFi-GAN): ``sum_k mean((1 - D_k(y))^2) + mean(D_k(y_hat)^2)``."""
    total = real[0][0].new_zeros(())
    for (r, _), (f, _) in zip(real, fake):
        total = total + torch.mean((1 - r) ** 2) + torch.mean(f**2)
    return total


def generator_adversarial_loss(fake: list[Judgement]) -> Tensor:
    """Least-squares GAN, generator side: ``sum_k mean((1 - D_k(y_hat))^2)``."""
    total = fake[0][0].new_zeros(())
    for f, _ in fake:
        total = total + torch.mean((1 - f) ** 2)
    return total


def feature_matching_loss(real: list[Judgement], fake: list[Judgement]) -> Tensor:
    """``sum_k mean_l mean |feat_l(y) - feat_l(y_hat)|`` (real features are targets: detached)."""
    total = real[0][0].new_zeros(())
    for (_, fr), (_, ff) in zip(real, fake):
        total = total + sum(torch.mean(torch.abs(a.detach() - b)) for a, b in zip(fr, ff)) / len(fr)
    return total
