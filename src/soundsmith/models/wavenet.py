"""WaveNet: an autoregressive model of 8-bit mu-law audio (van den Oord et al., 2016).

The network is a stack of causal dilated convolutions with gated ``tanh(f) * sigmoid(g)`` units, residual and
skip connections, and 1x1 output layers (ReLU, 1x1, ReLU, 1x1) that give 256-way logits per time step.

Convention: ``logits[:, :, t]`` is the distribution of ``x[t + 1]`` given ``x[0..t]`` (and the conditioning).
Training therefore feeds ``x[:, :-1]`` and scores against ``x[:, 1:]``.

Conditioning (all optional, all off in the default config):

* global by category: ``gc_ids [B]`` -> ``nn.Embedding(gc_cardinality, gc_channels)``;
* global by caption: ``text_emb [B, text_dim]`` (a pooled text-encoder embedding) -> ``Linear(text_dim,
  gc_channels)``; the two add up to one global vector that every layer projects to its gate pre-activation;
* local by mel spectrogram: ``mel [B, lc_channels, frames]`` upsampled by ``hop_length`` ("transposed" conv or
  "repeat_conv": repeat then a 3-tap conv) and projected per layer. The upsampled ``mel_up[:, :, t]`` is used at
  input position ``t``.

The model is a pure network: losses live in ``train/objectives/wavenet.py``, text encoders in the pipeline and the
objective, generation in ``soundsmith.sampling``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from soundsmith.errors import ConfigError, ModelError

LC_UPSAMPLERS = ("transposed", "repeat_conv")


@dataclass
class WaveNetConfig:
    """Hyperparameters of :class:`WaveNet`. Dilations are ``stacks`` x (1, 2, 4, ..., 2**(layers_per_stack-1))."""

    quantization_channels: int = 256
    residual_channels: int = 32
    dilation_channels: int = 32
    skip_channels: int = 128
    kernel_size: int = 2
    stacks: int = 2
    layers_per_stack: int = 11
    sample_rate: int = 16000
    gc_cardinality: int = 0  # number of categories for global conditioning (0 = off)
    gc_channels: int = 16  # size of the global conditioning vector (categories and/or caption)
    text_encoder: str = ""  # spec for soundsmith.text.build_text_encoder ("" = no caption conditioning)
    text_dim: int = 0  # size of the caption embedding fed to the model (0 = off)
    lc_channels: int = 0  # mel bands for local conditioning (0 = off)
    lc_upsample: str = "transposed"  # "transposed" | "repeat_conv"
    hop_length: int = 160  # samples per mel frame
    labels: list[str] = field(default_factory=list)  # category names, index = gc id

    def __post_init__(self) -> None:
        positive = ("quantization_channels", "residual_channels", "dilation_channels", "skip_channels")
        for name in (*positive, "stacks", "layers_per_stack", "sample_rate", "hop_length"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"WaveNetConfig.{name}={getattr(self, name)!r} must be >= 1")
        if self.kernel_size < 2:
            raise ConfigError(
                f"WaveNetConfig.kernel_size={self.kernel_size} must be >= 2 (causal convolution)"
            )
        for name in ("gc_cardinality", "gc_channels", "text_dim", "lc_channels"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(
                    f"WaveNetConfig.{name}={getattr(self, name)!r} must be >= 0 (0 turns it off)"
                )
        if self.gc_channels == 0 and (self.gc_cardinality or self.text_dim):
            raise ConfigError(
                "WaveNetConfig.gc_channels=0 turns global conditioning off, but gc_cardinality="
                f"{self.gc_cardinality} / text_dim={self.text_dim} need it; set gc_channels >= 1"
            )
        if self.lc_upsample not in LC_UPSAMPLERS:
            raise ConfigError(
                f"WaveNetConfig.lc_upsample={self.lc_upsample!r} is unknown; use one of {list(LC_UPSAMPLERS)}"
            )
        if self.labels and self.gc_cardinality and len(self.labels) != self.gc_cardinality:
            raise ConfigError(
                f"WaveNetConfig.labels has {len(self.labels)} names but gc_cardinality={self.gc_cardinality}; "
                "give one name per category"
            )
        if self.text_encoder and self.text_dim == 0:
            raise ConfigError(
                f"WaveNetConfig.text_encoder={self.text_encoder!r} needs text_dim (the encoder's .dim), got 0"
            )

    @property
    def dilations(self) -> list[int]:
        return [2**i for _ in range(self.stacks) for i in range(self.layers_per_stack)]

    @property
    def receptive_field(self) -> int:
        """Number of input samples that one output depends on: ``(kernel_size - 1) * sum(dilations) + 1``."""
        return (self.kernel_size - 1) * sum(self.dilations) + 1

    @property
    def has_global_conditioning(self) -> bool:
        return self.gc_cardinality > 0 or self.text_dim > 0

    def macs_per_sample(self) -> int:
        """Multiply-adds to generate one sample (batch 1; global conditioning is precomputed once)."""
        r, d, s, q, k = (
            self.residual_channels,
            self.dilation_channels,
            self.skip_channels,
            self.quantization_channels,
            self.kernel_size,
        )
        per_layer = k * r * 2 * d + d * (r + s) + self.lc_channels * 2 * d
        return len(self.dilations) * per_layer + s * s + s * q


class ResidualLayer(nn.Module):
    """One gated layer: ``x [B, R, T] -> (x + res [B, R, T], skip [B, S, T])``."""

    def __init__(self, config: WaveNetConfig, dilation: int) -> None:
        super().__init__()
        c = config
        self.dilation = dilation
        self.pad = (c.kernel_size - 1) * dilation
        # filter and gate in one convolution: channels [0, D) filter, [D, 2D) gate
        self.dilated = nn.Conv1d(
            c.residual_channels, 2 * c.dilation_channels, c.kernel_size, dilation=dilation
        )
        self.gc_proj = (
            nn.Linear(c.gc_channels, 2 * c.dilation_channels, bias=False)
            if c.has_global_conditioning
            else None
        )
        self.lc_proj = (
            nn.Conv1d(c.lc_channels, 2 * c.dilation_channels, 1, bias=False) if c.lc_channels else None
        )
        # residual and skip 1x1 convolutions in one: channels [0, R) residual, [R, R+S) skip
        self.res_skip = nn.Conv1d(c.dilation_channels, c.residual_channels + c.skip_channels, 1)
        self.residual_channels = c.residual_channels

    def forward(
        self, x: torch.Tensor, g: torch.Tensor | None = None, lc: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, R, T], g [B, gc_channels] | None, lc [B, lc_channels, T] | None."""
        y = self.dilated(F.pad(x, (self.pad, 0)))  # [B, 2D, T], causal: left padding only
        if self.gc_proj is not None and g is not None:
            y = y + self.gc_proj(g).unsqueeze(-1)
        if self.lc_proj is not None and lc is not None:
            y = y + self.lc_proj(lc)
        f, gate = y.chunk(2, dim=1)
        z = torch.tanh(f) * torch.sigmoid(gate)  # [B, D, T]
        rs = self.res_skip(z)
        return x + rs[:, : self.residual_channels], rs[:, self.residual_channels :]


