"""The text-encoder interface: :class:`TextEncoder` and the :class:`TextEmbedding` it returns.

Every encoder is a frozen ``nn.Module`` (no gradients, always in eval mode), deterministic and batched.
``encode(texts)`` checks the prompts, tokenizes them, truncates those longer than ``max_length`` tokens and
returns per-token vectors, a padding mask and one pooled vector per prompt, on the module's device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from soundsmith.errors import TextError

MAX_PROMPT_CHARS = 2000
"""Prompts longer than this many characters are rejected (not truncated): they are almost surely a mistake."""


@dataclass
class TextEmbedding:
    """What an encoder returns for a batch of ``B`` prompts.

    - ``tokens``: float32 ``[B, L, D]``, one vector per token; padded positions are exactly zero.
      ``L`` is the longest (truncated) prompt of the batch, so it is at most ``max_length``.
    - ``mask``: bool ``[B, L]``, True where ``tokens`` holds a real token; every row has at least one True.
    - ``pooled``: float32 ``[B, D]``, the L2-normalised mean of the real tokens (one vector per prompt).
    - ``truncated``: ``B`` flags, True where the prompt had more than ``max_length`` tokens and was cut.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor
    truncated: list[bool] = field(default_factory=list)

    @property
    def num_truncated(self) -> int:
        """How many prompts of the batch were truncated to ``max_length`` tokens."""
        return sum(self.truncated)

    def to(self, device: torch.device | str) -> TextEmbedding:
        """The same embedding with its tensors on ``device``."""
        return TextEmbedding(
            self.tokens.to(device), self.mask.to(device), self.pooled.to(device), list(self.truncated)
        )

    def __len__(self) -> int:
        return self.tokens.shape[0]


def check_prompts(texts: object) -> list[str]:
    """Validate a batch of prompts and return it as a list.

    Raises :class:`TextError` for a single ``str`` (pass a list), an empty batch, a non-``str`` item,
    an empty or whitespace-only prompt, or a prompt longer than :data:`MAX_PROMPT_CHARS` characters.
    """
    if isinstance(texts, str | bytes):
        raise TextError(
            f"encode() takes a list of prompts, got a single {type(texts).__name__} {texts[:40]!r}...; "
            "wrap it in a list: encode([prompt])"
        )
    if not isinstance(texts, Sequence):
        raise TextError(
            f"encode() takes a list of prompts (str), got {type(texts).__name__}; pass e.g. ['a dog barks']"
        )
    prompts = list(texts)
    if not prompts:
        raise TextError(
            "encode() got an empty list of prompts; pass at least one prompt, e.g. ['a dog barks']"
        )
    for i, text in enumerate(prompts):
        if not isinstance(text, str):
            raise TextError(
                f"prompt {i} is a {type(text).__name__} ({text!r:.60}), not a str; "
                "pass text prompts (decode bytes first)"
            )
        if not text.strip():
            raise TextError(
                f"prompt {i} is empty or whitespace-only ({text!r:.20}); "
                "describe the sound in words, e.g. 'a dog barks'"
            )
        if len(text) > MAX_PROMPT_CHARS:
            raise TextError(
                f"prompt {i} has {len(text)} characters, more than the limit of {MAX_PROMPT_CHARS}; "
                "shorten it to a caption of a sentence or two"
            )
    return prompts


def masked_mean_normalized(tokens: torch.Tensor, mask: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """L2-normalised mean of ``tokens [B, L, D]`` over the True positions of ``mask [B, L]`` -> ``[B, D]``.

    The sentence-transformers pooling recipe (mean over the attention mask, then L2 normalisation).
    """
    weights = mask.to(tokens.dtype).unsqueeze(-1)  # [B, L, 1]
    summed = (tokens * weights).sum(dim=1)  # [B, D]
    count = weights.sum(dim=1).clamp(min=1.0)  # [B, 1]
    return nn.functional.normalize(summed / count, dim=-1, eps=eps)


class TextEncoder(nn.Module):
    """Base class of soundsmith's text encoders (conditioners).

    Subclasses set ``name`` (a spec that :func:`soundsmith.text.build_text_encoder` turns back into an
    equivalent encoder), ``dim`` (``D``) and ``max_length`` (tokens kept per prompt; longer prompts are
    truncated and flagged in ``TextEmbedding.truncated``), and implement :meth:`_encode` on prompts that
    :func:`check_prompts` has already validated.

    The encoder is frozen: its parameters never require gradients and :meth:`train` leaves it in eval mode,
    so a parent model's ``.train()`` cannot switch on dropout. Outputs live on the device of the
    ``_device_anchor`` buffer, which ``.to(device)`` moves with the module.
    """

    name: str
    dim: int
    max_length: int

    def __init__(self) -> None:
        super().__init__()
        # An empty buffer whose only job is to follow .to(device), so encoders whose weights are held
        # outside the module (the shared cache of hf.py) still know where to put their outputs.
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self.train(False)

    @property
    def device(self) -> torch.device:
        """The device the module is on; ``encode`` returns tensors there."""
        return self._device_anchor.device

    def freeze(self) -> TextEncoder:
        """Turn off gradients for every parameter and switch to eval mode; returns ``self``."""
        self.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> TextEncoder:
        """Frozen encoders stay in eval mode whatever ``mode`` is asked for."""
        return super().train(False)

    def encode(self, texts: Sequence[str]) -> TextEmbedding:
        """Encode a batch of ``B`` prompts -> :class:`TextEmbedding` (``tokens [B, L, D]``, ``mask [B, L]``,
        ``pooled [B, D]``, ``truncated``). Prompts longer than ``max_length`` tokens are truncated.

        Raises :class:`TextError` for an empty batch, a non-str item, an empty or whitespace-only prompt, or a
        prompt longer than :data:`MAX_PROMPT_CHARS` characters.
        """
        prompts = check_prompts(texts)
        with torch.no_grad():
            return self._encode(prompts)

    def forward(self, texts: Sequence[str]) -> TextEmbedding:
        """Same as :meth:`encode`."""
        return self.encode(texts)

    def _encode(self, prompts: list[str]) -> TextEmbedding:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.name!r}, dim={self.dim}, max_length={self.max_length}"
