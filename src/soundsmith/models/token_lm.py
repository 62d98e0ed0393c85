"""Token language model: a decoder-only transformer over codec tokens, conditioned on text (MusicGen-style).

A clip's codes ``[B, K, T]`` (``K`` codebooks of a :class:`~soundsmith.models.codec.Codec`, ``T`` frames) are laid
out as a sequence of ``S`` steps of ``K`` slots by an *interleaving pattern* (:func:`pattern_positions`):

- ``parallel``: step ``t`` holds every codebook of frame ``t`` (``S = T``);
- ``delay`` (MusicGen): codebook ``k`` is delayed by ``k`` steps (``S = T + K - 1``), so codebook ``k`` of frame
  ``t`` is predicted after codebooks ``< k`` of the same frame;
- ``flat``: one codebook per step, frame by frame (``S = K T``; the exact but slowest factorisation).

Slots that hold no code get the special token ``V`` (= ``codebook_size``). The model embeds a step as the sum of
the ``K`` slot embeddings (one table of ``V + 1`` per codebook) and predicts the next step's ``K`` codes with ``K``
heads of ``V`` logits. Each block: causal self-attention with relative positions (Music Transformer, skewed: see
``soundsmith.nn.relative_attention``), cross-attention to the frozen text encoder's tokens, MLP (pre-LayerNorm).

Classifier-free guidance: ``drop [B]`` swaps a row's text for a learned null token. ``forward(..., cache=...)``
runs incrementally: a :class:`LMCache` keeps each layer's keys/values (at most ``context`` steps: beyond that the
window slides, which relative positions make seamless) and the text keys/values (computed once).

:class:`TokenLM` is the composite a model directory holds: this network + the codec and text encoder (frozen).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundsmith.config import as_dataclass
from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.composite import Component, CompositeModel
from soundsmith.models.registry import ShippedRef, TextEncoderSpec
from soundsmith.nn.relative_attention import RelativeSelfAttention

PATTERNS = ("delay", "parallel", "flat")


# --- interleaving patterns ------------------------------------------------------------------------------------


def pattern_steps(pattern: str, K: int, T: int) -> int:
    """Sequence length ``S`` of ``T`` frames of ``K`` codebooks under ``pattern``."""
    return {"parallel": T, "delay": T + K - 1, "flat": K * T}[pattern] if T > 0 else 0


def pattern_positions(pattern: str, K: int, T: int, device: torch.device | None = None) -> Tensor:
    """``[K, T]`` int64: the step at which codebook ``k`` of frame ``t`` sits (its slot is ``k``)."""
    if pattern not in PATTERNS:
        raise ConfigError(f"pattern={pattern!r} is unknown; use one of {list(PATTERNS)}")
    k = torch.arange(K, device=device)[:, None]
    t = torch.arange(T, device=device)[None]
    if pattern == "parallel":
        return t.expand(K, T).clone()
    if pattern == "delay":
        return t + k
    return t * K + k


def build_pattern(codes: Tensor, pattern: str, special: int) -> Tensor:
    """codes ``[B, K, T]`` -> sequence ``[B, K, S]`` (empty slots = ``special``)."""
    B, K, T = codes.shape
    pos = pattern_positions(pattern, K, T, codes.device)
    seq = torch.full((B, K, pattern_steps(pattern, K, T)), special, dtype=codes.dtype, device=codes.device)
    return seq.scatter(2, pos.expand(B, K, T), codes)


def revert_pattern(seq: Tensor, pattern: str, T: int) -> Tensor:
    """sequence ``[B, K, S]`` -> codes ``[B, K, T]`` (the inverse of :func:`build_pattern`)."""
    B, K, _ = seq.shape
    return seq.gather(2, pattern_positions(pattern, K, T, seq.device).expand(B, K, T))


def valid_mask(pattern: str, K: int, T: int, device: torch.device | None = None) -> Tensor:
    """bool ``[K, S]``: True on the slots that hold a code (the others hold the special token)."""
    mask = torch.zeros(K, pattern_steps(pattern, K, T), dtype=torch.bool, device=device)
    return mask.scatter(1, pattern_positions(pattern, K, T, device), True)


def frames_for_steps(pattern: str, K: int, steps: int) -> int:
    """How many leading frames are complete after ``steps`` steps."""
    if pattern == "parallel":
        return steps
    if pattern == "delay":
        return max(0, steps - K + 1)
    return steps // K


# --- the network ----------------------------------------------------------------------------------------------


@dataclass
class TokenLMNetConfig:
    """Hyperparameters of :class:`TokenLMNet` (``num_codebooks`` x ``codebook_size`` must fit the codec)."""

    num_codebooks: int = 4
    codebook_size: int = 1024
    d_model: int = 256
    layers: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384
    max_distance: int = 512  # relative-position table size (longer distances share the last entry)
    attention: str = "skew"  # skew | naive | none (the benchmark's baseline)

    def __post_init__(self) -> None:
        for name in (
            "num_codebooks",
            "codebook_size",
            "d_model",
            "layers",
            "heads",
            "text_dim",
            "max_distance",
        ):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"TokenLMNetConfig.{name}={getattr(self, name)!r} must be >= 1")
        if self.d_model % self.heads:
            raise ConfigError(
                f"TokenLMNetConfig.d_model={self.d_model} must be a multiple of heads={self.heads}"
            )


@dataclass
class LMCache:
    """KV cache of an incremental run: per layer ``(k, v)`` ``[B, H, P, D]`` and the text keys/values."""

    context: int
    layers: list[tuple[Tensor, Tensor] | None] = field(default_factory=list)
    text: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    text_mask: Tensor | None = None

    @property
    def length(self) -> int:
        first = self.layers[0] if self.layers else None
        return 0 if first is None else int(first[0].shape[2])


class Block(nn.Module):
    """Pre-LN: relative causal self-attention, cross-attention to text, MLP: ``[B, L, d] -> [B, L, d]``."""

    def __init__(self, c: TokenLMNetConfig) -> None:
        super().__init__()
        d = c.d_model
        self.heads = c.heads
        self.norm1 = nn.LayerNorm(d)
        self.attn = RelativeSelfAttention(d, c.heads, c.max_distance, c.attention)
        self.norm2 = nn.LayerNorm(d)
        self.q_cross = nn.Linear(d, d)
        self.kv_cross = nn.Linear(c.text_dim, 2 * d)
        self.proj_cross = nn.Linear(d, d)
        self.norm3 = nn.LayerNorm(d)
        hidden = int(d * c.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))

    def _heads(self, x: Tensor) -> Tensor:  # [B, L, d] -> [B, H, L, d/H]
        B, L, d = x.shape
        return x.view(B, L, self.heads, d // self.heads).transpose(1, 2)

    def text_kv(self, text: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv_cross(text).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def forward(
        self,
        x: Tensor,
        text_kv: tuple[Tensor, Tensor],
        text_mask: Tensor,
        past: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, L, d = x.shape
        a, kv = self.attn(self.norm1(x), past)
        x = x + a
        q = self._heads(self.q_cross(self.norm2(x)))
        c = F.scaled_dot_product_attention(q, *text_kv, attn_mask=text_mask[:, None, None, :])
        x = x + self.proj_cross(c.transpose(1, 2).reshape(B, L, d))
        return x + self.mlp(self.norm3(x)), kv


class TokenLMNet(nn.Module):
    """``forward(steps [B, K, L], text [B, Lt, Dt], text_mask [B, Lt], drop [B] | None, cache) -> [B, K, L, V]``.

    ``steps`` are input columns (codes in ``[0, V]``, ``V`` the special token); output column ``s`` holds the
    logits of the step after input column ``s``.
    """

    def __init__(self, config: TokenLMNetConfig) -> None:
        super().__init__()
        self.config = c = config
        V, K, d = c.codebook_size, c.num_codebooks, c.d_model
        self.embed = nn.ModuleList(nn.Embedding(V + 1, d) for _ in range(K))
        self.null_text = nn.Parameter(torch.zeros(1, 1, c.text_dim))
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.out_norm = nn.LayerNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, V) for _ in range(K))

    def condition(self, text: Tensor, text_mask: Tensor, drop: Tensor | None) -> tuple[Tensor, Tensor]:
        """Swap dropped rows' text for the null token (attending to it alone): ``(text, mask)``."""
        text_mask = text_mask.bool()
        if drop is None:
            return text, text_mask
        keep = ~drop.bool().to(text.device)
        text = torch.where(keep[:, None, None], text, self.null_text.expand_as(text))
        first = torch.zeros_like(text_mask)
        first[:, 0] = True
        return text, torch.where(keep[:, None], text_mask, first)

    def forward(
        self,
        steps: Tensor,
        text: Tensor,
        text_mask: Tensor,
        drop: Tensor | None = None,
        cache: LMCache | None = None,
    ) -> Tensor:
        c = self.config
        B, K, L = steps.shape
        if K != c.num_codebooks:
            raise ModelError(f"got {K} codebooks, the model predicts {c.num_codebooks}")
        if text.shape[-1] != c.text_dim:
            raise ModelError(f"text embeddings are {text.shape[-1]}-d, the model expects {c.text_dim}")
        h = sum(self.embed[k](steps[:, k]) for k in range(K))  # [B, L, d]
        if cache is not None and cache.text:
            text_kvs, mask = cache.text, cache.text_mask
        else:
            text, mask = self.condition(text, text_mask, drop)
            text_kvs = [block.text_kv(text) for block in self.blocks]
            if cache is not None:
                cache.text, cache.text_mask = text_kvs, mask
                cache.layers = [None] * len(self.blocks)
        assert mask is not None
        for i, block in enumerate(self.blocks):
            past = cache.layers[i] if cache is not None else None
            h, kv = block(h, text_kvs[i], mask, past)
            if cache is not None:
                k, v = kv
                cache.layers[i] = (k[:, :, -cache.context :], v[:, :, -cache.context :])  # the sliding window
        h = self.out_norm(h)
        return torch.stack([head(h) for head in self.heads], 1)  # [B, K, L, V]


