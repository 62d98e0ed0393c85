"""Drawing codes from logits: temperature, top-k, top-p, with the random numbers drawn first.

One rule, two implementations (torch for batches on any device, numba for the per-sample CPU kernel) that give the
same code for the same logits and the same uniform number ``u`` in [0, 1):

1. ``temperature <= 0``: greedy, the first index of the largest logit.
2. ``p = softmax(logits / temperature)``.
3. top-k (``0 < top_k < V``): zero every ``p`` below the k-th largest (ties at the k-th value are all kept).
4. top-p (``top_p < 1``): renormalise, sort descending, find the first rank ``m`` where the cumulative sum reaches
   ``top_p``; zero every ``p`` below the value at rank ``m`` (at least one entry always stays).
5. inverse CDF in index order: the first index whose cumulative ``p`` exceeds ``u * sum(p)``.

Index-order inversion makes the draw independent of how ties are sorted, which is what lets the numba kernel, the
torch cached generator and the naive generator agree draw for draw (see tests/sampling).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numba import njit

from soundsmith.errors import ConfigError


def check_sampling_args(temperature: float, top_k: int, top_p: float, vocab: int) -> None:
    """Raise ConfigError for values the rule above cannot use."""
    if not np.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature={temperature!r} must be a finite number >= 0 (0 = greedy)")
    if int(top_k) != top_k or top_k < 0:
        raise ConfigError(f"top_k={top_k!r} must be an integer >= 0 (0 = off, at most {vocab})")
    if not (0.0 < top_p <= 1.0):
        raise ConfigError(f"top_p={top_p!r} must be in (0, 1] (1 = off)")


def draw_uniforms(
    n: int, seeds: Sequence[int] | None = None, generator: np.random.Generator | None = None, batch: int = 1
) -> np.ndarray:
    """The uniform numbers for ``n`` draws of each sequence: ``[B, n]`` float64 in [0, 1).

    With ``seeds`` each row comes from its own ``np.random.default_rng(seed)``, so a batch equals its rows run
    one by one. Otherwise rows are drawn from ``generator`` (``batch`` rows).
    """
    if seeds is not None:
        return (
            np.stack([np.random.default_rng(int(s)).random(n) for s in seeds])
            if len(seeds)
            else np.zeros((0, n))
        )
    if generator is None:
        raise ConfigError("draw_uniforms needs seeds or a numpy Generator")
    return generator.random((batch, n))


def sample_from_logits(
    logits: torch.Tensor, u: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """logits [B, V], u [B] in [0, 1) -> codes [B] int64, by the rule in the module docstring."""
    if temperature <= 0:
        return logits.argmax(-1)
    v = logits.shape[-1]
    p = torch.softmax(logits / temperature, dim=-1)  # [B, V]
    zero = torch.zeros((), dtype=p.dtype, device=p.device)
    if 0 < top_k < v:
        kth = torch.topk(p, top_k, dim=-1).values[:, -1:]
        p = torch.where(p >= kth, p, zero)
    if top_p < 1.0:
        q = p / p.sum(-1, keepdim=True)
        s = torch.sort(q, dim=-1, descending=True).values
        c = torch.cumsum(s, dim=-1)
        m = (c < top_p).sum(-1, keepdim=True).clamp(max=v - 1)
        p = torch.where(q >= s.gather(-1, m), p, zero)
    cdf = torch.cumsum(p, dim=-1)
    target = u.to(cdf.dtype) * cdf[:, -1]
    idx = (cdf <= target[:, None]).sum(-1)
    last = v - 1 - torch.flip(p > 0, dims=[-1]).to(torch.int8).argmax(-1)  # last index with p > 0
    return torch.minimum(idx, last)


@njit(fastmath=True, cache=True)
def sample_logits_nb(logits, u, temperature, top_k, top_p, p, s):  # pragma: no cover - compiled
    """Numba twin of :func:`sample_from_logits` for one row: logits [V] -> code. ``p``, ``s``: scratch [V]."""
    v = logits.shape[0]
    best = 0
    for i in range(1, v):
        if logits[i] > logits[best]:
            best = i
    if temperature <= 0:
        return best
    mx = logits[best] / temperature
    total = 0.0
    for i in range(v):
        e = np.exp(logits[i] / temperature - mx)
        p[i] = e
        total += e
    for i in range(v):
        p[i] = p[i] / total
    if (top_k > 0 and top_k < v) or top_p < 1.0:
        s[:] = p
        s.sort()  # ascending
        thr = s[0]
        if top_k > 0 and top_k < v:
            thr = s[v - top_k]
            for i in range(v):
                if p[i] < thr:
                    p[i] = 0.0
        if top_p < 1.0:
            kept = 0.0
            for i in range(v):
                kept += p[i]
            cum = 0.0
            thr_p = s[v - 1] / kept
            for r in range(v):
                val = s[v - 1 - r]
                if val < thr:
                    break
                val = val / kept
                thr_p = val
                cum += val
                if cum >= top_p:
                    break
            for i in range(v):
                if p[i] / kept < thr_p:
                    p[i] = 0.0
    cdf = 0.0
    for i in range(v):
        cdf += p[i]
    target = u * cdf
    cdf = 0.0
    last = 0
    for i in range(v):
        if p[i] > 0:
            last = i
            cdf += p[i]
            if cdf > target:
                return i
    return last
