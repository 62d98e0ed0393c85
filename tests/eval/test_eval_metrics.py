import math

import numpy as np
import pytest
import torch

from soundsmith.eval.metrics import (
    ClapScore,
    InceptionScore,
    PosteriorKL,
    SanityRates,
    TextAdherence,
    adherence_hits,
    inception_score,
    kl_divergence,
)


def test_kl_softmax_matches_float64_reference():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=4)
    q = rng.dirichlet(np.ones(5), size=4)
    ref = (p * np.log(p / q)).sum(1)
    ours = kl_divergence(torch.tensor(q), torch.tensor(p), "softmax").numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-6)


def test_kl_sigmoid_matches_bernoulli_reference_and_zero_on_identical():
    p = torch.tensor([[0.9, 0.2, 0.5]], dtype=torch.float64)
    q = torch.tensor([[0.6, 0.3, 0.5]], dtype=torch.float64)
    ref = np.mean([a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b)) for a, b in zip(p[0], q[0])])
    assert float(kl_divergence(q, p, "sigmoid")) == pytest.approx(ref, rel=1e-9)
    assert float(kl_divergence(p, p, "sigmoid")) == pytest.approx(0.0, abs=1e-12)
    assert float(kl_divergence(p, p, "softmax")) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="kind"):
        kl_divergence(p, p, "bogus")


def test_posterior_kl_merge():
    rng = np.random.default_rng(1)
    p, q = torch.tensor(rng.dirichlet(np.ones(4), 10)), torch.tensor(rng.dirichlet(np.ones(4), 10))
    a, b = PosteriorKL(), PosteriorKL()
    a.update(q[:3], p[:3])
    b.update(q[3:], p[3:])
    assert a.merge(b).compute() == pytest.approx(float(kl_divergence(q, p).mean()), rel=1e-12)


def test_inception_score_bounds_and_reference():
    c = 4
    confident_diverse = torch.eye(c, dtype=torch.float64).repeat(5, 1)
    assert inception_score(confident_diverse) == pytest.approx(c, rel=1e-4)  # maximum = number of classes
    same = torch.full((8, c), 1.0 / c, dtype=torch.float64)
    assert inception_score(same) == pytest.approx(1.0, abs=1e-9)  # minimum
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(c), size=20)
    pbar = p.mean(0)
    ref = math.exp(np.mean((p * (np.log(p) - np.log(pbar))).sum(1)))
    inc = InceptionScore()
    inc.update(torch.tensor(p[:7]))
    other = InceptionScore()
    other.update(torch.tensor(p[7:]))
    assert inc.merge(other).compute() == pytest.approx(ref, rel=1e-6)


def test_clap_score_mean_cosine():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    s = ClapScore()
    s.update(a, t)
    assert s.compute() == pytest.approx(0.5)


def test_adherence_topk_and_threshold():
    probs = torch.tensor([[0.9, 0.05, 0.6], [0.1, 0.3, 0.2]])
    targets = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    topk, thresh = adherence_hits(probs, targets)  # k = 1 asked class per row
    assert topk.tolist() == [[False, False, False], [False, False, False]]
    assert thresh.tolist() == [[False, False, True], [False, False, False]]
    m = TextAdherence(top_k=2)
    m.update(probs, targets)
    res = m.compute()
    assert res["topk_accuracy"] == pytest.approx(0.5)  # class 2 is 2nd in row 0; class 0 is 3rd in row 1
    assert res["threshold_accuracy"] == pytest.approx(0.5)
    assert res["asked"] == 2
    assert torch.isnan(m.per_class()[1]) and m.per_class()[2] == 1.0


def test_sanity_rates():
    rng = np.random.default_rng(3)
    s = SanityRates()
    s.update(np.zeros(1000))
    s.update(0.1 * rng.normal(size=1000))
    s.update(np.clip(3 * rng.normal(size=1000), -1, 1))
    res = s.compute()
    assert res["silence_rate"] == pytest.approx(1 / 3)
    assert res["clipping_rate"] == pytest.approx(1 / 3)


class MirrorFabric:
    """Two processes holding identical state: all_reduce doubles, all_gather stacks twice."""

    world_size = 2

    def all_reduce(self, t, reduce_op="sum"):
        assert reduce_op == "sum"
        return 2 * t

    def all_gather(self, t):
        return torch.stack([t, t])


def test_sync_equals_merge_of_process_states():
    import copy

    from soundsmith.eval.frechet import FrechetDistance

    rng = np.random.default_rng(4)
    kl = PosteriorKL()
    kl.update(torch.tensor(rng.dirichlet(np.ones(3), 5)), torch.tensor(rng.dirichlet(np.ones(3), 5)))
    fd = FrechetDistance()
    fd.update(
        generated=torch.tensor(rng.normal(size=(7, 3))), reference=torch.tensor(rng.normal(size=(9, 3)))
    )
    for metric in (kl, fd):
        expected = copy.deepcopy(metric).merge(copy.deepcopy(metric)).compute()
        assert metric.sync(MirrorFabric()).compute() == pytest.approx(expected, rel=1e-12)
    assert len(fd.generated) == 2 and sum(len(x) for x in fd.generated) == 14
