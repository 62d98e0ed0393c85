"""The sampling rule: torch and numba twins agree; temperature, top-k, top-p do what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundsmith.errors import ConfigError
from soundsmith.sampling.autoregressive import (
    check_sampling_args,
    draw_uniforms,
    sample_from_logits,
    sample_logits_nb,
)

SETTINGS = [
    (1.0, 0, 1.0),
    (0.7, 0, 1.0),
    (1.0, 5, 1.0),
    (1.3, 0, 0.8),
    (0.9, 20, 0.5),
    (0.0, 0, 1.0),
    (1.0, 1, 1.0),
]


def _numba(logits: np.ndarray, u: np.ndarray, t: float, k: int, p: float) -> np.ndarray:
    v = logits.shape[1]
    scratch_p, scratch_s = np.empty(v), np.empty(v)
    return np.array([sample_logits_nb(row, ui, t, k, p, scratch_p, scratch_s) for row, ui in zip(logits, u)])


@pytest.mark.parametrize("temperature,top_k,top_p", SETTINGS)
def test_torch_and_numba_draw_the_same_codes(temperature, top_k, top_p):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 64)) * 3
    logits[:20, :8] = 2.5  # exact ties
    u = rng.random(300)
    ours = sample_from_logits(
        torch.from_numpy(logits), torch.from_numpy(u), temperature, top_k, top_p
    ).numpy()
    twin = _numba(logits, u, temperature, top_k, top_p)
    np.testing.assert_array_equal(ours, twin)


def test_greedy_and_top1_pick_the_argmax():
    logits = torch.tensor([[0.1, 3.0, 2.9, -1.0], [5.0, 0.0, 0.0, 5.5]])
    u = torch.tensor([0.99, 0.01])
    assert sample_from_logits(logits, u, temperature=0.0).tolist() == [1, 3]
    assert sample_from_logits(logits, u, top_k=1).tolist() == [1, 3]


def test_filters_restrict_the_support():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 32, generator=g).expand(4000, 32)
    u = torch.rand(4000, generator=g, dtype=torch.float64)
    top3 = set(torch.topk(logits[0], 3).indices.tolist())
    assert set(sample_from_logits(logits, u, top_k=3).tolist()) == top3
    probs = torch.softmax(logits[0].double(), -1)
    order = torch.argsort(probs, descending=True)
    m = int((torch.cumsum(probs[order], 0) < 0.5).sum()) + 1  # smallest prefix reaching 0.5
    assert set(sample_from_logits(logits, u, top_p=0.5).tolist()) == set(order[:m].tolist())


def test_frequencies_follow_the_tempered_softmax():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]])).expand(20000, 4)
    u = torch.from_numpy(np.random.default_rng(2).random(20000))
    for temperature in (1.0, 0.5):
        codes = sample_from_logits(logits, u, temperature=temperature)
        freq = torch.bincount(codes, minlength=4).double() / len(codes)
        expected = torch.softmax(logits[0].double() / temperature, -1)
        assert torch.allclose(freq, expected, atol=0.015), (freq, expected)


def test_uniforms_per_seed_rows_equal_single_rows():
    batch = draw_uniforms(50, seeds=[3, 4, 5])
    assert batch.shape == (3, 50)
    np.testing.assert_array_equal(batch[1], draw_uniforms(50, seeds=[4])[0])
    assert not np.array_equal(batch[0], batch[1])
    gen = draw_uniforms(10, generator=np.random.default_rng(0), batch=2)
    assert gen.shape == (2, 10) and (gen >= 0).all() and (gen < 1).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"temperature": -1}, "temperature"),
        ({"top_k": -2}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_sampling_args_raise(kwargs, match):
    args = {"temperature": 1.0, "top_k": 0, "top_p": 1.0} | kwargs
    with pytest.raises(ConfigError, match=match):
        check_sampling_args(args["temperature"], args["top_k"], args["top_p"], 256)
