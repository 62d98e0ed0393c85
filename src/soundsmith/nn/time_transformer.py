"""The time transformer: a text-conditioned transformer over the time axis of mel-VAE latents.

It is the latent diffusion family's denoiser (``models/latent_diffusion.py``) and GANmix's token-reading
generator (``models/ganmix.py``, ``generator.arch: transformer``), so it lives here, among the shared layers.

The latent of a clip is ``[B, C, F, T]`` (VAE channels, compressed mel bins, compressed frames). The network
folds frequency into channels, so it attends over ``T`` time tokens only: on a CPU, self-attention over the
``F x T`` positions of a 2-D latent dominates a UNet's time, while ~100 time tokens cost ~10x less for more
parameters (../shared/ANCHORS.md measured both on this machine kind).

One block = adaptive LayerNorm (scale, shift, gate from the timestep + pooled-text vector, as in DiT) ->
self-attention with rotary positions (so any clip length works, not only the training length) -> cross-attention
to the text encoder's token embeddings (padding masked) -> MLP. The output layer starts at zero, so an
untrained model predicts zero.

Classifier-free guidance needs an unconditional prediction: :meth:`LatentDenoiser.forward` takes ``drop [B]``
(bool) and swaps the text tokens and pooled vector of the dropped rows for learned "null" embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundsmith.errors import ConfigError, ModelError

PREDICTIONS = ("flow", "epsilon", "v_prediction")


@dataclass
class LatentDenoiserConfig:
    """Hyperparameters of :class:`LatentDenoiser`.

    ``latent_channels`` x ``latent_bins`` must match the VAE (its latent channels and ``n_mels / freq_down``).
    ``prediction`` says what the network outputs: ``flow`` (velocity ``noise - x0`` of the straight path
    ``x_t = (1 - t) x0 + t noise``), ``epsilon`` (the noise) or ``v_prediction``.
    ``guidance_embed``: the network also takes a classifier-free guidance scale per row and predicts the guided
    output in one pass (guidance distillation, Meng et al. 2023, "On distillation of guided diffusion models"):
    half the work of a guided step. Scale 1 is the plain conditional prediction.
    """

    latent_channels: int = 8
    latent_bins: int = 16
    d_model: int = 256
    layers: int = 8
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384
    text_encoder: str = "minilm"  # spec for soundsmith.text.build_text_encoder (frozen, not in the weights)
    prediction: str = "flow"
    rope_base: float = 10000.0
    guidance_embed: bool = False

    def __post_init__(self) -> None:
        for name in ("latent_channels", "latent_bins", "d_model", "layers", "heads", "text_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"LatentDenoiserConfig.{name}={getattr(self, name)!r} must be >= 1")
        if self.d_model % self.heads or (self.d_model // self.heads) % 2:
            raise ConfigError(
                f"LatentDenoiserConfig.d_model={self.d_model} must split into {self.heads} heads of an even size"
            )
        if self.mlp_ratio <= 0:
            raise ConfigError(f"LatentDenoiserConfig.mlp_ratio={self.mlp_ratio} must be > 0")
        if self.prediction not in PREDICTIONS:
            raise ConfigError(
                f"LatentDenoiserConfig.prediction={self.prediction!r} is unknown; use one of {list(PREDICTIONS)}"
            )


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding ``[B, dim]`` of continuous timesteps ``t [B]`` (scaled so ``t`` in [0, 1] spreads)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rotary_angles(
    T: int, D: int, base: float, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """``(cos, sin)``, each ``[T, D/2]``: the rotary angles of positions ``0..T-1`` (computed once per forward)."""
    inv = 1.0 / (base ** (torch.arange(0, D, 2, device=device, dtype=torch.float32) / D))
    angles = torch.arange(T, device=device, dtype=torch.float32)[:, None] * inv[None]  # [T, D/2]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotary(x: Tensor, base: float, angles: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Rotary position embedding over the sequence axis of ``x [B, H, T, D]`` (D even)."""
    cos, sin = (
        angles if angles is not None else rotary_angles(x.shape[-2], x.shape[-1], base, x.device, x.dtype)
    )
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)


class Block(nn.Module):
    """AdaLN-modulated self-attention (rotary) + cross-attention to text + MLP."""

    def __init__(self, c: LatentDenoiserConfig) -> None:
        super().__init__()
        d, self.heads, self.rope_base = c.d_model, c.heads, c.rope_base
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.q_cross = nn.Linear(d, d)
        self.kv_cross = nn.Linear(c.text_dim, 2 * d)
        self.proj_cross = nn.Linear(d, d)
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False)
        hidden = int(d * c.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.modulation = nn.Linear(d, 6 * d)  # shift/scale/gate for attention and MLP
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def _heads(self, x: Tensor) -> Tensor:  # [B, T, d] -> [B, H, T, d/H]
        B, T, d = x.shape
        return x.view(B, T, self.heads, d // self.heads).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        cond: Tensor,
        text: Tensor,
        text_mask: Tensor,
        angles: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """x ``[B, T, d]``, cond ``[B, d]``, text ``[B, L, text_dim]``, text_mask ``[B, L]`` bool -> ``[B, T, d]``;
        ``angles``: :func:`rotary_angles` for ``T`` (computed here when None)."""
        B, T, d = x.shape
        s1, b1, g1, s2, b2, g2 = self.modulation(F.silu(cond))[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + s1) + b1
        q, k, v = (self._heads(z) for z in self.qkv(h).chunk(3, dim=-1))
        q, k = rotary(q, self.rope_base, angles), rotary(k, self.rope_base, angles)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, d)
        x = x + g1 * self.proj(a)
        q = self._heads(self.q_cross(self.norm2(x)))
        k, v = (self._heads(z) for z in self.kv_cross(text).chunk(2, dim=-1))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=text_mask[:, None, None, :])
        x = x + self.proj_cross(a.transpose(1, 2).reshape(B, T, d))
        h = self.norm3(x) * (1 + s2) + b2
        return x + g2 * self.mlp(h)


