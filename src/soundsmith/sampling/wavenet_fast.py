"""Cached WaveNet generation: per-layer ring buffers of past layer inputs, O(layers) work per sample.

Each layer ``l`` with dilation ``d`` keeps its last ``(kernel_size - 1) * d + 1`` inputs in a ring (slot
``t % size``; exact sizes keep the base preset's rings at 0.5 MB per sequence, half of power-of-two rings). At time ``t`` the layer writes its input into the ring and reads
its taps at ``t - j * d``; slots never written yet hold zeros, which is exactly the causal zero padding of the
full convolution. Two engines share one weight layout (:class:`FastWeights`, matrices stored ``[in, out]``):

* :func:`numba_steps`: the whole per-sample loop (all layers, output layers, sampling) in one numba kernel.
  Per-op Python/torch dispatch (~20 ops x 22 layers per sample) is what makes a torch loop slow at batch 1 on CPU;
  the kernel removes it (see docs/wavenet.md for the measurements).
* :class:`TorchCachedStepper`: the same step in torch ops, for GPUs and batches.

A position ``t`` reads the code ``seq[:, t]``; when ``t + 1 >= prime_len`` it samples ``seq[:, t + 1]`` with the
uniform ``u[:, t + 1 - prime_len]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit

from soundsmith.models.wavenet import WaveNet
from soundsmith.sampling import numba_cache  # before any cached kernel is decorated (autoregressive's too)
from soundsmith.sampling.autoregressive import sample_from_logits, sample_logits_nb


@dataclass
class FastWeights:
    """The network's weights laid out for one-sample-at-a-time inference (all ``[in, out]``)."""

    emb: torch.Tensor  # [Q, R]
    w_dil: torch.Tensor  # [L, K*R, 2D]; row j*R + i multiplies input channel i at time t - (K-1-j)*d
    b_dil: torch.Tensor  # [L, 2D]
    w_lc: torch.Tensor  # [L, C, 2D] (C = 0 without local conditioning)
    w_rs: torch.Tensor  # [L, D, R+S]
    b_rs: torch.Tensor  # [L, R+S]
    w1: torch.Tensor  # [S, S]
    b1: torch.Tensor  # [S]
    w2: torch.Tensor  # [S, Q]
    b2: torch.Tensor  # [Q]
    dilations: np.ndarray  # [L] int64
    ring_offsets: np.ndarray  # [L] int64, first slot of each layer's ring
    ring_sizes: np.ndarray  # [L] int64, (K-1)*d + 1 slots per layer
    ring_rows: int  # total slots over all layers
    kernel_size: int

    @classmethod
    def from_model(cls, model: WaveNet) -> FastWeights:
        c = model.config
        layers = list(model.layers)
        dil = np.asarray(c.dilations, dtype=np.int64)
        sizes = (c.kernel_size - 1) * dil + 1  # the taps reach back (K-1)*d samples
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        with torch.no_grad():
            w_dil = torch.stack(
                [la.dilated.weight.permute(2, 1, 0).reshape(-1, la.dilated.out_channels) for la in layers]
            )
            if c.lc_channels:
                w_lc = torch.stack([la.lc_proj.weight[:, :, 0].t() for la in layers])
            else:
                w_lc = w_dil.new_zeros(len(layers), 0, w_dil.shape[-1])
            return cls(
                emb=model.embed.weight.detach().clone(),
                w_dil=w_dil.contiguous(),
                b_dil=torch.stack([la.dilated.bias for la in layers]).contiguous(),
                w_lc=w_lc.contiguous(),
                w_rs=torch.stack([la.res_skip.weight[:, :, 0].t() for la in layers]).contiguous(),
                b_rs=torch.stack([la.res_skip.bias for la in layers]).contiguous(),
                w1=model.out1.weight[:, :, 0].t().contiguous(),
                b1=model.out1.bias.detach().clone(),
                w2=model.out2.weight[:, :, 0].t().contiguous(),
                b2=model.out2.bias.detach().clone(),
                dilations=dil,
                ring_offsets=offsets,
                ring_sizes=sizes,
                ring_rows=int(sizes.sum()),
                kernel_size=c.kernel_size,
            )

    def numpy(self) -> dict[str, np.ndarray]:
        """Contiguous numpy arrays for the numba kernel (dtype of the model)."""
        names = ("emb", "w_dil", "b_dil", "w_lc", "w_rs", "b_rs", "w1", "b1", "w2", "b2")
        return {n: np.ascontiguousarray(getattr(self, n).detach().cpu().numpy()) for n in names}


