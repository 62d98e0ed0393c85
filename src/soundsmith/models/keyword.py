"""Spoken-word recognizer: keyword spotting over a small vocabulary plus "no word" (a 1-D CNN over log-mel).

A temporal-convolution network in the style of TC-ResNet (Choi et al., 2019): the mel bins are the channels
of 1-D convolutions over time, which keeps it fast on CPU (hundreds of times real time on one core). The
clip's log-mel is normalised to its own maximum (so the gain of the clip does not matter), residual blocks
downsample time, and mean + max pooling over time feeds one linear layer with ``len(words) + 1`` outputs (the
last one is "no word"). The network is pure: augmentation and loss live in train/objectives/keyword.py.

Input: audio ``[B, T]`` at ``config.mel.sample_rate`` (``forward``), or log-mel ``[B, n_mels, frames]`` from
``soundsmith.audio.mel_spectrogram(audio, config.mel)`` (``forward_mel``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from soundsmith.audio import MelConfig, mel_spectrogram
from soundsmith.errors import ConfigError

NO_WORD = "<no word>"
CORPUS_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "yes", "no", "up", "down", "left", "right", "stop", "go", "on", "off",
]  # fmt: skip


def _default_mel() -> MelConfig:
    # 25 ms windows, 10 ms hop, 40 mel bands: the usual speech front end
    return MelConfig(sample_rate=16000, n_fft=512, hop_length=160, win_length=400, n_mels=40, fmin=20.0)


@dataclass
class KeywordConfig:
    """Recognizer hyperparameters; ``mel`` (the front end) travels with the weights."""

    words: list[str] = field(default_factory=lambda: list(CORPUS_WORDS))
    mel: MelConfig = field(default_factory=_default_mel)
    stem_channels: int = 64
    channels: list[int] = field(default_factory=lambda: [64, 64, 96, 96, 128])
    strides: list[int] = field(default_factory=lambda: [1, 2, 1, 2, 1])
    kernel_size: int = 9
    dropout: float = 0.1
    floor: float = 12.0  # log-mel values more than this below the clip's maximum are clamped (~104 dB)

    def __post_init__(self) -> None:
        if not self.words or len(set(self.words)) != len(self.words):
            raise ConfigError(f"KeywordConfig.words={self.words}: give each word once, at least one")
        if NO_WORD in self.words:
            raise ConfigError(f"KeywordConfig.words must not contain {NO_WORD!r}: it is the extra class")
        if len(self.channels) != len(self.strides) or not self.channels:
            raise ConfigError(
                f"KeywordConfig: channels ({self.channels}) and strides ({self.strides}) need the same length"
            )
        if any(c <= 0 for c in [self.stem_channels, *self.channels]) or any(s < 1 for s in self.strides):
            raise ConfigError("KeywordConfig: channels must be positive and strides >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"KeywordConfig.kernel_size={self.kernel_size} must be odd and positive")

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def classes(self) -> list[str]:
        """Output classes: the words, then :data:`NO_WORD`."""
        return [*self.words, NO_WORD]


class ResBlock1d(nn.Module):
    """Two k-wide 1-D convs + BN + ReLU with a residual: ``[B, Cin, T] -> [B, Cout, ceil(T / stride)]``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.skip(x))


class KeywordSpotter(nn.Module):
    """``forward(audio [B, T]) -> logits [B, len(words) + 1]`` (last class: no word)."""

    def __init__(self, config: KeywordConfig) -> None:
        super().__init__()
        self.config = config
        n_mels = config.mel.n_mels
        self.bn0 = nn.BatchNorm1d(n_mels)
        self.stem = nn.Sequential(
            nn.Conv1d(n_mels, config.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm1d(config.stem_channels),
            nn.ReLU(),
        )
        widths = [config.stem_channels, *config.channels]
        self.blocks = nn.ModuleList(
            ResBlock1d(a, b, config.kernel_size, s)
            for a, b, s in zip(widths[:-1], widths[1:], config.strides)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * widths[-1], len(config.classes))

    @property
    def classes(self) -> list[str]:
        return self.config.classes

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel ``[B, n_mels, frames]`` of audio ``[B, T]`` with this model's front end."""
        return mel_spectrogram(audio, self.config.mel)

    def embed_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Clip embedding ``[B, 2 * channels[-1]]`` (mean and max over time) of log-mel ``[B, n_mels, frames]``."""
        if mel.dim() != 3 or mel.shape[1] != self.config.mel.n_mels:
            raise ValueError(
                f"expected log-mel [B, {self.config.mel.n_mels}, frames], got {tuple(mel.shape)}"
            )
        peak = mel.amax(dim=(1, 2), keepdim=True)  # [B, 1, 1]
        x = torch.clamp(mel - peak, min=-self.config.floor)  # gain-invariant
        x = self.stem(self.bn0(x))  # [B, C, T]
        for block in self.blocks:
            x = block(x)  # [B, C', T']
        return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)  # [B, 2C']

    def forward_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, len(words) + 1]`` from log-mel ``[B, n_mels, frames]``."""
        return self.head(self.dropout(self.embed_mel(mel)))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, len(words) + 1]`` from audio ``[B, T]``."""
        return self.forward_mel(self.features(audio))

    @torch.no_grad()
    def recognize(self, audio: torch.Tensor) -> list[tuple[str, float]]:
        """``(word or NO_WORD, probability)`` per clip of audio ``[B, T]``."""
        prob = torch.softmax(self.forward(audio).float(), dim=-1)  # [B, K + 1]
        p, i = prob.max(dim=-1)
        return [(self.classes[int(k)], float(v)) for k, v in zip(i, p)]
