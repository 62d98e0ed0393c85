"""Convolutional layers shared by families: the PANNs-style log-mel CNN of the tagger and the CLAP audio tower."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU, then 2x2 average pooling: `[B, Cin, T, M] -> [B, Cout, T/2, M/2]`."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        # ceil_mode keeps odd sizes (and tiny inputs) from collapsing to zero
        return F.avg_pool2d(x, 2, ceil_mode=True)


class ConvAudioEncoder(nn.Module):
    """PANNs-style CNN: log-mel `[B, n_mels, frames]` -> clip embedding `[B, embed_dim]`.

    Shared by the tagger and the CLAP-style model. Global pooling: mean over mel bins, then mean + max over time.
    State-dict keys (`bn0`, `blocks.<i>.conv1/bn1/conv2/bn2`, `fc`) are those of the shipped models: keep them.
    """

    def __init__(self, n_mels: int, channels: list[int], embed_dim: int, dropout: float) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(n_mels)  # per-mel-bin input normalisation, as in PANNs
        widths = [1, *channels]
        self.blocks = nn.ModuleList(ConvBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels[-1], embed_dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3:
            raise ValueError(f"expected log-mel [B, n_mels, frames], got shape {tuple(mel.shape)}")
        x = mel.transpose(1, 2).unsqueeze(1)  # [B, 1, T, M]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # normalise over the M axis
        for block in self.blocks:
            x = block(x)  # [B, C, T', M']
        x = x.mean(dim=3)  # [B, C, T']
        x = x.mean(dim=2) + x.amax(dim=2)  # [B, C]
        x = self.dropout(x)
        return F.relu(self.fc(x))  # [B, embed_dim]