class WaveNet(nn.Module):
    """``forward(x [B, T] int64 codes, ...) -> logits [B, Q, T]`` with ``logits[:, :, t]`` predicting ``x[t+1]``."""

    def __init__(self, config: WaveNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        # the input layer: a 1x1 convolution of the one-hot codes is an embedding lookup
        self.embed = nn.Embedding(c.quantization_channels, c.residual_channels)
        self.gc_embed = nn.Embedding(c.gc_cardinality, c.gc_channels) if c.gc_cardinality else None
        self.text_proj = nn.Linear(c.text_dim, c.gc_channels) if c.text_dim else None
        self.lc_upsampler: nn.Module | None = None
        if c.lc_channels:
            if c.lc_upsample == "transposed":
                self.lc_upsampler = nn.ConvTranspose1d(
                    c.lc_channels, c.lc_channels, c.hop_length, stride=c.hop_length
                )
            else:
                self.lc_upsampler = nn.Conv1d(c.lc_channels, c.lc_channels, 3, padding=1)
        self.layers = nn.ModuleList(ResidualLayer(c, d) for d in c.dilations)
        self.out1 = nn.Conv1d(c.skip_channels, c.skip_channels, 1)
        self.out2 = nn.Conv1d(c.skip_channels, c.quantization_channels, 1)

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    # --- conditioning -------------------------------------------------------------------------------------
    def global_condition(
        self, batch: int, gc_ids: torch.Tensor | None = None, text_emb: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """The global conditioning vector ``[B, gc_channels]``, or None when the model has none.

        A missing input (``gc_ids`` or ``text_emb`` None) contributes zero (unconditional).
        """
        c = self.config
        if not c.has_global_conditioning:
            if gc_ids is not None or text_emb is not None:
                raise ModelError(
                    "this WaveNet has no global conditioning (gc_cardinality=0, text_dim=0); "
                    "pass gc_ids=None and text_emb=None"
                )
            return None
        w = self.layers[0].gc_proj.weight
        g = torch.zeros(batch, c.gc_channels, dtype=w.dtype, device=w.device)
        if gc_ids is not None:
            if self.gc_embed is None:
                raise ModelError("this WaveNet has gc_cardinality=0; pass gc_ids=None")
            gc_ids = torch.as_tensor(gc_ids, device=w.device).long().reshape(-1)
            if gc_ids.numel() and (int(gc_ids.min()) < 0 or int(gc_ids.max()) >= c.gc_cardinality):
                raise ModelError(f"gc_ids {gc_ids.tolist()} out of range: use 0..{c.gc_cardinality - 1}")
            g = g + self.gc_embed(gc_ids).expand(batch, -1)
        if text_emb is not None:
            if self.text_proj is None:
                raise ModelError("this WaveNet has text_dim=0; pass text_emb=None")
            if text_emb.shape[-1] != c.text_dim:
                raise ModelError(
                    f"text_emb has dim {text_emb.shape[-1]}, the model expects text_dim={c.text_dim}"
                )
            g = g + self.text_proj(text_emb.to(w.dtype)).expand(batch, -1)
        return g

    def upsample_mel(self, mel: torch.Tensor, length: int) -> torch.Tensor:
        """mel [B, lc_channels, frames] -> [B, lc_channels, length] (needs ``frames * hop_length >= length``)."""
        c = self.config
        if self.lc_upsampler is None:
            raise ModelError("this WaveNet has lc_channels=0 (no local conditioning); pass mel=None")
        if mel.dim() != 3 or mel.shape[1] != c.lc_channels:
            raise ModelError(f"mel has shape {tuple(mel.shape)}; expected [B, {c.lc_channels}, frames]")
        if mel.shape[-1] * c.hop_length < length:
            raise ModelError(
                f"mel has {mel.shape[-1]} frames x hop {c.hop_length} < {length} samples; give a longer mel"
            )
        mel = mel.to(self.out1.weight.dtype)
        if c.lc_upsample == "transposed":
            up = self.lc_upsampler(mel)
        else:
            up = self.lc_upsampler(mel.repeat_interleave(c.hop_length, dim=-1))
        return up[..., :length]

    # --- forward ------------------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        gc_ids: torch.Tensor | None = None,
        text_emb: torch.Tensor | None = None,
        mel: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, T] int64 mu-law codes -> logits [B, Q, T]; ``logits[:, :, t]`` predicts ``x[:, t + 1]``.

        gc_ids [B] | None, text_emb [B, text_dim] | None, mel [B, lc_channels, frames] | None.
        """
        if x.dim() != 2:
            raise ModelError(f"WaveNet input has shape {tuple(x.shape)}; expected [B, T] int64 codes")
        b, t = x.shape
        g = self.global_condition(b, gc_ids, text_emb)
        lc = self.upsample_mel(mel, t) if mel is not None else None
        return self.forward_features(x, g, lc)

    def forward_features(
        self, x: torch.Tensor, g: torch.Tensor | None = None, lc: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The network on prepared conditioning: x [B, T], g [B, gc_channels] | None, lc [B, C, T] upsampled.

        Returns logits [B, Q, T]. The naive generator calls this on windows of the sequence.
        """
        if lc is None and self.lc_upsampler is not None:
            raise ModelError(
                f"this WaveNet is conditioned on mels (lc_channels={self.config.lc_channels}); pass mel"
            )
        h = self.embed(x).transpose(1, 2)  # [B, R, T]
        skip = None
        for layer in self.layers:
            h, s = layer(h, g, lc)
            skip = s if skip is None else skip + s  # [B, S, T]
        return self.out2(F.relu(self.out1(F.relu(skip))))  # [B, Q, T]
