"""The token LM against a reference written out by hand in float64 (issue 17), and its configs' validation.

The reference reads every weight from the network's ``state_dict`` by name and first checks its shape against the
sizes the config implies (codebook tables of ``V + 1`` rows, ``3 d`` fused projections, an MLP of
``int(d * mlp_ratio)``, ``K`` heads of ``V`` logits, ...), then computes the logits clip by clip and head by head:
the sum of the codebook embeddings, the null text of dropped captions, per block pre-LN causal self-attention with
the relative term ``q_i . E[min(i - j, M - 1)] / sqrt(D)`` (none in the ``none`` mode), masked cross-attention to
the text, the tanh-GELU MLP, the output norm and heads. Three configs differ in every size, so the size formulas
are pinned, not single values; the module runs in float64 too, so any changed constant, sign or axis shows.

The device tests run on the ``meta`` device, which needs no accelerator: a tensor left on the CPU where the data
lives elsewhere is the bug they look for.
"""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
from test_token_lm import _codec
from torch import Tensor, nn

from soundsmith.errors import ConfigError, ModelError
from soundsmith.models import token_lm as token_lm_module
from soundsmith.models.codec import Codec, CodecConfig
from soundsmith.models.registry import ShippedRef, TextEncoderSpec
from soundsmith.models.token_lm import (
    PATTERNS,
    TokenLM,
    TokenLMConfig,
    TokenLMNet,
    TokenLMNetConfig,
    build_pattern,
    pattern_positions,
    revert_pattern,
    valid_mask,
)

CONFIGS = {
    # max_distance 5 < the 9 steps: the longest distances share the table's last entry
    "skew": dict(
        num_codebooks=3,
        codebook_size=10,
        d_model=16,
        layers=2,
        heads=2,
        mlp_ratio=4.0,
        text_dim=8,
        max_distance=5,
        attention="skew",
    ),
    # hidden = int(12 * 2.9) = 34 (truncated, not rounded to 35); no relative term at all
    "none": dict(
        num_codebooks=2,
        codebook_size=7,
        d_model=12,
        layers=1,
        heads=3,
        mlp_ratio=2.9,
        text_dim=5,
        max_distance=3,
        attention="none",
    ),
    "naive": dict(
        num_codebooks=1,
        codebook_size=4,
        d_model=8,
        layers=3,
        heads=4,
        mlp_ratio=1.5,
        text_dim=6,
        max_distance=16,
        attention="naive",
    ),
}


# --- the reference ------------------------------------------------------------------------------------------------


