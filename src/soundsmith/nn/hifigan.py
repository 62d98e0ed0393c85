"""HiFi-GAN's generator (Kong et al. 2020, "HiFi-GAN"): transposed-convolution upsampling with multi-receptive-field
fusion, the comparison vocoder to the Vocos-style backbone + inverse-STFT head (tracker issue 10).

``conv_pre`` (kernel 7) -> per upsampling stage: leaky ReLU, ``ConvTranspose1d`` (kernel ``2 * rate``, stride
``rate``, channels halving), then multi-receptive-field fusion (MRF: the mean of one "resblock 1" per kernel size,
each with its dilations) -> leaky ReLU -> ``conv_post`` (kernel 7, 1 channel) -> tanh. Every convolution carries
weight normalisation (``torch.nn.utils.parametrizations.weight_norm``), as in the paper: its two tensors per weight
(``parametrizations.weight.original0`` = magnitude, ``original1`` = direction) save and load through safetensors
like any other. Unlike the Vocos model, every layer after the first stage runs at a multiple of the frame rate,
the last one at the sample rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

# inside the network; the last activation uses PyTorch's default 0.01, as the reference does
LRELU_SLOPE = 0.1


def _init(conv: nn.Module) -> nn.Module:
    """HiFi-GAN's ``init_weights``: N(0, 0.01) weights, before weight normalisation splits them."""
    nn.init.normal_(conv.weight, 0.0, 0.01)
    return conv


def transposed_padding(rate: int) -> tuple[int, int]:
    """``(padding, output_padding)`` of a ``ConvTranspose1d(kernel 2 * rate, stride rate)`` giving exactly
    ``frames * rate`` outputs: ``(L - 1) * r - 2p + 2r + op = L * r`` needs ``2p - op = r``. The reference's
    ``(k - r) // 2`` is the same for even rates and one sample too long for odd ones (5). ``rate >= 2``: at stride 1
    ``output_padding`` must be 0 and a kernel of 2 always adds one sample."""
    if rate < 2:
        raise ValueError(f"upsampling rate must be >= 2, got {rate}")
    return (rate + 1) // 2, rate % 2


def frame_centre(upsample_rates: Sequence[int]) -> float:
    """Where (in samples after ``t * hop``) the cascade of transposed convolutions centres input frame ``t``.

    Each stage maps input position ``x`` to ``x * r - p + r - 1/2`` (the middle of the kernel's span); composed over
    the stages from ``x = 0``. ``(hop - 1) / 2`` (the middle of the frame's block) when every rate is even; 63.5 for
    ``(5, 4, 4, 2)``. A centred mel frame ``t`` describes the audio around sample ``t * hop``, so the network has to
    learn a shift of that many samples (its receptive field spans several frames on each side, which allows it).
    """
    x = 0.0
    for r in upsample_rates:
        x = x * r - transposed_padding(r)[0] + r - 0.5
    return x


class ResBlock1(nn.Module):
    """HiFi-GAN's "resblock 1", ``[B, C, T] -> [B, C, T]``: per dilation ``d``, leaky ReLU -> conv (kernel ``k``,
    dilation ``d``) -> leaky ReLU -> conv (kernel ``k``) added back to the input. ``k`` odd keeps the length."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()

        def conv(dilation: int) -> nn.Module:
            pad = dilation * (kernel_size - 1) // 2
            return weight_norm(
                _init(nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=pad))
            )

        self.convs1 = nn.ModuleList(conv(d) for d in dilations)
        self.convs2 = nn.ModuleList(conv(1) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            h = c1(F.leaky_relu(x, LRELU_SLOPE))
            x = x + c2(F.leaky_relu(h, LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    """``[B, in_channels, frames] -> [B, frames * prod(upsample_rates)]`` (tanh, so in ``[-1, 1]``).

    Args:
        in_channels: mel bins.
        initial_channels: channels after ``conv_pre``; stage ``i`` has ``initial_channels // 2**(i + 1)``.
        upsample_rates: one stride per stage; their product is the samples per frame.
        kernel_sizes: one MRF resblock per kernel size (odd).
        dilations: the dilations of each of those resblocks (one sequence per kernel size).

    Alignment: stage ``i``'s transposed convolution spreads input ``j`` over outputs ``[j * r - p, j * r - p + 2r)``,
    centred on the middle of output block ``j`` for an even rate and half a sample before it for an odd one; over
    all stages, frame ``t`` lands around sample ``t * hop + frame_centre(upsample_rates)`` (see there).
    """

    def __init__(
        self,
        in_channels: int,
        initial_channels: int,
        upsample_rates: Sequence[int],
        kernel_sizes: Sequence[int],
        dilations: Sequence[Sequence[int]],
    ) -> None:
        super().__init__()
        self.conv_pre = weight_norm(nn.Conv1d(in_channels, initial_channels, 7, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = initial_channels
        for rate in upsample_rates:
            padding, output_padding = transposed_padding(rate)
            up = nn.ConvTranspose1d(
                channels, channels // 2, 2 * rate, rate, padding=padding, output_padding=output_padding
            )
            # dim=1: one magnitude per output channel (a transposed conv's weight is [in, out, k])
            self.ups.append(weight_norm(_init(up), dim=1))
            channels //= 2
            for k, d in zip(kernel_sizes, dilations):
                self.resblocks.append(ResBlock1(channels, k, d))
        conv_post = _init(nn.Conv1d(channels, 1, 7, padding=3))
        # Not in the reference: its default-initialised bias puts a DC offset of up to +-0.27 under an untrained
        # network's ~1e-4 signal, which float32 losses then resolve poorly (tests/contract's float64 reference
        # loss disagreed by 0.1%). Zero is the natural start for audio.
        nn.init.zeros_(conv_post.bias)
        self.conv_post = weight_norm(conv_post)
        self.num_kernels = len(kernel_sizes)

    def forward(self, mel: Tensor) -> Tensor:
        x = self.conv_pre(mel)  # [B, C0, frames]
        n = self.num_kernels
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))  # [B, C0 / 2**(i+1), frames * r_0 * ... * r_i]
            # multi-receptive-field fusion: the mean of the stage's resblocks
            x = sum(block(x) for block in self.resblocks[i * n : (i + 1) * n]) / n
        x = self.conv_post(F.leaky_relu(x))  # [B, 1, frames * hop]
        return torch.tanh(x)[:, 0]  # [B, frames * hop]
