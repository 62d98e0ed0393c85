"""WaveNet generation: one driver over three engines that draw the same codes.

* ``"numba"`` (CPU default): the cached per-sample kernel in :mod:`soundsmith.sampling.wavenet_fast`;
* ``"cached"`` (GPU default): the same cached step in torch ops;
* ``"naive"``: recompute the full forward pass over the last receptive field for every sample (for checking).

The uniforms are drawn first (one row per sequence, from its own seed or from an explicit numpy Generator), then
every engine applies the same sampling rule (:mod:`soundsmith.sampling.autoregressive`), so for equal weights the
engines agree draw for draw (exactly in float64; float32 can differ where a draw sits on a rounding boundary).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.wavenet import WaveNet
from soundsmith.sampling.autoregressive import check_sampling_args, draw_uniforms, sample_from_logits
from soundsmith.sampling.wavenet_fast import FastWeights, TorchCachedStepper, layer_conditioning, numba_steps

METHODS = ("auto", "numba", "cached", "naive")
Callback = Callable[[torch.Tensor], None]


def silence_code(quantization_channels: int) -> int:
    """The mu-law code of 0.0 (128 for 256 channels): the first input when no prime is given."""
    return quantization_channels // 2


@torch.no_grad()
def generate_wavenet(
    model: WaveNet,
    n_samples: int,
    *,
    seed: int | Sequence[int] = 0,
    batch: int = 1,
    generator: np.random.Generator | None = None,
    prime: torch.Tensor | None = None,
    gc_ids: torch.Tensor | Sequence[int] | None = None,
    text_emb: torch.Tensor | None = None,
    mel: torch.Tensor | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    method: str = "auto",
    callback: Callback | None = None,
    callback_every: int | None = None,
    progress: bool = False,
    chunk: int = 4000,
) -> torch.Tensor:
    """Generate ``n_samples`` new mu-law codes per sequence: ``-> [B, n_samples]`` int64 (CPU).

    Batch: ``B = len(seed)`` when ``seed`` is a sequence (row ``b`` uses ``seed[b]``), else ``batch`` rows seeded
    ``seed, seed + 1, ...``; with ``generator`` the uniforms come from it instead.
    prime [P] or [B, P] int64 codes to continue (the output excludes them); without it the first input is the
    silence code. gc_ids [B] | [1], text_emb [B | 1, text_dim], mel [B | 1, lc_channels, frames] covering the
    fed positions ``0 .. P + n_samples - 2`` (``mel_up[t]`` is used at input position ``t``).
    ``callback(codes [B, n_done])`` runs every ``callback_every`` new samples and at the end.
    """
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is unknown; use one of {list(METHODS)}")
    if n_samples < 0:
        raise ConfigError(f"n_samples={n_samples} must be >= 0")
    c = model.config
    check_sampling_args(temperature, top_k, top_p, c.quantization_channels)
    param = model.embed.weight
    device = param.device
    # 1. the batch and its random numbers, drawn first
    seeds = [int(s) for s in seed] if isinstance(seed, Sequence) else None
    if seeds is None:
        seeds = None if generator is not None else [int(seed) + i for i in range(batch)]
    n_seq = len(seeds) if seeds is not None else batch
    uniforms = draw_uniforms(n_samples, seeds=seeds, generator=generator, batch=n_seq)  # [B, N] float64

    # 2. the code sequence: prime (or silence) followed by room for the new samples
    if prime is None:
        prime = torch.full((n_seq, 1), silence_code(c.quantization_channels), dtype=torch.long)
    prime = torch.as_tensor(prime).long().cpu()
    if prime.dim() == 1:
        prime = prime.unsqueeze(0)
    if prime.shape[0] == 1 and n_seq > 1:
        prime = prime.expand(n_seq, -1)
    if prime.shape[0] != n_seq or prime.shape[1] < 1:
        raise ConfigError(f"prime has shape {tuple(prime.shape)}; expected [P] or [{n_seq}, P] with P >= 1")
    if int(prime.min()) < 0 or int(prime.max()) >= c.quantization_channels:
        raise ConfigError(
            f"prime codes must lie in 0..{c.quantization_channels - 1}; mu-law encode the audio first"
        )
    p_len = prime.shape[1]
    total = p_len + n_samples
    seq = torch.zeros(n_seq, total, dtype=torch.long)
    seq[:, :p_len] = prime

    # 3. conditioning, computed once: global vector per layer, upsampled mel per position
    if gc_ids is not None:
        gc_ids = torch.as_tensor(gc_ids, device=device).long().reshape(-1)
    g = model.global_condition(n_seq, gc_ids, text_emb.to(device) if text_emb is not None else None)
    if g is not None and g.shape[0] != n_seq:
        raise ModelError(f"conditioning has batch {g.shape[0]}, generation has {n_seq} sequences")
    lc = None
    if c.lc_channels:
        if mel is None:
            raise ModelError(
                f"this WaveNet needs a mel [B, {c.lc_channels}, frames] to generate (lc_channels > 0)"
            )
        lc = model.upsample_mel(mel.to(device), max(total - 1, 1)).expand(n_seq, -1, -1)  # [B, C, T]
    elif mel is not None:
        raise ModelError("this WaveNet has lc_channels=0 (no local conditioning); pass mel=None")

    # 4. the engine
    if method == "auto":
        method = "numba" if device.type == "cpu" else "cached"
    if method == "numba" and device.type != "cpu":
        raise ConfigError(f"method='numba' runs on CPU; the model is on {device}: use method='cached'")
    step_range = _engine(model, method, seq, p_len, uniforms, g, lc, temperature, top_k, top_p)

    # 5. the loop, in chunks for progress and partial saves
    every = int(callback_every) if callback_every else 0
    bar = tqdm(
        total=n_samples, unit="sample", unit_scale=True, disable=not progress, desc=f"wavenet/{method}"
    )
    t, done = 0, 0
    last = total - 1  # positions 0 .. total-2 are fed
    while t < last:
        end = min(last, t + chunk)
        if every:
            next_save = (done // every + 1) * every  # new samples at the next save point
            end = min(end, next_save + p_len - 1)
        step_range(t, end)
        new_done = max(0, end - (p_len - 1))
        bar.update(new_done - done)
        if callback is not None and every and new_done // every > done // every and new_done < n_samples:
            callback(seq[:, p_len : p_len + new_done].clone())
        t, done = end, new_done
    bar.close()
    out = seq[:, p_len:]
    if callback is not None:
        callback(out.clone())
    return out


def _engine(model, method, seq, p_len, uniforms, g, lc, temperature, top_k, top_p):
    """A function ``run(t_begin, t_end)`` that fills ``seq`` for those positions with the chosen engine."""
    n_seq = seq.shape[0]
    if method == "naive":
        u = torch.from_numpy(uniforms)
        rf = model.receptive_field

        def run_naive(t0: int, t1: int) -> None:
            for t in range(max(t0, p_len - 1), t1):
                lo = max(0, t + 1 - rf)
                x = seq[:, lo : t + 1].to(model.embed.weight.device)
                window_lc = lc[..., lo : t + 1] if lc is not None else None
                logits = model.forward_features(x, g, window_lc)[:, :, -1]  # [B, Q]
                seq[:, t + 1] = sample_from_logits(
                    logits, u[:, t + 1 - p_len], temperature, top_k, top_p
                ).cpu()

        return run_naive
    weights = FastWeights.from_model(model)
    cond = layer_conditioning(model, g, n_seq)  # [B, L, 2D]
    lc_t = lc.transpose(1, 2).contiguous() if lc is not None else None  # [B, T, C]
    if method == "cached":
        stepper = TorchCachedStepper(weights, cond, lc_t)
        dev = weights.emb.device
        u_dev = torch.from_numpy(uniforms).to(dev)
        seq_dev = seq.to(dev)

        def run_cached(t0: int, t1: int) -> None:
            stepper.run(seq_dev, t0, t1, p_len, u_dev, temperature, top_k, top_p)
            seq[:, t0 + 1 : t1 + 1] = seq_dev[:, t0 + 1 : t1 + 1].cpu()

        return run_cached
    arrays = weights.numpy()
    dtype = arrays["emb"].dtype
    ring = np.zeros((n_seq, weights.ring_rows, arrays["emb"].shape[1]), dtype=dtype)
    cond_np = np.ascontiguousarray(cond.detach().cpu().numpy().astype(dtype))
    if lc_t is None:
        lc_np = np.zeros((n_seq, 1, 0), dtype=dtype)
    else:
        lc_np = np.ascontiguousarray(lc_t.detach().cpu().numpy().astype(dtype))
    seq_np = seq.numpy()  # shares memory with seq: the kernel writes into it
    u_np = np.ascontiguousarray(uniforms)

    def run_numba(t0: int, t1: int) -> None:
        numba_steps(
            seq_np, t0, t1, p_len, u_np, ring, weights.ring_offsets, weights.ring_sizes, weights.dilations,
            arrays["emb"], arrays["w_dil"], arrays["b_dil"], cond_np, arrays["w_lc"], lc_np,
            arrays["w_rs"], arrays["b_rs"], arrays["w1"], arrays["b1"], arrays["w2"], arrays["b2"],
            float(temperature), int(top_k), float(top_p), dtype == np.float32,
        )  # fmt: skip

    return run_numba