def expected_shapes(c: TokenLMNetConfig) -> dict[str, tuple[int, ...]]:
    """Every entry of the network's state_dict and its shape, from the config alone."""
    V, K, d, Dt = c.codebook_size, c.num_codebooks, c.d_model, c.text_dim
    hidden = int(d * c.mlp_ratio)
    shapes: dict[str, tuple[int, ...]] = {f"embed.{k}.weight": (V + 1, d) for k in range(K)}
    shapes["null_text"] = (1, 1, Dt)
    for i in range(c.layers):
        b = f"blocks.{i}"
        for norm in ("norm1", "norm2", "norm3"):
            shapes |= {f"{b}.{norm}.weight": (d,), f"{b}.{norm}.bias": (d,)}
        shapes |= {
            f"{b}.attn.qkv.weight": (3 * d, d),
            f"{b}.attn.qkv.bias": (3 * d,),
            f"{b}.attn.proj.weight": (d, d),
            f"{b}.attn.proj.bias": (d,),
            f"{b}.attn.rel": (c.heads, c.max_distance, d // c.heads),
            f"{b}.q_cross.weight": (d, d),
            f"{b}.q_cross.bias": (d,),
            f"{b}.kv_cross.weight": (2 * d, Dt),
            f"{b}.kv_cross.bias": (2 * d,),
            f"{b}.proj_cross.weight": (d, d),
            f"{b}.proj_cross.bias": (d,),
            f"{b}.mlp.0.weight": (hidden, d),
            f"{b}.mlp.0.bias": (hidden,),
            f"{b}.mlp.2.weight": (d, hidden),
            f"{b}.mlp.2.bias": (d,),
        }
    shapes |= {"out_norm.weight": (d,), "out_norm.bias": (d,)}
    shapes |= {f"heads.{k}.weight": (V, d) for k in range(K)} | {f"heads.{k}.bias": (V,) for k in range(K)}
    return shapes


def _linear(s: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    return x @ s[f"{name}.weight"].T + s[f"{name}.bias"]


def _layer_norm(s: dict[str, Tensor], name: str, x: Tensor) -> Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * s[f"{name}.weight"] + s[f"{name}.bias"]


def _gelu_tanh(x: Tensor) -> Tensor:
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _softmax_attend(scores: Tensor, allowed: Tensor, v: Tensor) -> Tensor:
    """scores/allowed ``[Lq, Lk]``, v ``[Lk, D]`` -> ``[Lq, D]``."""
    scores = torch.where(allowed, scores, torch.tensor(-math.inf, dtype=scores.dtype))
    w = torch.exp(scores - scores.max(-1, keepdim=True).values)
    return (w / w.sum(-1, keepdim=True)) @ v


def reference_logits(
    net: TokenLMNet,
    steps: Tensor,
    text: Tensor,
    text_mask: Tensor,
    drop: Tensor | None = None,
    window: int | None = None,
) -> Tensor:
    """The network's logits ``[B, K, L, V]`` by hand, clip by clip and head by head, in float64.

    ``window``: each step sees itself and at most ``window`` steps before it (a cache of ``context = window``
    fed one step at a time); ``None``: the whole prefix.
    """
    c = net.config
    s = {name: t.detach().double() for name, t in net.state_dict().items()}
    assert {name: tuple(t.shape) for name, t in s.items()} == expected_shapes(c)
    K, d, H = c.num_codebooks, c.d_model, c.heads
    D, M = d // H, c.max_distance
    B, _, L = steps.shape
    i_pos, j_pos = torch.arange(L)[:, None], torch.arange(L)[None]
    causal = j_pos <= i_pos
    if window is not None:
        causal &= i_pos - j_pos <= window
    dist = (i_pos - j_pos).clamp(0, M - 1)  # [L, L]: the relative table's row of each (query, key) pair
    out = []
    for b in range(B):
        h = sum(s[f"embed.{k}.weight"][steps[b, k]] for k in range(K))  # [L, d]
        tokens, keep = text[b].double(), text_mask[b].bool()
        if drop is not None and bool(drop[b]):  # the learned null text, attended through position 0 only
            tokens = s["null_text"][0].expand_as(tokens)
            keep = torch.arange(len(keep)) == 0
        for i in range(c.layers):
            p = f"blocks.{i}"
            x = _layer_norm(s, f"{p}.norm1", h)
            q, k, v = _linear(s, f"{p}.attn.qkv", x).split(d, -1)
            heads = []
            for n in range(H):
                qn, kn, vn = (z[:, n * D : (n + 1) * D] for z in (q, k, v))
                scores = qn @ kn.T
                if c.attention != "none":
                    table = s[f"{p}.attn.rel"][n]  # [M, D], row m = distance m
                    scores = scores + torch.einsum("id,ijd->ij", qn, table[dist])
                heads.append(_softmax_attend(scores / math.sqrt(D), causal, vn))
            h = h + _linear(s, f"{p}.attn.proj", torch.cat(heads, -1))
            q = _linear(s, f"{p}.q_cross", _layer_norm(s, f"{p}.norm2", h))
            k, v = _linear(s, f"{p}.kv_cross", tokens).split(d, -1)
            heads = [
                _softmax_attend(
                    q[:, n * D : (n + 1) * D] @ k[:, n * D : (n + 1) * D].T / math.sqrt(D),
                    keep[None].expand(L, -1),
                    v[:, n * D : (n + 1) * D],
                )
                for n in range(H)
            ]
            h = h + _linear(s, f"{p}.proj_cross", torch.cat(heads, -1))
            x = _layer_norm(s, f"{p}.norm3", h)
            h = h + _linear(s, f"{p}.mlp.2", _gelu_tanh(_linear(s, f"{p}.mlp.0", x)))
        h = _layer_norm(s, "out_norm", h)
        out.append(torch.stack([_linear(s, f"heads.{k}", h) for k in range(K)]))
    return torch.stack(out)


def random_net(name: str, seed: int = 0) -> TokenLMNet:
    """A float64 network of config ``name`` whose every parameter (norms, null text, relative tables too) is
    random, so that no term of the forward hides behind a zero or a one."""
    torch.manual_seed(seed)
    net = TokenLMNet(TokenLMNetConfig(**CONFIGS[name])).double().eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float64) * 0.4)
    return net


