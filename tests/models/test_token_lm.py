"""Token LM: interleaving patterns, KV-cached decoding == full recomputation, causality, the training loss."""

import pytest
import torch
import torch.nn.functional as F

from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.codec import Codec, CodecConfig
from soundsmith.models.token_lm import (
    PATTERNS,
    LMCache,
    TokenLM,
    TokenLMConfig,
    TokenLMNet,
    TokenLMNetConfig,
    build_pattern,
    frames_for_steps,
    pattern_steps,
    revert_pattern,
    valid_mask,
)
from soundsmith.train.objectives.token_lm import TokenLMObjective

NET = dict(num_codebooks=3, codebook_size=10, d_model=16, layers=2, heads=2, text_dim=8, max_distance=16)


def tiny_net(**kw) -> TokenLMNet:
    torch.manual_seed(0)
    return TokenLMNet(TokenLMNetConfig(**{**NET, **kw})).eval()


def text(B=1, L=3):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(B, L, 8, generator=gen), torch.ones(B, L, dtype=torch.bool)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("T", [1, 2, 7])
def test_each_pattern_round_trips(pattern, T):
    codes = torch.randint(0, 10, (2, 3, T), generator=torch.Generator().manual_seed(T))
    seq = build_pattern(codes, pattern, special=10)
    assert seq.shape == (2, 3, pattern_steps(pattern, 3, T))
    assert torch.equal(revert_pattern(seq, pattern, T), codes)
    valid = valid_mask(pattern, 3, T)
    assert int(valid.sum()) == 3 * T and bool((seq[:, ~valid] == 10).all())
    assert frames_for_steps(pattern, 3, seq.shape[-1]) == T


def test_delay_pattern_matches_musicgens_layout():
    # MusicGen (Copet et al. 2023, fig. 1): codebook k delayed by k steps; empty slots hold the special token
    codes = torch.tensor([[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]])
    S = -1
    want = torch.tensor([[[1, 2, 3, 4, S, S], [S, 5, 6, 7, 8, S], [S, S, 9, 10, 11, 12]]])
    assert torch.equal(build_pattern(codes, "delay", special=S), want)
    flat = build_pattern(codes, "flat", special=S)[0]
    assert flat[0, 0] == 1 and flat[1, 1] == 5 and flat[2, 2] == 9 and flat[0, 3] == 2  # frame by frame
    lm = TokenLM(TokenLMConfig(net=TokenLMNetConfig(**NET), text_encoder="hashed:8"), {"codec": _codec()})
    shifted = lm.inputs_for(build_pattern(codes, "delay", special=10))
    assert (shifted[..., 0] == 10).all() and torch.equal(
        shifted[..., 1:], build_pattern(codes, "delay", 10)[..., :-1]
    )


def test_unknown_pattern_is_a_clear_error():
    with pytest.raises(ConfigError, match="pattern='zigzag' is unknown"):
        TokenLMConfig(pattern="zigzag")


