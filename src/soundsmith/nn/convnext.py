"""ConvNeXt blocks over sequences (Liu et al. 2022, in 1-D as in Vocos): the vocoder's backbone.

A block is a depthwise convolution over time, LayerNorm over channels, a pointwise MLP (GELU) and a learned
per-channel layer scale, added back to the input. Everything but the depthwise convolution is two matmuls over
the frames, which is what a CPU does best.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvNeXtBlock(nn.Module):
    """``[B, C, T] -> [B, C, T]``: depthwise conv (kernel ``kernel_size``), LayerNorm, MLP, layer scale, residual.

    Args:
        dim: channels ``C``.
        intermediate_dim: the MLP's hidden width.
        kernel_size: odd; the depthwise convolution is zero-padded so the length is kept.
        layer_scale_init: initial value of the per-channel output scale (small: each block starts near identity).
    """

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int = 7, layer_scale_init: float = 0.1):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvNeXtBlock: kernel_size must be odd to keep the length, got {kernel_size}")
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init)))

    def forward(self, x: Tensor) -> Tensor:
        h = self.dwconv(x).transpose(1, 2)  # [B, T, C]
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))  # [B, T, C]
        return x + (self.gamma * h).transpose(1, 2)


class ConvNeXtBackbone(nn.Module):
    """``[B, in_channels, T] -> [B, T, dim]``: embedding conv, LayerNorm, ``depth`` ConvNeXt blocks, LayerNorm."""

    def __init__(
        self, in_channels: int, dim: int, intermediate_dim: int, depth: int, kernel_size: int = 7
    ) -> None:
        super().__init__()
        self.embed = nn.Conv1d(in_channels, dim, kernel_size, padding=kernel_size // 2)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        scale = 1.0 / max(1, depth)
        self.blocks = nn.ModuleList(
            [ConvNeXtBlock(dim, intermediate_dim, kernel_size, layer_scale_init=scale) for _ in range(depth)]
        )
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)  # [B, dim, T]
        for block in self.blocks:
            h = block(h)
        return self.norm_out(h.transpose(1, 2))  # [B, T, dim]
