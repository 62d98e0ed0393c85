"""The latent denoiser's forward against a reference written out by hand in float64 numpy (the model runs in float32): timestep embedding,
rotary self-attention, masked cross-attention to text, adaLN modulation and gates, caption dropping. A sign, an
axis, a constant or a swapped argument anywhere in the forward makes them differ (the shapes alone would not)."""

from __future__ import annotations

import math

import numpy as np
import torch

from soundsmith.models.latent_diffusion import LatentDenoiser, LatentDenoiserConfig


def _w(state: dict, name: str) -> np.ndarray:
    return state[name].detach().double().numpy()


def _linear(state: dict, name: str, x: np.ndarray) -> np.ndarray:
    return x @ _w(state, f"{name}.weight").T + _w(state, f"{name}.bias")


def _layer_norm(
    x: np.ndarray, weight: np.ndarray | None = None, bias: np.ndarray | None = None
) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + 1e-5)
    return y if weight is None else y * weight + bias


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.exp(-x))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """q ``[T, D]``, k/v ``[L, D]``, mask ``[L]`` (True = attend) -> ``[T, D]``."""
    scores = q @ k.T / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask[None, :], scores, -np.inf)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    return (scores / scores.sum(-1, keepdims=True)) @ v


def _rotate(x: np.ndarray, base: float) -> np.ndarray:
    """Rotary embedding of ``x [T, D]``: the pair (x[2i], x[2i+1]) at position p turns by p / base^(2i/D)."""
    T, D = x.shape
    out = np.empty_like(x)
    for p in range(T):
        for i in range(D // 2):
            theta = p / base ** (2 * i / D)
            a, b = x[p, 2 * i], x[p, 2 * i + 1]
            out[p, 2 * i] = a * math.cos(theta) - b * math.sin(theta)
            out[p, 2 * i + 1] = a * math.sin(theta) + b * math.cos(theta)
    return out


def _timestep_embedding(t: float, dim: int) -> np.ndarray:
    half = dim // 2
    freqs = np.array([math.exp(-math.log(10000.0) * i / half) for i in range(half)])
    args = 1000.0 * t * freqs
    return np.concatenate([np.cos(args), np.sin(args)])


def reference_forward(model: LatentDenoiser, x, t, tokens, mask, pooled, drop) -> np.ndarray:
    """The denoiser's output for one batch, clip by clip, in float64."""
    c, s = model.config, model.state_dict()
    d, H = c.d_model, c.heads
    out = []
    for b in range(x.shape[0]):
        text, keep_text, pool = tokens[b], mask[b].astype(bool), pooled[b]
        if drop[b]:  # a dropped caption: the learnt null tokens, attended through the first position only
            text = np.repeat(_w(s, "null_tokens")[0], text.shape[0], axis=0)
            pool = _w(s, "null_pooled")[0]
            keep_text = np.zeros_like(keep_text)
            keep_text[0] = True
        C, Fb, T = x[b].shape
        h = _linear(s, "inp", x[b].reshape(C * Fb, T).T)  # [T, d]
        temb = _timestep_embedding(float(t[b]), d)
        cond = _linear(s, "time_mlp.2", _silu(_linear(s, "time_mlp.0", temb))) + _linear(
            s, "pooled_proj", pool
        )
        for i in range(c.layers):
            p = f"blocks.{i}"
            s1, b1, g1, s2, b2, g2 = np.split(_linear(s, f"{p}.modulation", _silu(cond)), 6)
            z = _layer_norm(h) * (1 + s1) + b1
            q, k, v = np.split(_linear(s, f"{p}.qkv", z), 3, axis=-1)
            heads = []
            for j in range(H):
                sl = slice(j * d // H, (j + 1) * d // H)
                heads.append(
                    _attention(_rotate(q[:, sl], c.rope_base), _rotate(k[:, sl], c.rope_base), v[:, sl])
                )
            h = h + g1 * _linear(s, f"{p}.proj", np.concatenate(heads, -1))
            qc = _linear(
                s, f"{p}.q_cross", _layer_norm(h, _w(s, f"{p}.norm2.weight"), _w(s, f"{p}.norm2.bias"))
            )
            kc, vc = np.split(_linear(s, f"{p}.kv_cross", text), 2, axis=-1)
            heads = []
            for j in range(H):
                sl = slice(j * d // H, (j + 1) * d // H)
                heads.append(_attention(qc[:, sl], kc[:, sl], vc[:, sl], keep_text))
            h = h + _linear(s, f"{p}.proj_cross", np.concatenate(heads, -1))
            z = _layer_norm(h) * (1 + s2) + b2
            h = h + g2 * _linear(s, f"{p}.mlp.2", _gelu_tanh(_linear(s, f"{p}.mlp.0", z)))
        shift, scale = np.split(_linear(s, "out_mod", _silu(cond)), 2)
        y = _linear(s, "out", _layer_norm(h) * (1 + scale) + shift)  # [T, C*F]
        out.append(y.T.reshape(C, Fb, T))
    return np.stack(out)


def test_denoiser_forward_equals_the_reference_by_hand():
    torch.manual_seed(0)
    cfg = LatentDenoiserConfig(
        latent_channels=2, latent_bins=3, d_model=16, layers=2, heads=2, text_dim=6, text_encoder="hashed:6"
    )
    model = LatentDenoiser(cfg).eval()  # float32: the timestep embedding is computed in float32
    with torch.no_grad():  # zero-initialised layers (modulation, output) get values so every path counts
        for p in model.parameters():
            p.normal_(0, 0.3)
    g = torch.Generator().manual_seed(1)
    B, T, L = 3, 7, 5
    x = torch.randn(B, 2, 3, T, generator=g, dtype=torch.float32)
    t = torch.tensor([0.03, 0.5, 0.91], dtype=torch.float32)
    tokens = torch.randn(B, L, 6, generator=g, dtype=torch.float32)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    pooled = torch.randn(B, 6, generator=g, dtype=torch.float32)
    drop = torch.tensor([False, False, True])
    with torch.no_grad():
        got = model(x, t, tokens, mask, pooled, drop).numpy()
    want = reference_forward(
        model,
        *(
            a.double().numpy() if a.is_floating_point() else a.numpy()
            for a in (x, t, tokens, mask, pooled, drop)
        ),
    )
    assert np.abs(want).max() > 0.1  # a forward that depends on its inputs, not the zero-initialised output
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def expected_shapes(c: LatentDenoiserConfig) -> dict[str, tuple[int, ...]]:
    """Every weight of the denoiser and its shape, from the config by hand (the design in the module docstring)."""
    d, io, hidden = c.d_model, c.latent_channels * c.latent_bins, int(c.d_model * c.mlp_ratio)
    shapes = {"null_tokens": (1, 1, c.text_dim), "null_pooled": (1, c.text_dim)}

    def linear(name: str, n_in: int, n_out: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (n_out, n_in), (n_out,)

    linear("inp", io, d)
    linear("time_mlp.0", d, d)
    linear("time_mlp.2", d, d)
    linear("pooled_proj", c.text_dim, d)
    for i in range(c.layers):
        p = f"blocks.{i}"
        linear(f"{p}.qkv", d, 3 * d)
        linear(f"{p}.proj", d, d)
        shapes[f"{p}.norm2.weight"], shapes[f"{p}.norm2.bias"] = (d,), (d,)
        linear(f"{p}.q_cross", d, d)
        linear(f"{p}.kv_cross", c.text_dim, 2 * d)
        linear(f"{p}.proj_cross", d, d)
        linear(f"{p}.mlp.0", d, hidden)
        linear(f"{p}.mlp.2", hidden, d)
        linear(f"{p}.modulation", d, 6 * d)
    linear("out_mod", d, 2 * d)
    linear("out", d, io)
    return shapes


def test_every_weight_has_the_shape_the_config_gives():
    # mlp_ratio 2.5 and 3.3: the MLP is int(d x ratio) wide (40 and 79: truncated, not rounded, not d / ratio)
    for kw in (
        dict(latent_channels=2, latent_bins=3, d_model=16, layers=1, heads=2, text_dim=6, mlp_ratio=2.5),
        dict(latent_channels=4, latent_bins=5, d_model=24, layers=3, heads=3, text_dim=7, mlp_ratio=3.3),
    ):
        cfg = LatentDenoiserConfig(text_encoder=f"hashed:{kw['text_dim']}", **kw)
        got = {k: tuple(v.shape) for k, v in LatentDenoiser(cfg).state_dict().items()}
        assert got == expected_shapes(cfg)


def test_rotary_without_angles_computes_them_from_the_inputs_shape():
    from soundsmith.models.latent_diffusion import rotary, rotary_angles

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 8, generator=g)  # [B, H, T, D] with H, T and D all different
    torch.testing.assert_close(
        rotary(x, 100.0), rotary(x, 100.0, rotary_angles(5, 8, 100.0, x.device, x.dtype))
    )
    want = np.stack([_rotate(x[b, h].double().numpy(), 100.0) for b in range(2) for h in range(3)])
    np.testing.assert_allclose(rotary(x, 100.0).reshape(6, 5, 8).double().numpy(), want, atol=1e-5)
