"""Evaluation: metrics (accumulating `update()`/`compute()` classes and pure functions), embedders, runner, report.

`evaluate(generated, reference, prompts, out_dir, run_dir, tagger, clap)` is the one entry point the CLI wraps;
see docs/evaluation.md for what each metric means. Heavy modules (runner, embedders) load on first use.
`soundsmith.eval.evaluators` scores the evaluator networks themselves (tagger accuracy/mAP, CLAP retrieval).
"""

from soundsmith.eval.base import Metric
from soundsmith.eval.frechet import (
    FrechetDistance,
    fad_infinity,
    frechet_distance,
    frechet_from_stats,
    gaussian_stats,
    mahalanobis_scores,
)
from soundsmith.eval.metrics import (
    ClapScore,
    InceptionScore,
    PosteriorKL,
    SanityRates,
    TextAdherence,
    clap_score,
    inception_score,
    kl_divergence,
)
from soundsmith.eval.reconstruction import (
    ReconstructionMetrics,
    mel_l1,
    multi_resolution_stft_distance,
    si_sdr,
)


def evaluate(*args, **kwargs):
    """See :func:`soundsmith.eval.runner.evaluate`."""
    from soundsmith.eval.runner import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = [
    "ClapScore",
    "FrechetDistance",
    "InceptionScore",
    "Metric",
    "PosteriorKL",
    "ReconstructionMetrics",
    "SanityRates",
    "TextAdherence",
    "clap_score",
    "evaluate",
    "fad_infinity",
    "frechet_distance",
    "frechet_from_stats",
    "gaussian_stats",
    "inception_score",
    "kl_divergence",
    "mahalanobis_scores",
    "mel_l1",
    "multi_resolution_stft_distance",
    "si_sdr",
]