def inputs(c: TokenLMNetConfig, B: int = 2, L: int = 9, Lt: int = 4, seed: int = 3):
    """Steps with the special token ``V`` among the codes, text, and a mask hiding clip 1's last two tokens."""
    gen = torch.Generator().manual_seed(seed)
    steps = torch.randint(0, c.codebook_size + 1, (B, c.num_codebooks, L), generator=gen)
    steps[:, :, 0] = c.codebook_size  # the start column
    text = torch.randn(B, Lt, c.text_dim, generator=gen, dtype=torch.float64)
    mask = torch.ones(B, Lt, dtype=torch.bool)
    mask[1, -2:] = False
    return steps, text, mask


def assert_same(got: Tensor, want: Tensor) -> None:
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_equal_the_reference(name):
    net = random_net(name)
    steps, text, mask = inputs(net.config)
    with torch.no_grad():
        got = net(steps, text, mask)
    c = net.config
    assert got.shape == (2, c.num_codebooks, 9, c.codebook_size)
    assert_same(got, reference_logits(net, steps, text, mask))


@pytest.mark.parametrize("name", ["skew", "none"])
def test_dropped_captions_read_the_null_text_alone(name):
    net = random_net(name, seed=4)
    steps, text, mask = inputs(net.config)
    drop = torch.tensor([False, True])
    with torch.no_grad():
        got = net(steps, text, mask, drop=drop)
    assert_same(got, reference_logits(net, steps, text, mask, drop))
    # the kept caption is untouched
    assert_same(got[:1], reference_logits(net, steps[:1], text[:1], mask[:1]))


@pytest.mark.parametrize("name", ["skew", "naive"])
def test_the_composite_runs_the_network_with_its_cache_and_the_window_slides(name):
    """``TokenLM.forward`` one step at a time with a cache of ``context = 3``: each step sees itself and the three
    before it, at their true distances (the reference's window)."""
    net = random_net(name)
    c = net.config
    codec = Codec(
        CodecConfig(
            channels=4, ratios=[2], dim=8, num_quantizers=c.num_codebooks, codebook_size=c.codebook_size
        )
    )
    lm = TokenLM(TokenLMConfig(net=c, context=3, text_encoder=f"hashed:{c.text_dim}"), {"codec": codec})
    lm.double().eval()
    lm.net.load_state_dict(net.state_dict())
    steps, text, mask = inputs(c)
    cache = lm.new_cache()
    with torch.no_grad():
        got = torch.cat([lm(steps[..., t : t + 1], text, mask, cache=cache) for t in range(9)], 2)
    assert cache.length == 3
    assert_same(got, reference_logits(net, steps, text, mask, window=3))
    with torch.no_grad():
        full = lm(steps, text, mask)  # no cache: the whole prefix
    assert_same(full, reference_logits(net, steps, text, mask))
    assert not torch.allclose(full[..., 4:, :], got[..., 4:, :])  # the window does cut the prefix


def test_the_smallest_network_builds_and_runs():
    ones = dict(num_codebooks=1, codebook_size=1, d_model=1, layers=1, heads=1, text_dim=1, max_distance=1)
    net = TokenLMNet(TokenLMNetConfig(**ones)).double().eval()
    steps = torch.tensor([[[1, 0, 0]]])
    text, mask = torch.randn(1, 2, 1, dtype=torch.float64), torch.ones(1, 2, dtype=torch.bool)
    with torch.no_grad():
        assert_same(net(steps, text, mask), reference_logits(net, steps, text, mask))


def test_the_network_names_mismatched_inputs():
    net = random_net("skew")
    steps, text, mask = inputs(net.config)
    with pytest.raises(ModelError, match=r"^got 2 codebooks, the model predicts 3$"):
        net(steps[:, :2], text, mask)
    # 4 text tokens of 5 dimensions: the message must name the embedding size, not the token count
    with pytest.raises(ModelError, match=r"^text embeddings are 5-d, the model expects 8$"):
        net(steps, text[..., :5], mask)


