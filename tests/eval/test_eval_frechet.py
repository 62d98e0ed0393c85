import numpy as np
import pytest
import scipy.linalg
import torch

from soundsmith.eval.frechet import (
    FrechetDistance,
    fad_infinity,
    frechet_distance,
    gaussian_stats,
    mahalanobis_scores,
)


def scipy_reference(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_matches_scipy_sqrtm_reference():
    rng = np.random.default_rng(0)
    for d in (4, 16, 32):
        x = rng.normal(size=(200, d)) @ rng.normal(size=(d, d))
        y = rng.normal(0.3, 1.2, size=(150, d)) @ rng.normal(size=(d, d))
        ours, ref = frechet_distance(x, y), scipy_reference(x, y)
        assert ours == pytest.approx(ref, rel=1e-6)


def test_symmetric_zero_on_identical_and_nonnegative():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(100, 8)), rng.normal(1.0, 2.0, size=(80, 8))
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-9)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, x) >= 0.0
    # singular covariances (N < D) must stay finite and non-negative
    small = rng.normal(size=(5, 32))
    assert np.isfinite(frechet_distance(small, small + 1e-3)) and frechet_distance(small, small + 1e-3) >= 0


def test_known_value_for_shifted_gaussians():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20000, 3))
    # same covariance, mean shifted by 2 in each of 3 dims -> FD ~ 12
    assert frechet_distance(x, x + 2.0) == pytest.approx(12.0, rel=1e-9)


def test_accumulating_metric_merge_equals_one_shot():
    rng = np.random.default_rng(3)
    g, r = torch.tensor(rng.normal(size=(60, 6))), torch.tensor(rng.normal(0.5, 1, size=(50, 6)))
    a, b = FrechetDistance(), FrechetDistance()
    a.update(generated=g[:30], reference=r[:20])
    b.update(generated=g[30:], reference=r[20:])
    assert a.merge(b).compute() == pytest.approx(frechet_distance(g, r), rel=1e-12)


def test_fad_infinity_removes_small_sample_bias():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(4000, 8))
    gen = rng.normal(size=(400, 8))  # same distribution: true FD is 0, finite-N FAD is biased up
    res = fad_infinity(gen, ref, seed=0)
    assert abs(res["fad_inf"]) < frechet_distance(gen, ref)
    assert res["slope"] > 0


def test_mahalanobis_flags_outlier():
    rng = np.random.default_rng(5)
    ref = rng.normal(size=(500, 4))
    x = np.vstack([rng.normal(size=(5, 4)), np.full((1, 4), 8.0)])
    scores = mahalanobis_scores(x, ref)
    assert scores.shape == (6,) and scores.argmax() == 5 and scores[5] > 3 * scores[:5].max()


def test_bad_input_raises():
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="sizes differ"):
        frechet_distance(
            np.random.default_rng(0).normal(size=(4, 2)), np.random.default_rng(0).normal(size=(4, 3))
        )
