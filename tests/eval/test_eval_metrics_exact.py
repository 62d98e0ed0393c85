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
    EPS,
    SILENCE_DBFS,
    ClapScore,
    InceptionScore,
    PosteriorKL,
    SanityRates,
    TextAdherence,
    clap_score,
    clipped_fraction,
    is_silent,
    kl_divergence,
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


# --- posterior metrics -------------------------------------------------------------------------------------------
def _kl_by_hand(p_gen, p_ref, kind):
    out = []
    for q_row, p_row in zip(p_gen, p_ref):
        p = [min(max(v, EPS), 1 - EPS) for v in p_row]
        q = [min(max(v, EPS), 1 - EPS) for v in q_row]
        if kind == "softmax":
            sp, sq = sum(p), sum(q)
            out.append(sum(a / sp * math.log((a / sp) / (b / sq)) for a, b in zip(p, q)))
        else:
            terms = [a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b)) for a, b in zip(p, q)]
            out.append(sum(terms) / len(terms))
    return out


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_kl_with_certain_probabilities_is_clamped_and_per_row(kind):
    p_ref = [[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]]  # certainties: log(0) without the clamp
    p_gen = [[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]]
    got = kl_divergence(torch.tensor(p_gen), torch.tensor(p_ref), kind)
    assert got.shape == (2,) and got.dtype == torch.float64 and torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), _kl_by_hand(p_gen, p_ref, kind), rtol=1e-9)
    metric = PosteriorKL(kind)
    assert math.isnan(metric.compute())
    metric.update(torch.tensor(p_gen[:1]), torch.tensor(p_ref[:1]))  # one clip is enough
    assert metric.compute() == pytest.approx(_kl_by_hand(p_gen[:1], p_ref[:1], kind)[0], rel=1e-9)


def test_kl_shape_mismatch_message():
    with pytest.raises(
        ValueError, match=r"^posterior shapes differ: generated \(2, 3\) vs reference \(2, 4\)$"
    ):
        kl_divergence(torch.full((2, 3), 1 / 3), torch.full((2, 4), 0.25))


def test_inception_score_normalises_rows_and_handles_one_clip():
    metric = InceptionScore()
    assert math.isnan(metric.compute())
    metric.update(torch.tensor([[2.0, 0.0]]))  # unnormalised, one clip: IS = 1 (no diversity)
    assert metric.compute() == pytest.approx(1.0, abs=1e-9)
    two = InceptionScore()
    two.update(
        torch.tensor([[0.6, 0.2], [0.2, 0.6]], dtype=torch.float64)
    )  # rows summing to 0.8 -> [.75, .25], [.25, .75]
    p = np.array([[0.75, 0.25], [0.25, 0.75]])
    want = math.exp(np.mean(np.sum(p * np.log(p / p.mean(0)), axis=1)))
    assert two.compute() == pytest.approx(want, rel=1e-9)


def test_text_adherence_per_class_and_empty():
    metric = TextAdherence(top_k=1, threshold=0.5)
    empty = metric.compute()
    assert set(empty) == {"topk_accuracy", "threshold_accuracy", "asked"} and empty["asked"] == 0.0
    assert math.isnan(empty["topk_accuracy"]) and math.isnan(empty["threshold_accuracy"])
    # 3 prompts x 2 classes (B != C, so per-class sums cannot be confused with per-prompt sums)
    probs = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    metric.update(probs, targets)
    # class 0 asked twice: top-1 in row 0 only; class 1 asked once (row 2): not top-1, 0.3 < 0.5
    np.testing.assert_allclose(metric.per_class().numpy(), [0.5, 0.0])
    np.testing.assert_allclose(metric.thresh.numpy(), [1.0, 0.0])  # row 0 (0.9) only
    assert metric.compute() == {"topk_accuracy": 1 / 3, "threshold_accuracy": 1 / 3, "asked": 3.0}


def test_exact_thresholds_and_integer_audio():
    assert rms_dbfs(np.full(16, 0.001)) == SILENCE_DBFS  # exactly at the threshold ...
    assert not is_silent(np.full(16, 0.001))  # ... is not silent (strictly below is)
    loud = np.array([200, -200, 200, -200], dtype=np.int16)  # squares overflow int16: computed in float64
    assert rms_dbfs(loud) == pytest.approx(20 * math.log10(200))
    assert clipped_fraction(np.array([3, 0], dtype=np.int16), level=2) == 0.5


def test_text_adherence_uses_its_threshold_inclusively():
    probs = torch.tensor([[0.65, 0.35], [0.6, 0.4]], dtype=torch.float64)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    metric = TextAdherence(top_k=1, threshold=0.65)  # not the default 0.5
    metric.update(probs, targets)
    assert metric.compute()["threshold_accuracy"] == 0.5  # 0.65 counts (>=), 0.6 does not
