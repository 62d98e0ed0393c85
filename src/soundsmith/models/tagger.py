"""Audio tagger: a compact PANNs-style CNN over log-mel, multi-label over the corpus classes.

Used by the evaluation suite: `embed()` gives the penultimate embedding for FAD, `posteriors()` the class
probabilities for KL, IS and text adherence. The network is pure: losses live in train/objectives/tagger.py.

Input layout: log-mel `[B, n_mels, frames]` as produced by `soundsmith.audio.mel_spectrogram` with the
`MelConfig` that `TaggerConfig.mel_config()` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from soundsmith.audio import MelConfig
from soundsmith.errors import ConfigError


@dataclass
class TaggerConfig:
    labels: list[str] = field(default_factory=list)  # class names, index order of the logits
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])  # one conv block each
    embed_dim: int = 256  # penultimate embedding size (FAD features)
    dropout: float = 0.2
    # front end (the mel the model expects; travels with the weights)
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160
    win_length: int = 1024
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0

    def __post_init__(self) -> None:
        if not self.labels:
            raise ConfigError("TaggerConfig.labels is empty: list the class names the tagger predicts")
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"TaggerConfig.labels has duplicates: {self.labels}; give each class once")
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ConfigError(f"TaggerConfig.channels={self.channels}: give one positive width per block")
        if self.embed_dim <= 0:
            raise ConfigError(f"TaggerConfig.embed_dim={self.embed_dim} must be positive")

    def mel_config(self) -> MelConfig:
        """The `soundsmith.audio.MelConfig` this model's input is computed with."""
        return mel_config_from(self)


def mel_config_from(cfg: Any) -> MelConfig:
    """Build a MelConfig from any config with the front-end fields (sample_rate, n_fft, ...)."""
    return MelConfig(
        sample_rate=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )


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


class AudioTagger(nn.Module):
    """Multi-label audio tagger. `forward(mel [B, n_mels, frames]) -> logits [B, num_classes]`."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ConvAudioEncoder(
            config.n_mels, list(config.channels), config.embed_dim, config.dropout
        )
        self.head = nn.Linear(config.embed_dim, len(config.labels))

    @property
    def num_classes(self) -> int:
        return len(self.config.labels)

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding `[B, embed_dim]` (the FAD features)."""
        return self.encoder(mel)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Class logits `[B, num_classes]`."""
        return self.head(self.encoder(mel))

    def embed_and_logits(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both outputs from one pass: (`[B, embed_dim]`, `[B, num_classes]`)."""
        emb = self.encoder(mel)
        return emb, self.head(emb)

    def posteriors(self, mel: torch.Tensor, kind: str = "sigmoid") -> torch.Tensor:
        """Class probabilities `[B, num_classes]`: independent sigmoids (multi-label) or a softmax."""
        logits = self.forward(mel)
        if kind == "sigmoid":
            return torch.sigmoid(logits)
        if kind == "softmax":
            return torch.softmax(logits, dim=-1)
        raise ValueError(f"posteriors kind={kind!r}: use 'sigmoid' or 'softmax'")
