"""Audio tagger: a compact PANNs-style CNN over log-mel, multi-label over the corpus classes.

Used by the evaluation suite: `embed()` gives the penultimate embedding for FAD, `posteriors()` the class
probabilities for KL, IS and text adherence. The network is pure: losses live in train/objectives/tagger.py.

Input layout: log-mel `[B, n_mels, frames]` as produced by `soundsmith.audio.mel_spectrogram` with
`TaggerConfig.mel` (a `soundsmith.audio.MelConfig`; the CNN itself is `soundsmith.nn.conv.ConvAudioEncoder`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from soundsmith.audio import MelConfig
from soundsmith.config import as_dataclass
from soundsmith.errors import ConfigError
from soundsmith.nn.conv import ConvAudioEncoder


@dataclass
class TaggerConfig:
    labels: list[str] = field(default_factory=list)  # class names, index order of the logits
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])  # one conv block each
    embed_dim: int = 256  # penultimate embedding size (FAD features)
    dropout: float = 0.2
    # the front end the model expects (travels with the weights); a mapping fills MelConfig's fields
    mel: MelConfig = field(default_factory=MelConfig)

    def __post_init__(self) -> None:
        self.mel = as_dataclass(MelConfig, self.mel, "TaggerConfig.mel")
        if not self.labels:
            raise ConfigError("TaggerConfig.labels is empty: list the class names the tagger predicts")
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"TaggerConfig.labels has duplicates: {self.labels}; give each class once")
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ConfigError(f"TaggerConfig.channels={self.channels}: give one positive width per block")
        if self.embed_dim <= 0:
            raise ConfigError(f"TaggerConfig.embed_dim={self.embed_dim} must be positive")

    @property
    def sample_rate(self) -> int:
        """The audio rate the model expects (``mel.sample_rate``)."""
        return self.mel.sample_rate

    def mel_config(self) -> MelConfig:
        """The `soundsmith.audio.MelConfig` this model's input is computed with (``self.mel``)."""
        return self.mel


class AudioTagger(nn.Module):
    """Multi-label audio tagger. `forward(mel [B, n_mels, frames]) -> logits [B, num_classes]`."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ConvAudioEncoder(
            config.mel.n_mels, list(config.channels), config.embed_dim, config.dropout
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
