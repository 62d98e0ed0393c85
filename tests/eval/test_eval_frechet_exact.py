"""FAD-infinity, outlier scores and input checks against references computed another way.

Written after ``scripts/mutation.sh eval/frechet`` showed these paths only checked for plausibility
(docs/testing.md): here each number is recomputed independently and compared to float64 precision.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis

from soundsmith.eval.frechet import fad_infinity, frechet_distance, gaussian_stats, mahalanobis_scores


def _sets(n: int = 40, m: int = 60, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.3, 1.0, (n, d)), rng.normal(0.0, 1.2, (m, d))


def _fad_infinity_by_hand(g, r, sizes, repeats, seed):
    """The documented procedure, step by step: subsample g (without replacement, one Generator(seed)),
    FAD against the whole reference, least squares of FAD on 1/N, R^2 of that line."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for s in sizes:
        for _ in range(1 if s == len(g) else repeats):
            idx = rng.choice(len(g), size=s, replace=False)
            xs.append(1.0 / s)
            ys.append(frechet_distance(g[idx], r))
    x, y = np.array(xs), np.array(ys)
    design = np.stack([np.ones_like(x), x], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    r2 = 1 - np.sum((y - (a + b * x)) ** 2) / np.sum((y - y.mean()) ** 2)
    return a, b, r2


def test_fad_infinity_equals_the_procedure_by_hand():
    g, r = _sets()
    res = fad_infinity(g, r, sizes=[10, 20, 30, 40], repeats=2, seed=5)
    a, b, r2 = _fad_infinity_by_hand(g, r, [10, 20, 30, 40], 2, 5)
    assert res["fad_inf"] == pytest.approx(a, rel=1e-9, abs=1e-12)
    assert res["slope"] == pytest.approx(b, rel=1e-9)
    assert res["r2"] == pytest.approx(r2, rel=1e-9)
    assert 0.0 <= res["r2"] <= 1.0


def test_fad_infinity_defaults_are_the_documented_ones():
    g, r = _sets(n=40)
    # sizes: linspace(max(2, n // 5), n, min(6, ...)) -> 8, 14, 20, 27, 33, 40; repeats 3; seed 0
    assert fad_infinity(g, r) == fad_infinity(g, r, sizes=[8, 14, 20, 27, 33, 40], repeats=3, seed=0)
    a, b, r2 = _fad_infinity_by_hand(g, r, [8, 14, 20, 27, 33, 40], 3, 0)
    assert fad_infinity(g, r)["fad_inf"] == pytest.approx(a, rel=1e-9, abs=1e-12)
    small_g, small_r = _sets(n=7, seed=1)  # n // 5 = 1 -> the smallest size is 2
    assert fad_infinity(small_g, small_r) == fad_infinity(small_g, small_r, sizes=[2, 3, 4, 5, 6, 7])


def test_fad_infinity_rejects_too_few_sizes():
    g, r = _sets()
    with pytest.raises(ValueError, match="at least 2 subsample sizes"):
        fad_infinity(g, r, sizes=[1, 40, 41])


@pytest.mark.parametrize("shrinkage", [0.0, 1e-3, 0.5])
def test_mahalanobis_matches_scipy_with_the_documented_shrinkage(shrinkage):
    x, ref = _sets(n=5, m=50, d=4, seed=2)
    mu, cov = np.mean(ref, axis=0), np.cov(ref, rowvar=False)
    shrunk = cov + shrinkage * np.trace(cov) / 4 * np.eye(4)
    want = [mahalanobis(row, mu, np.linalg.inv(shrunk)) for row in x]
    got = mahalanobis_scores(x, ref, shrinkage=shrinkage)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    if shrinkage == 1e-3:
        np.testing.assert_array_equal(mahalanobis_scores(x, ref), got)  # the default


def test_mahalanobis_with_fewer_reference_rows_than_dims_stays_finite():
    x, ref = _sets(n=3, m=4, d=8, seed=3)
    scores = mahalanobis_scores(torch.tensor(x), torch.tensor(ref))
    assert scores.shape == (3,) and np.all(np.isfinite(scores)) and np.all(scores > 0)


def test_statistics_are_float64_whatever_the_input_dtype():
    x = np.random.default_rng(4).normal(size=(30, 3))
    mu64, s64 = gaussian_stats(x)
    mu32, s32 = gaussian_stats(x.astype(np.float32).astype(np.float64))
    for arr in (torch.tensor(x, dtype=torch.float32), x.astype(np.float32)):
        mu, s = gaussian_stats(arr)
        assert mu.dtype == np.float64 and s.dtype == np.float64
        np.testing.assert_allclose(s, s32, rtol=1e-12)  # computed in float64 from the float32 values
    assert not np.array_equal(s32, s64)  # (the float32 rounding is visible, so the check above is sharp)


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.zeros(5), r"^expected embeddings \[N, D\], got shape \(5,\)$"),
        (np.zeros((1, 3)), r"^need at least 2 embeddings to fit a Gaussian, got 1$"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), r"^embeddings contain NaN or Inf; check the audio and the embedding model$"),
    ],
)  # fmt: skip
def test_bad_embeddings_get_the_documented_message(bad, message):
    with pytest.raises(ValueError, match=message):
        gaussian_stats(bad)


def test_fad_infinity_edges():
    g, r = _sets(n=40)
    res = fad_infinity(g, r, sizes=[2, 40])  # 2 is the smallest size, and 2 sizes are enough
    a, b, r2 = _fad_infinity_by_hand(g, r, [2, 40], 3, 0)
    assert res["fad_inf"] == pytest.approx(a, rel=1e-9) and res["r2"] == pytest.approx(r2, rel=1e-9)
    with pytest.raises(ValueError, match="at least 2 subsample sizes"):
        fad_infinity(g, r, sizes=[40])


def test_frechet_metric_needs_both_sets():
    from soundsmith.eval.frechet import FrechetDistance

    for kw in (dict(generated=np.zeros((3, 2))), dict(reference=np.zeros((3, 2)))):
        metric = FrechetDistance()
        metric.update(**{k: torch.tensor(v) for k, v in kw.items()})
        with pytest.raises(
            RuntimeError,
            match=r"^FrechetDistance.compute\(\) before both generated and reference were updated$",
        ):
            metric.compute()


def test_mahalanobis_of_the_reference_mean_is_zero_not_nan():
    ref = np.random.default_rng(5).normal(size=(50, 3))
    scores = mahalanobis_scores(np.stack([ref.mean(0), ref.mean(0) + 1e-9]), ref)
    assert np.all(np.isfinite(scores)) and scores[0] == pytest.approx(0.0, abs=1e-6)