def test_kv_cached_steps_equal_the_full_pass():
    net = tiny_net()
    steps = torch.randint(0, 11, (2, 3, 12), generator=torch.Generator().manual_seed(0))
    t, m = text(2)
    full = net(steps, t, m)
    cache, outs = LMCache(context=64), []
    outs.append(net(steps[..., :5], t, m, cache=cache))  # a prefill of 5, then one step at a time
    for s in range(5, 12):
        outs.append(net(steps[..., s : s + 1], t, m, cache=cache))
    torch.testing.assert_close(torch.cat(outs, 2), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 12


def _greedy(net, steps_n, cached: bool):
    t, m = text(1)
    cols = torch.full((1, 3, 1), 10, dtype=torch.long)
    from soundsmith.models.token_lm import LMCache

    cache = LMCache(context=64) if cached else None
    out = []
    for _ in range(steps_n):
        logits = net(cols[..., -1:] if cached else cols, t, m, cache=cache)[:, :, -1]  # [1, K, V]
        nxt = logits.argmax(-1)[..., None]  # [1, K, 1]
        out.append(nxt)
        cols = torch.cat([cols, nxt], -1)
    return torch.cat(out, -1)


def test_cached_generation_equals_full_recomputation_token_for_token():
    net = tiny_net()
    torch.testing.assert_close(_greedy(net, 20, True), _greedy(net, 20, False), rtol=0, atol=0)


def test_sliding_window_keeps_the_cache_bounded():
    net = tiny_net()
    t, m = text(1)
    cache = LMCache(context=6)
    for s in range(10):
        out = net(torch.full((1, 3, 1), s % 10), t, m, cache=cache)
        assert torch.isfinite(out).all()
    assert cache.length == 6


def test_the_network_is_causal_and_reads_the_text():
    net = tiny_net()
    steps = torch.randint(0, 11, (1, 3, 10), generator=torch.Generator().manual_seed(2))
    t, m = text(1)
    a = net(steps, t, m)
    later = steps.clone()
    later[..., 6:] = (later[..., 6:] + 1) % 11
    b = net(later, t, m)
    torch.testing.assert_close(b[:, :, :6], a[:, :, :6], rtol=0, atol=0)
    assert not torch.allclose(b[:, :, 6:], a[:, :, 6:])
    dropped = net(steps, t, m, drop=torch.tensor([True]))
    assert not torch.allclose(dropped, a)  # the null text is another condition


def _codec(**kw) -> Codec:
    torch.manual_seed(0)
    return Codec(
        CodecConfig(**{**dict(channels=4, ratios=[2, 2], dim=8, num_quantizers=4, codebook_size=10), **kw})
    )


def test_parts_must_fit_together():
    cfg = TokenLMConfig(net=TokenLMNetConfig(**{**NET, "codebook_size": 12}), text_encoder="hashed:8")
    with pytest.raises(ModelError, match="codebooks of 12"):
        TokenLM(cfg, {"codec": _codec()}).check_parts()


def test_loss_is_cross_entropy_over_the_valid_slots_only():
    cfg = TokenLMConfig(net=TokenLMNetConfig(**NET), text_encoder="hashed:8", cond_drop_prob=0.0)
    lm = TokenLM(cfg, {"codec": _codec()}).eval()
    obj = TokenLMObjective(lm)
    audio = 0.3 * torch.randn(2, 40, generator=torch.Generator().manual_seed(0))
    batch = obj.prepare_batch({"audio": audio, "caption": ["a bell", "rain"]})
    assert batch["codes"].shape == (2, 3, 10) and batch["seq"].shape == (2, 3, 12)
    with torch.no_grad():
        got = float(obj.losses(batch, 0)["loss"])
        # by hand: per frame and codebook, the logit at the step where the pattern puts that code
        logits = lm(lm.inputs_for(batch["seq"]), batch["text_tokens"], batch["text_mask"])  # [B, K, S, V]
    terms = []
    for b in range(2):
        for k in range(3):
            for t in range(10):
                terms.append(F.cross_entropy(logits[b, k, t + k][None], batch["codes"][b, k, t][None]))
    assert got == pytest.approx(float(torch.stack(terms).mean()), rel=1e-5)


def test_pattern_edges_empty_clips_partial_frames_and_dtypes():
    from soundsmith.models.token_lm import build_pattern, frames_for_steps, pattern_positions, pattern_steps

    assert [pattern_steps(p, 4, 0) for p in ("parallel", "delay", "flat")] == [0, 0, 0]
    assert [pattern_steps(p, 4, 5) for p in ("parallel", "delay", "flat")] == [5, 8, 20]
    assert frames_for_steps("delay", 4, 2) == 0 and frames_for_steps("delay", 4, 5) == 2
    flat = frames_for_steps("flat", 4, 10)
    assert flat == 2 and isinstance(flat, int)
    codes = torch.arange(12, dtype=torch.int32).view(1, 3, 4)
    assert build_pattern(codes, "delay", special=99).dtype == torch.int32
    with pytest.raises(
        ConfigError, match=r"^pattern='zigzag' is unknown; use one of \['delay', 'parallel', 'flat'\]$"
    ):
        pattern_positions("zigzag", 2, 3)


@pytest.mark.parametrize("name", ["tiny", "base", "cpu"])
def test_presets_load_and_fit_their_codec(name):
    """Every preset reads, and its network fits the base codec's token streams (4 of 8 codebooks of 1024)."""
    from soundsmith.train.runconfig import load_run_config

    rc = load_run_config(f"configs/token_lm/{name}.yaml")
    codec = load_run_config(f"configs/codec/{'tiny' if name == 'tiny' else 'base'}.yaml").model
    m = rc.model
    assert rc.family == "token_lm" and m.pattern in PATTERNS
    assert m.net.num_codebooks <= codec.num_quantizers and m.net.codebook_size == codec.codebook_size
    assert rc.data.sample_rate == m.sample_rate == codec.sample_rate
    # a training clip's whole pattern fits the window and the relative-position table: no slide in training
    # (the tiny smoke preset's 0.05-s clip is 200 frames of its hop-4 codec, past its 64-step window)
    steps = pattern_steps(m.pattern, m.net.num_codebooks, round(rc.data.clip_seconds * codec.frame_rate))
    assert name == "tiny" or (steps <= m.context and steps <= m.net.max_distance)