# --- the composite --------------------------------------------------------------------------------------------


@dataclass
class TokenLMConfig:
    """A codec-token language model: the network, the frozen codec and text encoder, training and sampling
    defaults.

    ``codec``: a shipped name or model/run directory of a trained :class:`~soundsmith.models.codec.Codec` (used
    when the model is built without explicit components; a saved model records its own). ``pattern``: one of
    :data:`PATTERNS`. ``context``: the longest sequence (steps) attended to; generation beyond it slides the window.
    Training: ``cond_drop_prob`` of captions dropped (classifier-free guidance). Sampling: ``guidance`` (1 = off),
    ``temperature``, ``top_k``, ``top_p``, ``duration`` (s), ``stream_frames`` (frames per streamed chunk) and
    ``stream_context`` (frames of codec context decoded around a chunk).
    """

    net: TokenLMNetConfig = field(default_factory=TokenLMNetConfig)
    codec: str = "codec"
    text_encoder: str = "minilm"
    sample_rate: int = 16000
    pattern: str = "delay"
    context: int = 512
    cond_drop_prob: float = 0.1
    guidance: float = 3.0
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 1.0
    duration: float = 4.0
    max_duration: float = 60.0
    stream_frames: int = 25
    stream_context: int = 8

    def __post_init__(self) -> None:
        self.net = as_dataclass(TokenLMNetConfig, self.net, "TokenLMConfig.net")
        if self.pattern not in PATTERNS:
            raise ConfigError(
                f"TokenLMConfig.pattern={self.pattern!r} is unknown; use one of {list(PATTERNS)}"
            )
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ConfigError(f"TokenLMConfig.cond_drop_prob={self.cond_drop_prob} must be in [0, 1)")
        if self.context < 2:
            raise ConfigError(f"TokenLMConfig.context={self.context} must be >= 2 steps")
        if not (0 < self.duration <= self.max_duration):
            raise ConfigError(
                f"TokenLMConfig: need 0 < duration ({self.duration}) <= max_duration ({self.max_duration})"
            )
        if self.stream_frames < 1 or self.stream_context < 0:
            raise ConfigError("TokenLMConfig: stream_frames must be >= 1 and stream_context >= 0")

    @property
    def special(self) -> int:
        return self.net.codebook_size


