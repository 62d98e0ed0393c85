"""CLAP-style audio-text contrastive model for evaluation (CLAP score, embeddings).

Audio branch: the shared log-mel CNN (`soundsmith.nn.conv.ConvAudioEncoder`, as the tagger's) over log-mel
computed with `config.mel`, + a projection. Text branch: a projection over the pooled embedding of a frozen text
encoder that is supplied from outside (`config.text_encoder` names it, e.g. "minilm" ->
`soundsmith.text.build_text_encoder("minilm")`, 384-d). A learnable temperature scales the
cosine similarities. The symmetric InfoNCE loss lives in train/objectives/clap.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from soundsmith.audio import MelConfig
from soundsmith.config import as_dataclass
from soundsmith.errors import ConfigError
from soundsmith.nn.conv import ConvAudioEncoder


@dataclass
class ClapConfig:
    text_encoder: str = "minilm"  # spec for soundsmith.text.build_text_encoder (frozen, not in the weights)
    text_dim: int = 384  # pooled size of that encoder
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    audio_embed_dim: int = 256
    proj_dim: int = 128  # shared audio-text space
    dropout: float = 0.1
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0
    # the front end the model expects (travels with the weights); a mapping fills MelConfig's fields
    mel: MelConfig = field(default_factory=MelConfig)

    def __post_init__(self) -> None:
        self.mel = as_dataclass(MelConfig, self.mel, "ClapConfig.mel")
        for name in ("text_dim", "audio_embed_dim", "proj_dim"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ClapConfig.{name}={getattr(self, name)} must be positive")
        if not 0 < self.init_temperature < 1:
            raise ConfigError(f"ClapConfig.init_temperature={self.init_temperature}: use a value in (0, 1)")

    @property
    def sample_rate(self) -> int:
        """The audio rate the model expects (``mel.sample_rate``)."""
        return self.mel.sample_rate

    def mel_config(self) -> MelConfig:
        """The `soundsmith.audio.MelConfig` this model's input is computed with (``self.mel``)."""
        return self.mel


class Projection(nn.Module):
    """Linear -> GELU -> Linear with a residual on the first linear, then LayerNorm: `[B, Din] -> [B, Dout]`."""

    def __init__(self, d_in: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.lin1 = nn.Linear(d_in, d_out)
        self.lin2 = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin1(x)
        return self.norm(h + self.dropout(self.lin2(F.gelu(h))))


class AudioTextContrastive(nn.Module):
    """`forward(mel [B, n_mels, frames], text_pooled [B, text_dim]) -> (audio [B, P], text [B, P], scale)`.

    Both embeddings are L2-normalised; `scale` is the exp of the learnable log-temperature (clamped).
    """

    def __init__(self, config: ClapConfig) -> None:
        super().__init__()
        self.config = config
        self.audio_encoder = ConvAudioEncoder(
            config.mel.n_mels, list(config.channels), config.audio_embed_dim, config.dropout
        )
        self.audio_proj = Projection(config.audio_embed_dim, config.proj_dim, config.dropout)
        self.text_proj = Projection(config.text_dim, config.proj_dim, config.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised audio embedding `[B, proj_dim]`."""
        return F.normalize(self.audio_proj(self.audio_encoder(mel)), dim=-1)

    def encode_text(self, text_pooled: torch.Tensor) -> torch.Tensor:
        """Normalised text embedding `[B, proj_dim]` from the frozen encoder's pooled output `[B, text_dim]`."""
        if text_pooled.shape[-1] != self.config.text_dim:
            raise ValueError(
                f"text embedding has size {text_pooled.shape[-1]} but ClapConfig.text_dim="
                f"{self.config.text_dim}; use the text encoder named in config.text_encoder"
            )
        return F.normalize(self.text_proj(text_pooled), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    def forward(
        self, mel: torch.Tensor, text_pooled: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.encode_audio(mel), self.encode_text(text_pooled), self.scale()
