"""Edges of the posterior/embedding metrics and the sanity rates, against values worked out by hand.

Written after ``scripts/mutation.sh eval/metrics`` showed boundaries (>= vs >), empty states and the exact
key names of ``compute()`` untested (docs/testing.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soundsmith.eval.metrics import (
    CLIP_FRACTION,
    CLIP_LEVEL,
    SILENCE_DBFS,
    ClapScore,
    SanityRates,
    clap_score,
    clipped_fraction,
    is_silent,
    rms_dbfs,
)


def test_clap_score_is_the_row_cosine():
    a = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    t = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(clap_score(a, t).numpy(), [1.0, 1 / math.sqrt(2)], rtol=1e-12)
    # a batch of 2 rows of 2-d embeddings: per row (dim -1), not per column
    np.testing.assert_allclose(
        clap_score(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]])).numpy(),
        [1 / math.sqrt(2)] * 2,
    )
    metric = ClapScore()
    assert math.isnan(metric.compute())  # empty: NaN, not 0 or an error
    metric.update(a[:1], t[:1])
    assert metric.compute() == pytest.approx(1.0)  # one row is enough
    metric.update(a[1:], t[1:])
    assert metric.compute() == pytest.approx((1 + 1 / math.sqrt(2)) / 2)


def test_rms_dbfs_by_hand():
    assert rms_dbfs(np.full(100, 0.5)) == pytest.approx(20 * math.log10(0.5))
    assert rms_dbfs(np.array([1, -1, 1, -1], dtype=np.int16)) == pytest.approx(0.0)  # integers are values
    assert rms_dbfs(np.zeros(10)) == pytest.approx(-200.0)  # floor 1e-10
    assert rms_dbfs(np.zeros(0)) == pytest.approx(-200.0)  # empty clip: the floor, no warning/NaN
    assert rms_dbfs(torch.full((8,), 0.1)) == pytest.approx(-20.0)


def test_silence_threshold_is_strict():
    at = 10 ** (SILENCE_DBFS / 20)  # a constant clip whose RMS is exactly the threshold
    assert not is_silent(np.full(16, at * 1.0001))
    assert is_silent(np.full(16, at * 0.9999))
    assert not is_silent(np.full(16, 1.0), threshold_db=-1.0)


def test_clipped_fraction_counts_samples_at_the_level():
    x = np.array([CLIP_LEVEL, -CLIP_LEVEL, 0.5, 0.9989, 1.0, 0.0, 0.0, 0.0])
    assert clipped_fraction(x) == pytest.approx(3 / 8)  # at or above the level, either sign
    assert clipped_fraction(np.array([], dtype=np.float64)) == 0.0
    assert clipped_fraction(np.array([1, 0], dtype=np.int8)) == 0.5


def test_sanity_rates_boundaries_and_sums():
    s = SanityRates()
    empty = s.compute()
    assert set(empty) == {"silence_rate", "clipping_rate", "clipped_sample_fraction"}
    assert math.isnan(empty["silence_rate"]) and math.isnan(empty["clipping_rate"])
    assert empty["clipped_sample_fraction"] == 0.0
    s.update_stats(SILENCE_DBFS, CLIP_FRACTION)  # exactly at both thresholds: neither silent nor clipping
    assert s.compute() == {
        "silence_rate": 0.0,
        "clipping_rate": 0.0,
        "clipped_sample_fraction": CLIP_FRACTION,
    }
    s.update_stats(SILENCE_DBFS - 1, 0.5)  # silent and clipping
    res = s.compute()
    assert res["silence_rate"] == 0.5 and res["clipping_rate"] == 0.5
    assert res["clipped_sample_fraction"] == pytest.approx((CLIP_FRACTION + 0.5) / 2)