def layer_conditioning(model: WaveNet, g: torch.Tensor | None, batch: int) -> torch.Tensor:
    """Per-layer global conditioning added to the gate pre-activation: ``[B, L, 2D]`` (zeros without any)."""
    c = model.config
    w = model.layers[0].dilated.weight
    if g is None:
        return w.new_zeros(batch, len(model.layers), 2 * c.dilation_channels)
    with torch.no_grad():
        return torch.stack([la.gc_proj(g) for la in model.layers], dim=1).contiguous()


# --- numba engine -----------------------------------------------------------------------------------------------
@njit(fastmath=True, cache=numba_cache.ENABLED, inline="always")
def fast_tanh(x):  # pragma: no cover - compiled
    """float32 tanh as a 13/6 rational polynomial (Eigen's ``generic_fast_tanh_float``; max error ~2e-7).

    Unlike ``np.tanh``/``np.exp`` (scalar libm calls), it is plain arithmetic that LLVM vectorises: the gate
    non-linearities went from ~20 us to ~5 us per sample on the base preset (docs/wavenet.md).
    """
    x = min(max(x, np.float32(-7.9053111)), np.float32(7.9053111))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q


@njit(fastmath=True, cache=numba_cache.ENABLED)  # on disk: a fresh process skips the compile
def numba_steps(
    seq, t_begin, t_end, prime_len, uniforms, ring, offsets, sizes, dilations,
    emb, w_dil, b_dil, cond, w_lc, lc, w_rs, b_rs, w1, b1, w2, b2,
    temperature, top_k, top_p, fast_gates,
):  # fmt: skip  # pragma: no cover - compiled
    """Run positions ``[t_begin, t_end)`` for every sequence, filling ``seq`` in place.

    seq [B, P+N] int64, uniforms [B, N], ring [B, rows, R] (state, zeros at t=0), cond [B, L, 2D],
    lc [B, T, C] (C = 0: none). ``fast_gates``: rational tanh (float32 weights) instead of libm tanh/exp
    (exact, used for float64 so that the engines can be compared draw for draw). Returns nothing.
    """
    n_seq = seq.shape[0]
    n_layers = dilations.shape[0]
    r_ch = emb.shape[1]
    d2 = b_dil.shape[1]
    d_ch = d2 // 2
    rs_ch = b_rs.shape[1]
    s_ch = rs_ch - r_ch
    q_ch = b2.shape[0]
    k_taps = w_dil.shape[1] // r_ch
    c_ch = w_lc.shape[1]
    h = np.empty(r_ch, emb.dtype)
    y = np.empty(d2, emb.dtype)
    z = np.empty(d_ch, emb.dtype)
    rs = np.empty(rs_ch, emb.dtype)
    skip = np.empty(s_ch, emb.dtype)
    o1 = np.empty(s_ch, emb.dtype)
    logits = np.empty(q_ch, emb.dtype)
    p = np.empty(q_ch, emb.dtype)
    srt = np.empty(q_ch, emb.dtype)
    for b in range(n_seq):
        for t in range(t_begin, t_end):
            code = seq[b, t]
            for i in range(r_ch):
                h[i] = emb[code, i]
            for i in range(s_ch):
                skip[i] = 0.0
            for la in range(n_layers):
                off = offsets[la]
                size = sizes[la]
                d = dilations[la]
                slot = off + t % size
                for i in range(r_ch):
                    ring[b, slot, i] = h[i]
                for o in range(d2):
                    y[o] = b_dil[la, o] + cond[b, la, o]
                # dilated convolution: y += sum_j W_j^T x[t - (K-1-j) d]
                for j in range(k_taps):
                    pos = off + (t - (k_taps - 1 - j) * d) % size
                    for i in range(r_ch):
                        xi = ring[b, pos, i]
                        row = j * r_ch + i
                        for o in range(d2):
                            y[o] += xi * w_dil[la, row, o]
                for ci in range(c_ch):
                    xc = lc[b, t, ci]
                    for o in range(d2):
                        y[o] += xc * w_lc[la, ci, o]
                # gated unit: tanh(filter) * sigmoid(gate)
                if fast_gates:  # sigmoid(g) = (1 + tanh(g / 2)) / 2
                    for o in range(d_ch):
                        z[o] = fast_tanh(y[o]) * (
                            np.float32(0.5) + np.float32(0.5) * fast_tanh(np.float32(0.5) * y[d_ch + o])
                        )
                else:
                    for o in range(d_ch):
                        z[o] = np.tanh(y[o]) / (1.0 + np.exp(-y[d_ch + o]))
                # residual and skip 1x1 convolutions
                for o in range(rs_ch):
                    rs[o] = b_rs[la, o]
                for i in range(d_ch):
                    zi = z[i]
                    for o in range(rs_ch):
                        rs[o] += zi * w_rs[la, i, o]
                for o in range(r_ch):
                    h[o] += rs[o]
                for o in range(s_ch):
                    skip[o] += rs[r_ch + o]
            if t + 1 < prime_len:
                continue  # still reading the prime: no output needed
            # output layers: relu -> 1x1 -> relu -> 1x1 (zero inputs after a ReLU are skipped: exact)
            for o in range(s_ch):
                o1[o] = b1[o]
            for i in range(s_ch):
                xi = skip[i]
                if xi > 0.0:
                    for o in range(s_ch):
                        o1[o] += xi * w1[i, o]
            for o in range(q_ch):
                logits[o] = b2[o]
            for i in range(s_ch):
                xi = o1[i]
                if xi > 0.0:
                    for o in range(q_ch):
                        logits[o] += xi * w2[i, o]
            seq[b, t + 1] = sample_logits_nb(
                logits, uniforms[b, t + 1 - prime_len], temperature, top_k, top_p, p, srt
            )


