"""Residual vector quantization (SoundStream, Zeghidour et al. 2021; EnCodec, Defossez et al. 2022).

A :class:`VectorQuantizer` maps each vector of ``[B, T, D]`` to its nearest codebook entry. Its codebook is not
trained by gradients but by exponential moving averages of the vectors assigned to each code (VQ-VAE-2's EMA
update), and a code that has gone unused (its EMA cluster size below ``dead_threshold``) is restarted on a vector
drawn from the current batch. The encoder sees the quantization through the straight-through estimator
(``x + (q - x).detach()``) and is pulled toward its codes by the commitment loss ``mean((x - sg(q))^2)``.

:class:`ResidualVQ` chains ``num_quantizers`` of them: quantizer ``i`` quantizes the residual left by quantizers
``0..i-1``, so every extra codebook refines the approximation. Any prefix of ``n_q <= num_quantizers`` codebooks
decodes (quantizer dropout in training makes the prefixes good: lower bitrate at inference).

The codebook starts as random vectors of the first training batch. EMA updates and restarts happen in
``forward`` in training mode only, like batch-norm statistics; they are
buffers, saved with the weights. The restart draws from the module's own ``torch.Generator`` (seeded by
``seed``), not from the global RNG.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class QuantizerOutput(NamedTuple):
    quantized: Tensor  # [B, T, D], straight-through in training
    codes: Tensor  # [B, n_q, T] int64 (ResidualVQ) or [B, T] (VectorQuantizer)
    commit_loss: Tensor  # [] mean over the quantizers used


class VectorQuantizer(nn.Module):
    """One codebook of ``codebook_size`` vectors of ``dim``, trained by EMA (``decay``) with dead-code restart."""

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_threshold: float = 2.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.codebook_size = dim, codebook_size
        self.decay, self.eps, self.dead_threshold = decay, eps, dead_threshold
        gen = torch.Generator().manual_seed(seed)
        embed = torch.randn(codebook_size, dim, generator=gen) / dim**0.5
        self.register_buffer("embed", embed)  # [K, D]
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # [K] EMA of assignment counts
        self.register_buffer("embed_sum", embed.clone())  # [K, D] EMA of the sum of assigned vectors
        self.register_buffer(
            "initialized", torch.zeros((), dtype=torch.bool)
        )  # codebook drawn from data yet?
        self._gen = torch.Generator().manual_seed(seed + 1)  # restart draws (not saved: not a model weight)

    def encode(self, x: Tensor) -> Tensor:
        """``[..., D] -> [...]`` int64: the index of the nearest code (squared Euclidean distance)."""
        flat = x.reshape(-1, self.dim)
        dist = (
            flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t() + self.embed.pow(2).sum(1)[None]
        )  # [N, K]
        return dist.argmin(1).view(x.shape[:-1])

    def decode(self, codes: Tensor) -> Tensor:
        """``[...] -> [..., D]``."""
        return F.embedding(codes, self.embed)

    @torch.no_grad()
    def init_from_data(self, x: Tensor) -> None:
        """Set the codebook to random vectors of the first training batch ``x [N, D]`` (EnCodec initialises with
        k-means on it; random picks are the cheap version): random initial codes far from the data would all
        stay unused until the dead-code restart catches them."""
        picks = torch.randint(0, x.shape[0], (self.codebook_size,), generator=self._gen).to(x.device)
        self.embed.copy_(x[picks].float())
        self.embed_sum.copy_(self.embed)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def ema_update(self, x: Tensor, codes: Tensor) -> None:
        """Move each code toward the mean of the vectors assigned to it; restart dead codes.

        x ``[N, D]``, codes ``[N]``. With ``n_k`` the count and ``s_k`` the sum of the vectors assigned to code
        ``k``: ``N_k <- d N_k + (1 - d) n_k``, ``S_k <- d S_k + (1 - d) s_k``, ``e_k = S_k / N_k~`` (Laplace-
        smoothed ``N_k``). Codes whose ``N_k`` falls under ``dead_threshold`` are reset to random batch vectors.
        """
        x = x.float()
        onehot = F.one_hot(codes, self.codebook_size).to(x.dtype)  # [N, K]
        counts = onehot.sum(0)  # [K]
        sums = onehot.t() @ x  # [K, D]
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        dead = self.cluster_size < self.dead_threshold
        if dead.any() and x.shape[0] > 0:
            picks = torch.randint(0, x.shape[0], (int(dead.sum()),), generator=self._gen).to(x.device)
            fresh = x[picks]
            self.embed[dead] = fresh
            self.embed_sum[dead] = fresh * self.dead_threshold
            self.cluster_size[dead] = self.dead_threshold

    def forward(self, x: Tensor) -> QuantizerOutput:
        """x ``[B, T, D]`` -> quantized ``[B, T, D]``, codes ``[B, T]``, commitment loss ``[]``."""
        if self.training and not bool(self.initialized) and x.numel():
            self.init_from_data(x.detach().reshape(-1, self.dim))
        codes = self.encode(x.detach())
        q = self.decode(codes)
        if self.training:
            self.ema_update(x.detach().reshape(-1, self.dim), codes.reshape(-1))
            q = self.decode(codes)
        commit = F.mse_loss(x, q.detach())
        return QuantizerOutput(x + (q - x).detach(), codes, commit)


class ResidualVQ(nn.Module):
    """``num_quantizers`` chained :class:`VectorQuantizer`; ``forward(x, n_q)`` uses the first ``n_q``."""

    def __init__(
        self,
        dim: int,
        num_quantizers: int,
        codebook_size: int,
        decay: float = 0.99,
        dead_threshold: float = 2.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_quantizers = num_quantizers
        self.layers = nn.ModuleList(
            VectorQuantizer(dim, codebook_size, decay, dead_threshold=dead_threshold, seed=seed + 2 * i)
            for i in range(num_quantizers)
        )

    def _n(self, n_q: int | None) -> int:
        n = self.num_quantizers if n_q is None else int(n_q)
        if not 1 <= n <= self.num_quantizers:
            raise ValueError(f"n_q={n_q} must be from 1 to {self.num_quantizers} (the codebooks of this RVQ)")
        return n

    def forward(self, x: Tensor, n_q: int | None = None) -> QuantizerOutput:
        """x ``[B, T, D]`` -> quantized ``[B, T, D]`` (sum of the ``n_q`` stages), codes ``[B, n_q, T]``,
        commitment loss (mean over the stages of each stage's ``mean((residual - sg(q))^2)``)."""
        residual, total = x, torch.zeros_like(x)
        codes, commits = [], []
        for layer in self.layers[: self._n(n_q)]:
            _, c, commit = layer(residual)
            q_plain = layer.decode(c).detach()  # the code vectors (after any EMA update of this step)
            residual = residual - q_plain
            total = total + q_plain
            codes.append(c)
            commits.append(commit)
        # straight-through once, on the whole sum: the forward value is the sum of code vectors and the encoder
        # gets the decoder's gradient once (a straight-through per stage would pass it n_q times)
        return QuantizerOutput(x + (total - x).detach(), torch.stack(codes, 1), torch.stack(commits).mean())

    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """x ``[B, T, D]`` -> codes ``[B, n_q, T]`` (no EMA update)."""
        residual, codes = x, []
        for layer in self.layers[: self._n(n_q)]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, 1)

    def decode(self, codes: Tensor) -> Tensor:
        """codes ``[B, n_q, T]`` -> ``[B, T, D]``: the sum of the first ``n_q`` codebooks' vectors."""
        n = self._n(codes.shape[1])
        return sum(self.layers[i].decode(codes[:, i]) for i in range(n))  # type: ignore[return-value]

    def residual_norms(self, x: Tensor) -> list[float]:
        """The mean squared residual after each stage (decreases with more codebooks): ``num_quantizers`` floats."""
        residual, out = x, []
        for layer in self.layers:
            residual = residual - layer.decode(layer.encode(residual))
            out.append(float(residual.pow(2).mean()))
        return out
