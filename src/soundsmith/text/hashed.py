"""A weight-free text encoder: hashed character n-grams (fastText-style subword hashing).

Needs no download, builds in milliseconds and gives identical embeddings in every process, which makes it
the encoder of the tiny presets and of the tests.
"""

from __future__ import annotations

import re
import zlib

import torch

from soundsmith.errors import TextError
from soundsmith.text.base import TextEmbedding, TextEncoder, masked_mean_normalized

_WORD_RE = re.compile(r"\w+|[^\w\s]")
NGRAM_SIZES = (3, 4)


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``: runs of letters/digits, and each punctuation mark on its own."""
    return _WORD_RE.findall(text.lower())


def ngram_buckets(word: str, num_buckets: int) -> list[int]:
    """Bucket indices of the character 3- and 4-grams of ``<word>`` (``<``/``>`` mark its edges).

    Uses ``zlib.crc32``, which is stable across processes and platforms (Python's ``hash`` is salted).
    A word too short for any n-gram (impossible with the edge marks, kept for safety) maps to its own hash.
    """
    marked = f"<{word}>"
    grams = [marked[i : i + n] for n in NGRAM_SIZES for i in range(len(marked) - n + 1)]
    if not grams:
        grams = [marked]
    return [zlib.crc32(f"{len(g)}:{g}".encode()) % num_buckets for g in grams]


class HashedTextEncoder(TextEncoder):
    """Word tokens whose vectors are sums of fixed pseudo-random vectors of their hashed character n-grams.

    - token vector = ``sum(table[bucket(g)] for g in 3/4-grams of <word>) / sqrt(#grams)``, ``[D]``;
      the table ``[num_buckets, D]`` is drawn once from ``torch.Generator().manual_seed(seed)`` with
      entries ``N(0, 1/D)``, so a token vector has norm close to 1.
    - ``pooled`` = L2-normalised mean of the token vectors.
    - Prompts with more than ``max_length`` word tokens are truncated to their first ``max_length`` words
      (flagged in ``TextEmbedding.truncated``).

    Words sharing n-grams ("bark", "barks", "barking") get similar vectors; word order is not encoded.
    The table is a non-persistent buffer: it is rebuilt from ``seed`` rather than saved in checkpoints.
    """

    def __init__(self, dim: int = 128, max_length: int = 32, seed: int = 0, num_buckets: int = 2**14) -> None:
        super().__init__()
        for label, value in (("dim", dim), ("max_length", max_length), ("num_buckets", num_buckets)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TextError(f"HashedTextEncoder {label}={value!r} is invalid; use a positive integer")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise TextError(f"HashedTextEncoder seed={seed!r} is invalid; use a non-negative integer")
        self.dim = dim
        self.max_length = max_length
        self.seed = seed
        self.num_buckets = num_buckets
        self.name = f"hashed:{dim}" if seed == 0 else f"hashed:{dim}:{seed}"
        generator = torch.Generator().manual_seed(seed)
        table = torch.randn(num_buckets, dim, generator=generator) / dim**0.5  # [num_buckets, D]
        self.register_buffer("table", table, persistent=False)
        self.freeze()

    def _encode(self, prompts: list[str]) -> TextEmbedding:
        tokenized = [words(p) for p in prompts]
        truncated = [len(t) > self.max_length for t in tokenized]
        tokenized = [t[: self.max_length] for t in tokenized]
        batch, length = len(prompts), max(len(t) for t in tokenized)

        # 1. Gather (flat token position, bucket, weight) triples for every n-gram of every token.
        positions: list[int] = []
        buckets: list[int] = []
        weights: list[float] = []
        mask = torch.zeros(batch, length, dtype=torch.bool)
        for b, toks in enumerate(tokenized):
            mask[b, : len(toks)] = True
            for i, word in enumerate(toks):
                ids = ngram_buckets(word, self.num_buckets)
                positions.extend([b * length + i] * len(ids))
                buckets.extend(ids)
                weights.extend([len(ids) ** -0.5] * len(ids))

        # 2. Sum the weighted n-gram vectors into their tokens.
        device = self.table.device
        vectors = self.table[torch.tensor(buckets, device=device)]  # [N, D]
        vectors = vectors * torch.tensor(weights, device=device, dtype=vectors.dtype).unsqueeze(-1)
        flat = torch.zeros(batch * length, self.dim, device=device, dtype=torch.float32)
        flat.index_add_(0, torch.tensor(positions, device=device), vectors.float())
        tokens = flat.view(batch, length, self.dim)  # [B, L, D]
        mask = mask.to(device)
        return TextEmbedding(tokens, mask, masked_mean_normalized(tokens, mask), truncated)
