"""Relative attention: Music Transformer's skewing gives exactly the naive O(L^2 D) relative term."""

import pytest
import torch

from soundsmith.nn.relative_attention import (
    RelativeSelfAttention,
    causal_mask,
    relative_logits,
    relative_logits_naive,
    skew,
)


@pytest.mark.parametrize("L", [1, 2, 5, 16, 37])
def test_skewed_equals_naive_on_the_causal_entries(L):
    gen = torch.Generator().manual_seed(L)
    q = torch.randn(2, 3, L, 8, generator=gen)
    table = torch.randn(3, 64, 8, generator=gen)
    allowed = causal_mask(L, L, q.device)
    got, want = relative_logits(q, table, L), relative_logits_naive(q, table, L)
    torch.testing.assert_close(got[..., allowed], want[..., allowed], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("Lq", "Lk"), [(1, 9), (3, 9), (9, 9)])
def test_skew_handles_the_last_queries_of_a_longer_key_sequence(Lq, Lk):
    gen = torch.Generator().manual_seed(Lq)
    q, table = torch.randn(1, 2, Lq, 4, generator=gen), torch.randn(2, 16, 4, generator=gen)
    allowed = causal_mask(Lq, Lk, q.device)
    torch.testing.assert_close(
        relative_logits(q, table, Lk)[..., allowed], relative_logits_naive(q, table, Lk)[..., allowed]
    )


def test_skew_is_the_papers_pad_reshape_drop_on_a_small_example():
    # qe[i, c] = q_i . E[distance L-1-c]; entry [i, j] must be qe[i, j + L - 1 - i]
    L = 4
    qe = torch.arange(L * L, dtype=torch.float32).view(L, L)
    out = skew(qe)
    for i in range(L):
        for j in range(i + 1):
            assert out[i, j] == qe[i, j + L - 1 - i]


def test_distances_beyond_the_table_share_its_last_entry():
    gen = torch.Generator().manual_seed(0)
    q, table = torch.randn(1, 1, 20, 4, generator=gen), torch.randn(1, 5, 4, generator=gen)
    allowed = causal_mask(20, 20, q.device)
    got = relative_logits(q, table, 20)
    torch.testing.assert_close(got[..., allowed], relative_logits_naive(q, table, 20)[..., allowed])
    assert torch.allclose(got[0, 0, 19, 0], q[0, 0, 19] @ table[0, 4])  # distance 19 -> entry 4


def test_attention_modules_agree_and_are_causal():
    torch.manual_seed(0)
    skewed = RelativeSelfAttention(16, 2, 8, mode="skew")
    naive = RelativeSelfAttention(16, 2, 8, mode="naive")
    naive.load_state_dict(skewed.state_dict())
    x = torch.randn(2, 12, 16)
    out, _ = skewed(x)
    torch.testing.assert_close(out, naive(x)[0], rtol=1e-5, atol=1e-6)
    x2 = x.clone()
    x2[:, 7:] += 1.0  # the future changes, the past does not
    torch.testing.assert_close(skewed(x2)[0][:, :7], out[:, :7], rtol=0, atol=1e-6)
    assert not torch.allclose(skewed(x2)[0][:, 7:], out[:, 7:])


def test_cached_steps_equal_the_full_pass():
    torch.manual_seed(1)
    attn = RelativeSelfAttention(16, 4, 6)
    x = torch.randn(1, 10, 16)
    full, _ = attn(x)
    past, outs = None, []
    for t in range(10):
        o, past = attn(x[:, t : t + 1], past)
        outs.append(o)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-5, atol=1e-6)


def test_plain_mode_is_relative_attention_with_a_zero_table_full_and_cached():
    torch.manual_seed(2)
    plain = RelativeSelfAttention(16, 2, 8, mode="none")
    naive = RelativeSelfAttention(16, 2, 8, mode="naive")
    naive.load_state_dict(plain.state_dict())
    with torch.no_grad():
        naive.rel.zero_()  # no relative term: plain causal attention
    x = torch.randn(2, 9, 16)
    out, (k, v) = plain(x)
    torch.testing.assert_close(out, naive(x)[0], rtol=1e-5, atol=1e-6)
    assert k.shape == v.shape == (2, 2, 9, 8)
    past, steps = None, []  # the cached path of the plain mode (keys longer than queries)
    for t in range(9):
        o, past = plain(x[:, t : t + 1], past)
        steps.append(o)
    torch.testing.assert_close(torch.cat(steps, 1), out, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"^d_model=10 must be a multiple of heads=4$"):
        RelativeSelfAttention(10, 4, 8)
    with pytest.raises(ValueError, match=r"^mode='fast' must be one of"):
        RelativeSelfAttention(16, 2, 8, mode="fast")
    assert 0.01 < float(RelativeSelfAttention(64, 2, 32).rel.std()) < 0.03  # the table starts small (0.02)