# the guidance scale enters the sinusoidal embedding as ``w / GUIDANCE_EMBED_SCALE`` (so scales 0..10 spread as
# timesteps 0..1 do)
GUIDANCE_EMBED_SCALE = 10.0


def _guidance_mlp(d: int) -> nn.Sequential:
    """The guidance-scale embedding added to the timestep + pooled-text vector; its output layer starts at zero,
    so a denoiser given one starts as the denoiser it was before (the conditional prediction at every scale)."""
    mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
    nn.init.zeros_(mlp[2].weight)
    nn.init.zeros_(mlp[2].bias)
    return mlp


class LatentDenoiser(nn.Module):
    """``forward(x [B, C, F, T], t [B], text_tokens [B, L, Dt], text_mask [B, L], pooled [B, Dt], drop [B]) ->
    [B, C, F, T]``: the prediction (``config.prediction``) for noisy latents ``x`` at times ``t`` in [0, 1]."""

    def __init__(self, config: LatentDenoiserConfig) -> None:
        super().__init__()
        self.config = c = config
        d, width = c.d_model, c.latent_channels * c.latent_bins
        self.inp = nn.Linear(width, d)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.pooled_proj = nn.Linear(c.text_dim, d)
        self.guidance_mlp = _guidance_mlp(d) if c.guidance_embed else None
        self.null_tokens = nn.Parameter(torch.zeros(1, 1, c.text_dim))
        self.null_pooled = nn.Parameter(torch.zeros(1, c.text_dim))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.out_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.out_mod = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, width)
        for layer in (self.out_mod, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def add_guidance_input(self) -> None:
        """Give the denoiser a guidance-scale input (``guidance_embed``; a no-op when it has one): it predicts as
        before at every scale until trained to guide in one pass (``soundsmith finetune --method guidance``)."""
        if self.guidance_mlp is None:
            self.config.guidance_embed = True
            self.guidance_mlp = _guidance_mlp(self.config.d_model).to(self.inp.weight.device, self.inp.weight.dtype)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        pooled: Tensor,
        drop: Tensor | None = None,
        guidance: Tensor | None = None,
    ) -> Tensor:
        B, C, Fb, T = x.shape
        h, cond, text_tokens, text_mask, angles = self._inputs(x, t, text_tokens, text_mask, pooled, drop, guidance)
        for block in self.blocks:
            h = block(h, cond, text_tokens, text_mask, angles)
        shift, scale = self.out_mod(F.silu(cond))[:, None].chunk(2, dim=-1)
        h = self.out(self.out_norm(h) * (1 + scale) + shift)  # [B, T, C*F]
        return h.transpose(1, 2).reshape(B, C, Fb, T)

    def hidden_states(
        self,
        x: Tensor,
        t: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        pooled: Tensor,
        guidance: Tensor | None = None,
        layers: int | None = None,
    ) -> list[Tensor]:
        """The token features ``[B, T, d_model]`` after each of the first ``layers`` blocks (all when None): what
        :meth:`forward` computes on its way to the prediction, for a network that reads the denoiser's features."""
        h, cond, text_tokens, text_mask, angles = self._inputs(x, t, text_tokens, text_mask, pooled, None, guidance)
        out = []
        for block in self.blocks[: len(self.blocks) if layers is None else layers]:
            h = block(h, cond, text_tokens, text_mask, angles)
            out.append(h)
        return out

    def _inputs(
        self,
        x: Tensor,
        t: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        pooled: Tensor,
        drop: Tensor | None,
        guidance: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[Tensor, Tensor]]:
        """What the blocks read: ``(h [B, T, d], cond [B, d], tokens, mask, rotary angles)``."""
        c = self.config
        B, C, Fb, T = x.shape
        if C != c.latent_channels or Fb != c.latent_bins:
            raise ModelError(
                f"latent of shape {tuple(x.shape)} does not match the denoiser "
                f"(latent_channels={c.latent_channels}, latent_bins={c.latent_bins}); use the VAE it was trained with"
            )
        if text_tokens.shape[-1] != c.text_dim:
            raise ModelError(
                f"text embeddings are {text_tokens.shape[-1]}-d, the denoiser expects {c.text_dim}"
            )
        text_mask = text_mask.bool()
        if drop is not None:
            keep = ~drop.bool()
            text_tokens = torch.where(
                keep[:, None, None], text_tokens, self.null_tokens.expand_as(text_tokens)
            )
            pooled = torch.where(keep[:, None], pooled, self.null_pooled.expand_as(pooled))
            # a dropped row attends to its first (null) token only
            first = torch.zeros_like(text_mask)
            first[:, 0] = True
            text_mask = torch.where(keep[:, None], text_mask, first)
        h = self.inp(x.reshape(B, C * Fb, T).transpose(1, 2))  # [B, T, d]
        cond = self.time_mlp(timestep_embedding(t, c.d_model)) + self.pooled_proj(pooled)  # [B, d]
        if self.guidance_mlp is not None:  # scale 1 (no guidance) unless given
            w = torch.ones(B, device=x.device) if guidance is None else guidance.reshape(B).to(x.device)
            cond = cond + self.guidance_mlp(timestep_embedding(w / GUIDANCE_EMBED_SCALE, c.d_model))
        elif guidance is not None:
            raise ModelError("this denoiser takes no guidance scale (guidance_embed is off); guide in two branches")
        angles = rotary_angles(
            T, c.d_model // c.heads, c.rope_base, h.device, h.dtype
        )  # shared by the blocks
        return h, cond, text_tokens, text_mask, angles