# --- devices (on "meta": no accelerator needed) ---------------------------------------------------------------

META = torch.device("meta")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_patterns_are_built_on_the_datas_device(pattern, monkeypatch):
    assert pattern_positions(pattern, 3, 5, META).device == META
    assert valid_mask(pattern, 3, 5, META).device == META
    seen: list[torch.device | None] = []

    def spy(pattern, K, T, device=None, _positions=pattern_positions):
        seen.append(device)
        return _positions(pattern, K, T, device)

    monkeypatch.setattr(token_lm_module, "pattern_positions", spy)
    codes = torch.zeros(2, 3, 5, dtype=torch.long, device=META)
    seq = build_pattern(codes, pattern, special=10)
    assert seq.device == META and seq.shape[:2] == (2, 3)
    assert revert_pattern(seq, pattern, 5).device == META
    assert valid_mask(pattern, 3, 5, META).device == META
    assert seen == [META, META, META]  # the positions (scatter/gather indices) live with the data


def test_dropping_accepts_a_host_side_drop_vector():
    net = TokenLMNet(TokenLMNetConfig(**CONFIGS["skew"])).to(META)
    text = torch.zeros(2, 4, 8, device=META)
    mask = torch.ones(2, 4, dtype=torch.bool, device=META)
    got, got_mask = net.condition(text, mask, torch.tensor([True, False]))  # drop made on the CPU
    assert got.device == META and got_mask.device == META and got.shape == text.shape


# --- TokenLMNetConfig / TokenLMConfig ---------------------------------------------------------------------------

SIZES = ("num_codebooks", "codebook_size", "d_model", "layers", "heads", "text_dim", "max_distance")


def test_every_size_may_be_one():
    c = TokenLMNetConfig(**{name: 1 for name in SIZES})
    assert [getattr(c, name) for name in SIZES] == [1] * len(SIZES)


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.parametrize("value", [0, -2])
def test_a_size_below_one_is_refused_by_name(name, value):
    ones = {n: 1 for n in SIZES}
    with pytest.raises(ConfigError, match=rf"^TokenLMNetConfig\.{name}={value} must be >= 1$"):
        TokenLMNetConfig(**{**ones, name: value})
    with pytest.raises(
        ConfigError, match=rf"^TokenLMConfig\.net: TokenLMNetConfig\.{name}={value} must be >= 1$"
    ):
        TokenLMConfig(net={name: value})  # from a mapping (a YAML file): the message says where


def test_d_model_must_split_into_the_heads():
    assert TokenLMNetConfig(d_model=12, heads=4).d_model == 12
    with pytest.raises(ConfigError, match=r"^TokenLMNetConfig\.d_model=10 must be a multiple of heads=4$"):
        TokenLMNetConfig(d_model=10, heads=4)


def test_the_net_field_from_a_mapping_or_a_clear_error():
    assert TokenLMConfig(net={"layers": 1, "heads": 2}).net == TokenLMNetConfig(layers=1, heads=2)
    keys = ", ".join(sorted(f.name for f in dataclasses.fields(TokenLMNetConfig)))
    with pytest.raises(
        ConfigError,
        match="^"
        + re.escape(f"TokenLMConfig.net: unknown key(s) depth for TokenLMNetConfig; valid keys: {keys}")
        + "$",
    ):
        TokenLMConfig(net={"depth": 3})
    with pytest.raises(
        ConfigError,
        match=r"^TokenLMConfig\.net: expected a TokenLMNetConfig or a mapping of its fields, got 5$",
    ):
        TokenLMConfig(net=5)


def test_pattern_is_one_of_the_known():
    for pattern in PATTERNS:
        assert TokenLMConfig(pattern=pattern).pattern == pattern
    with pytest.raises(
        ConfigError,
        match=r"^TokenLMConfig\.pattern='zigzag' is unknown; use one of \['delay', 'parallel', 'flat'\]$",
    ):
        TokenLMConfig(pattern="zigzag")


def test_cond_drop_prob_is_in_zero_to_one_open():
    assert TokenLMConfig(cond_drop_prob=0.0).cond_drop_prob == 0.0
    assert TokenLMConfig(cond_drop_prob=0.99).cond_drop_prob == 0.99
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match=rf"^TokenLMConfig\.cond_drop_prob={bad} must be in \[0, 1\)$"):
            TokenLMConfig(cond_drop_prob=bad)


