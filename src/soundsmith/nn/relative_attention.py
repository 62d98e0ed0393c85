"""Causal self-attention with learned relative positions and Music Transformer's "skewing" (Huang et al. 2018).

Shaw et al. (2018) add to each attention logit a term ``q_i . E[i - j]`` that depends on the distance between
query ``i`` and key ``j``. Computed naively that needs a ``[L, L, D]`` tensor of gathered embeddings (``O(L^2 D)``
memory). Music Transformer's skewing gets the same ``[L, L]`` term from ``Q E^T`` (``[L, L]``, ``E`` ordered by
distance ``L-1 .. 0``) by padding one zero column on the left, reshaping and dropping the first row: ``O(L D)``
extra memory. Here the trick is written for a block of ``Lq`` queries that are the *last* ``Lq`` of ``Lk``
positions (``Lq = Lk``: training and prefill; ``Lq = 1``: cached incremental decoding), see :func:`skew`.

Distances beyond the table (``max_distance``) use the last embedding, so any length works and a sliding KV cache
keeps its meaning (positions are only ever relative).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODES = ("skew", "naive", "none")


def distance_table(table: Tensor, Lk: int) -> Tensor:
    """Learned embeddings ``[H, M, D]`` (row ``m`` = distance ``m``) -> ``[H, Lk, D]`` with row ``c`` the embedding of
    distance ``Lk - 1 - c`` (clamped to ``M - 1``): the order that :func:`skew` expects."""
    dist = torch.arange(Lk - 1, -1, -1, device=table.device).clamp(max=table.shape[1] - 1)
    return table[:, dist]


def skew(qe: Tensor) -> Tensor:
    """``qe [..., Lq, Lk]`` (``qe[i, c] = q_i . E[distance Lk-1-c]``) -> ``[..., Lq, Lk]`` with entry ``[i, j] =
    q_i . E[p_i - j]`` for ``j <= p_i = Lk - Lq + i`` (the causal entries; the others hold unrelated values).

    Entry ``[i, j]`` must read ``qe[i, j + Lq - 1 - i]``. After one zero column on the left, that is flat index
    ``i (Lk + 1) + j + Lq - i = Lq + i Lk + j``: drop the first ``Lq`` elements and view as ``[Lq, Lk]``. For
    ``Lq = Lk`` this is the paper's pad / reshape to ``[L + 1, L]`` / drop the first row.
    """
    *lead, Lq, Lk = qe.shape
    flat = F.pad(qe, (1, 0)).reshape(*lead, Lq * (Lk + 1))
    return flat[..., Lq:].reshape(*lead, Lq, Lk)


def relative_logits(q: Tensor, table: Tensor, Lk: int) -> Tensor:
    """Skewed relative term: q ``[B, H, Lq, D]``, table ``[H, M, D]`` -> ``[B, H, Lq, Lk]`` (O(L D) extra memory)."""
    er = distance_table(table, Lk)  # [H, Lk, D]
    return skew(q @ er.transpose(-1, -2)[None])


def relative_logits_naive(q: Tensor, table: Tensor, Lk: int) -> Tensor:
    """The same term by gathering ``E[p_i - j]`` for every pair: ``[H, Lq, Lk, D]`` in memory (the reference)."""
    Lq = q.shape[-2]
    pos = torch.arange(Lk - Lq, Lk, device=q.device)[:, None]  # [Lq, 1]
    dist = (pos - torch.arange(Lk, device=q.device)[None]).clamp(min=0, max=table.shape[1] - 1)  # [Lq, Lk]
    e = table[:, dist]  # [H, Lq, Lk, D]
    return torch.einsum("bhqd,hqkd->bhqk", q, e)


def causal_mask(Lq: int, Lk: int, device: torch.device) -> Tensor:
    """bool ``[Lq, Lk]``, True where query ``i`` (position ``Lk - Lq + i``) may see key ``j``."""
    pos = torch.arange(Lk - Lq, Lk, device=device)[:, None]
    return torch.arange(Lk, device=device)[None] <= pos


class RelativeSelfAttention(nn.Module):
    """Causal multi-head self-attention with per-head relative position embeddings.

    ``forward(x [B, L, d], past=None) -> (out [B, L, d], (k, v))`` where ``past = (k, v)``, each
    ``[B, H, P, d/H]``, are the keys and values of the ``P`` positions before ``x`` (KV cache); the returned pair
    covers ``P + L`` positions. ``mode``: ``skew`` (default), ``naive`` (the O(L^2 D) reference) or ``none``
    (plain causal attention, no positions: the benchmark's baseline).
    """

    def __init__(self, d_model: int, heads: int, max_distance: int, mode: str = "skew") -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be a multiple of heads={heads}")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} must be one of {MODES}")
        self.heads, self.mode = heads, mode
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.rel = nn.Parameter(torch.randn(heads, max_distance, d_model // heads) * 0.02)  # [H, M, D]

    def forward(
        self, x: Tensor, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, L, d = x.shape
        H = self.heads
        q, k, v = (
            z.view(B, L, H, d // H).transpose(1, 2) for z in self.qkv(x).chunk(3, dim=-1)
        )  # [B, H, L, D]
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        Lk = k.shape[2]
        if self.mode == "none" and Lk == L:  # plain causal attention: no mask tensor at all
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(a.transpose(1, 2).reshape(B, L, d)), (k, v)
        allowed = causal_mask(L, Lk, x.device)  # [L, Lk]
        if self.mode == "none":
            bias = torch.zeros((), dtype=q.dtype, device=x.device)
        elif self.mode == "skew":
            bias = relative_logits(q, self.rel, Lk) / math.sqrt(d // H)
        else:
            bias = relative_logits_naive(q, self.rel, Lk) / math.sqrt(d // H)
        mask = torch.where(allowed, bias, torch.full((), float("-inf"), dtype=q.dtype, device=x.device))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.expand(B, H, L, Lk))  # [B, H, L, D]
        return self.proj(a.transpose(1, 2).reshape(B, L, d)), (k, v)