class TokenLM(CompositeModel):
    """Codec-token LM: ``forward`` is the network; :meth:`audio_to_codes` / :meth:`codes_to_audio` use the codec.

    Components: ``codec`` (a ``Codec``) and ``text_encoder``; as ``ShippedRef``/``TextEncoderSpec`` they are the
    frozen shared modules, as modules (tests) they are submodules with gradients off.
    """

    def __init__(self, config: TokenLMConfig, components: Mapping[str, Component] | None = None) -> None:
        parts: dict[str, Component] = {
            "codec": ShippedRef(config.codec),
            "text_encoder": TextEncoderSpec(config.text_encoder),
            **dict(components or {}),
        }
        unknown = sorted(set(parts) - {"codec", "text_encoder"})
        if unknown:
            raise ModelError(f"TokenLM has no component {unknown[0]!r}; its components: codec, text_encoder")
        super().__init__(config, parts)
        for module in self.components.values():
            module.requires_grad_(False)
        self.net = TokenLMNet(config.net)
        self._checked = False

    @property
    def codec(self) -> nn.Module:
        return self.part("codec")

    @property
    def text_encoder(self) -> nn.Module:
        return self.part("text_encoder")

    def train(self, mode: bool = True) -> TokenLM:
        super().train(mode)
        for module in self.components.values():  # the frozen codec never updates its codebooks here
            module.eval()
        return self

    def check_parts(self) -> None:
        """One clear error if codec, text encoder and network do not fit together."""
        if self._checked:
            return
        c, codec = self.config, self.codec
        if codec.config.sample_rate != c.sample_rate:
            raise ModelError(
                f"the codec works at {codec.config.sample_rate} Hz, the model at {c.sample_rate}"
            )
        if (
            c.net.num_codebooks > codec.config.num_quantizers
            or c.net.codebook_size != codec.config.codebook_size
        ):
            raise ModelError(
                f"the network predicts {c.net.num_codebooks} codebooks of {c.net.codebook_size} but the codec has "
                f"{codec.config.num_quantizers} of {codec.config.codebook_size}; match them"
            )
        if self.text_encoder.dim != c.net.text_dim:
            raise ModelError(
                f"text encoder {c.text_encoder!r} gives {self.text_encoder.dim}-d embeddings, net.text_dim is "
                f"{c.net.text_dim}"
            )
        self._checked = True

    def frames(self, num_samples: int) -> int:
        return int(self.codec.frames(num_samples))

    @torch.no_grad()
    def audio_to_codes(self, audio: Tensor) -> Tensor:
        """Audio ``[B, T]`` -> codes ``[B, K, ceil(T / hop)]`` (the first ``K = net.num_codebooks`` codebooks)."""
        self.check_parts()
        return self.codec.encode(audio, self.config.net.num_codebooks)

    @torch.no_grad()
    def codes_to_audio(self, codes: Tensor, length: int | None = None) -> Tensor:
        """Codes ``[B, K, T']`` -> audio ``[B, length]``."""
        return self.codec.decode(codes, length)

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Prompts -> ``(tokens [B, L, D], mask [B, L])`` on the model's device."""
        self.check_parts()
        emb = self.text_encoder.encode(list(prompts))
        device = self._device()
        return emb.tokens.float().to(device), emb.mask.to(device)

    def inputs_for(self, seq: Tensor) -> Tensor:
        """Pattern sequence ``[B, K, S]`` -> the network's input ``[B, K, S]``: a start column of special tokens
        followed by ``seq[..., :-1]`` (teacher forcing: column ``s`` predicts ``seq[..., s]``)."""
        start = torch.full_like(seq[..., :1], self.config.special)
        return torch.cat([start, seq[..., :-1]], -1)

    def new_cache(self) -> LMCache:
        return LMCache(context=self.config.context)

    def forward(
        self,
        steps: Tensor,
        text: Tensor,
        text_mask: Tensor,
        drop: Tensor | None = None,
        cache: LMCache | None = None,
    ) -> Tensor:
        """The network (see :class:`TokenLMNet`): ``[B, K, L]`` -> logits ``[B, K, L, V]``."""
        return self.net(steps, text, text_mask, drop, cache)