# --- torch engine -----------------------------------------------------------------------------------------------
class TorchCachedStepper:
    """The cached step in torch ops (any device). State: ``ring [B, rows, R]``."""

    def __init__(self, weights: FastWeights, cond: torch.Tensor, lc: torch.Tensor | None) -> None:
        """cond [B, L, 2D]; lc [B, T, C] or None."""
        self.w = weights
        self.cond = cond
        self.lc = lc
        self.batch = cond.shape[0]
        r = weights.emb.shape[1]
        self.ring = weights.emb.new_zeros(self.batch, weights.ring_rows, r)
        self.r = r
        self.d = weights.b_dil.shape[1] // 2
        self.offsets = weights.ring_offsets.tolist()
        self.sizes = weights.ring_sizes.tolist()
        self.dils = weights.dilations.tolist()

    @torch.no_grad()
    def step(self, codes: torch.Tensor, t: int, need_logits: bool = True) -> torch.Tensor | None:
        """codes [B] at position t -> logits [B, Q] predicting position t + 1 (None when not needed)."""
        w, k, r, d = self.w, self.w.kernel_size, self.r, self.d
        h = w.emb[codes]  # [B, R]
        skip = None
        for la, (off, size, dil) in enumerate(zip(self.offsets, self.sizes, self.dils)):
            self.ring[:, off + t % size] = h
            slots = [off + (t - (k - 1 - j) * dil) % size for j in range(k)]
            x = self.ring[:, slots].reshape(self.batch, k * r)  # [B, K*R]
            y = torch.addmm(w.b_dil[la] + self.cond[:, la], x, w.w_dil[la])  # [B, 2D]
            if self.lc is not None:
                y = y + self.lc[:, t] @ w.w_lc[la]
            z = torch.tanh(y[:, :d]) * torch.sigmoid(y[:, d:])
            rs = torch.addmm(w.b_rs[la], z, w.w_rs[la])  # [B, R+S]
            h = h + rs[:, :r]
            skip = rs[:, r:] if skip is None else skip + rs[:, r:]
        if not need_logits:
            return None
        o1 = F.relu(torch.addmm(w.b1, F.relu(skip), w.w1))
        return torch.addmm(w.b2, o1, w.w2)  # [B, Q]

    def run(
        self, seq: torch.Tensor, t_begin: int, t_end: int, prime_len: int, uniforms: torch.Tensor,
        temperature: float, top_k: int, top_p: float,
    ) -> None:  # fmt: skip
        """Positions ``[t_begin, t_end)``, filling ``seq [B, P+N]`` in place (uniforms [B, N])."""
        for t in range(t_begin, t_end):
            logits = self.step(seq[:, t], t, need_logits=t + 1 >= prime_len)
            if logits is not None:
                u = uniforms[:, t + 1 - prime_len]
                seq[:, t + 1] = sample_from_logits(logits, u, temperature, top_k, top_p)