def test_context_is_at_least_two_steps():
    assert TokenLMConfig(context=2).context == 2
    with pytest.raises(ConfigError, match=r"^TokenLMConfig\.context=1 must be >= 2 steps$"):
        TokenLMConfig(context=1)


def test_duration_is_positive_and_at_most_the_maximum():
    assert TokenLMConfig(duration=60.0, max_duration=60.0).duration == 60.0
    assert TokenLMConfig(duration=0.01).duration == 0.01
    for bad in (0.0, 60.5):
        with pytest.raises(
            ConfigError, match=rf"^TokenLMConfig: need 0 < duration \({bad}\) <= max_duration \(60\.0\)$"
        ):
            TokenLMConfig(duration=bad, max_duration=60.0)


def test_streaming_needs_a_frame_per_chunk_and_no_negative_context():
    c = TokenLMConfig(stream_frames=1, stream_context=0)
    assert (c.stream_frames, c.stream_context) == (1, 0)
    for bad in (dict(stream_frames=0, stream_context=8), dict(stream_frames=25, stream_context=-1)):
        with pytest.raises(
            ConfigError, match=r"^TokenLMConfig: stream_frames must be >= 1 and stream_context >= 0$"
        ):
            TokenLMConfig(**bad)


# --- the composite --------------------------------------------------------------------------------------------


def _config(**kw) -> TokenLMConfig:
    return TokenLMConfig(net=TokenLMNetConfig(**CONFIGS["skew"]), text_encoder="hashed:8", **kw)


def test_components_default_to_the_configs_references():
    lm = TokenLM(TokenLMConfig(codec="my_codec", text_encoder="hashed:8"))
    assert lm.component_refs() == {
        "codec": ShippedRef("my_codec"),
        "text_encoder": TextEncoderSpec("hashed:8"),
    }


def test_unknown_components_are_refused_by_the_first_name():
    extra = {"vocoder": nn.Linear(1, 1), "adapter": nn.Linear(1, 1)}
    with pytest.raises(
        ModelError, match=r"^TokenLM has no component 'adapter'; its components: codec, text_encoder$"
    ):
        TokenLM(_config(), {"codec": _codec(), **extra})


def test_components_are_frozen_and_stay_in_eval_mode():
    lm = TokenLM(_config(), {"codec": _codec()})
    assert not any(p.requires_grad for p in lm.codec.parameters())
    assert all(p.requires_grad for p in lm.net.parameters())
    lm.eval()
    assert lm.train() is lm
    assert lm.training and lm.net.training and not lm.codec.training
    lm.train(False)
    assert not lm.net.training


def test_parts_that_do_not_fit_are_named():
    with pytest.raises(ModelError, match=r"^the codec works at 8000 Hz, the model at 16000$"):
        TokenLM(_config(), {"codec": _codec(sample_rate=8000)}).check_parts()
    config = TokenLMConfig(net=TokenLMNetConfig(**CONFIGS["skew"]), text_encoder="hashed:6")
    with pytest.raises(
        ModelError, match=r"^text encoder 'hashed:6' gives 6-d embeddings, net\.text_dim is 8$"
    ):
        TokenLM(config, {"codec": _codec()}).check_parts()
    with pytest.raises(
        ModelError,
        match=r"^the network predicts 3 codebooks of 10 but the codec has 2 of 10; match them$",
    ):
        TokenLM(_config(), {"codec": _codec(num_quantizers=2)}).check_parts()
    TokenLM(_config(), {"codec": _codec(num_quantizers=3)}).check_parts()  # as many codebooks: fits


def test_parts_are_checked_once(monkeypatch):
    """``encode_text`` / ``audio_to_codes`` call ``check_parts`` on every batch: after one successful check it
    must not fetch the parts again."""
    lm = TokenLM(_config(), {"codec": _codec()})
    fresh = TokenLM(_config(), {"codec": _codec()})
    lm.check_parts()

    def unreachable(self):
        raise AssertionError("the parts were fetched again")

    monkeypatch.setattr(TokenLM, "codec", property(unreachable))
    lm.check_parts()
    with pytest.raises(AssertionError, match="fetched again"):  # an unchecked model does fetch them
        fresh.check_parts()
