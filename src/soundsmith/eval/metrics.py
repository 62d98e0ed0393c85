"""Posterior- and embedding-based metrics: KL, Inception Score, CLAP score, text adherence, sanity rates.

Pure functions take tensors; the `Metric` classes accumulate sums so they merge and sync across processes.
Probabilities are clamped to `[EPS, 1 - EPS]` before logs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from soundsmith.audio.loudness import SILENCE_DBFS  # a clip whose RMS is below it is "silent"
from soundsmith.eval.base import Metric

EPS = 1e-6
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped
CLIP_FRACTION = 1e-3  # a clip with more than this share of clipped samples is "clipping"


def kl_divergence(p_gen: torch.Tensor, p_ref: torch.Tensor, kind: str = "softmax") -> torch.Tensor:
    """KL(p_ref || p_gen) per row, `[N, C]` probabilities -> `[N]` (float64).

    `kind="softmax"`: each row is one categorical distribution. `kind="sigmoid"`: each class is an independent
    Bernoulli (multi-label tagger); the per-class KLs are averaged over classes.
    """
    p = p_ref.double().clamp(EPS, 1 - EPS)
    q = p_gen.double().clamp(EPS, 1 - EPS)
    if p.shape != q.shape:
        raise ValueError(f"posterior shapes differ: generated {tuple(q.shape)} vs reference {tuple(p.shape)}")
    if kind == "softmax":
        p = p / p.sum(-1, keepdim=True)
        q = q / q.sum(-1, keepdim=True)
        return (p * (p.log() - q.log())).sum(-1)
    if kind == "sigmoid":
        kl = p * (p.log() - q.log()) + (1 - p) * ((1 - p).log() - (1 - q).log())
        return kl.mean(-1)
    raise ValueError(f"kind={kind!r}: use 'softmax' or 'sigmoid'")


class PosteriorKL(Metric):
    """Mean KL(reference || generated) over paired clips: `update(p_gen [B, C], p_ref [B, C])`."""

    sum_states = ("total", "count")

    def __init__(self, kind: str = "softmax") -> None:
        self.kind = kind
        super().__init__()

    def update(self, p_gen: torch.Tensor, p_ref: torch.Tensor) -> None:
        kl = kl_divergence(p_gen, p_ref, self.kind)
        self.total = self.total + kl.sum()
        self.count = self.count + kl.numel()

    def compute(self) -> float:
        return float(self.total / self.count) if self.count > 0 else float("nan")


def inception_score(probs: torch.Tensor) -> float:
    """IS = exp(E_x KL(p(y|x) || p(y))) from softmax posteriors `[N, C]` (1 = no diversity/confidence)."""
    metric = InceptionScore()
    metric.update(probs)
    return metric.compute()


class InceptionScore(Metric):
    """Accumulates `sum p`, `sum p log p` and the count; IS = exp(mean(sum p log p) - sum pbar log pbar)."""

    sum_states = ("sum_p", "sum_plogp", "count")

    def update(self, probs: torch.Tensor) -> None:
        p = probs.double().clamp(EPS, 1.0)
        p = p / p.sum(-1, keepdim=True)
        self.sum_p = self.sum_p + p.sum(0)
        self.sum_plogp = self.sum_plogp + (p * p.log()).sum()
        self.count = self.count + p.shape[0]

    def compute(self) -> float:
        if self.count == 0:
            return float("nan")
        pbar = (self.sum_p / self.count).clamp(EPS, 1.0)
        return float(torch.exp(self.sum_plogp / self.count - (pbar * pbar.log()).sum()))


def clap_score(audio_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each clip with its own prompt: `[N, D], [N, D] -> [N]`."""
    return F.cosine_similarity(audio_emb.double(), text_emb.double(), dim=-1)


class ClapScore(Metric):
    """Mean cosine(audio, its prompt): `update(audio_emb [B, D], text_emb [B, D])`."""

    sum_states = ("total", "count")

    def update(self, audio_emb: torch.Tensor, text_emb: torch.Tensor) -> None:
        s = clap_score(audio_emb, text_emb)
        self.total = self.total + s.sum()
        self.count = self.count + s.numel()

    def compute(self) -> float:
        return float(self.total / self.count) if self.count > 0 else float("nan")


def adherence_hits(
    probs: torch.Tensor, targets: torch.Tensor, top_k: int | None = None, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each asked class, was it found? `probs [B, C]`, multi-hot `targets [B, C]` ->
    (`topk_hits [B, C]`, `threshold_hits [B, C]`) as bool, False where not asked.

    Top-k: the class is among the k most probable (k = number of classes asked in that prompt when
    `top_k` is None). Threshold: its probability is at least `threshold`.
    """
    asked = targets.bool()
    order = probs.argsort(dim=-1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(probs.shape[-1], device=probs.device).expand_as(order))
    k = asked.sum(-1, keepdim=True).clamp(min=1) if top_k is None else torch.full_like(rank[:, :1], top_k)
    return asked & (rank < k), asked & (probs >= threshold)


class TextAdherence(Metric):
    """Share of asked classes the tagger finds: `update(probs [B, C], targets [B, C])`.

    `compute()` -> `{"topk_accuracy", "threshold_accuracy", "asked"}`; also per class via `per_class()`.
    """

    sum_states = ("topk", "thresh", "asked")

    def __init__(self, top_k: int | None = None, threshold: float = 0.5) -> None:
        self.top_k = top_k
        self.threshold = threshold
        super().__init__()

    def update(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        topk, thresh = adherence_hits(probs, targets, self.top_k, self.threshold)
        self.topk = self.topk + topk.double().sum(0)  # per class [C]
        self.thresh = self.thresh + thresh.double().sum(0)
        self.asked = self.asked + targets.bool().double().sum(0)

    def compute(self) -> dict[str, float]:
        n = float(torch.as_tensor(self.asked).sum())
        if n == 0:
            return {"topk_accuracy": float("nan"), "threshold_accuracy": float("nan"), "asked": 0.0}
        return {
            "topk_accuracy": float(torch.as_tensor(self.topk).sum()) / n,
            "threshold_accuracy": float(torch.as_tensor(self.thresh).sum()) / n,
            "asked": n,
        }

    def per_class(self) -> torch.Tensor:
        """Top-k accuracy per class `[C]` (NaN where never asked)."""
        asked = torch.as_tensor(self.asked)
        return torch.where(asked > 0, torch.as_tensor(self.topk) / asked.clamp(min=1), torch.nan)


def rms_dbfs(audio: np.ndarray | torch.Tensor) -> float:
    """RMS level of a clip `[T]` in dB relative to full scale (-inf guarded at -200)."""
    x = np.asarray(audio, dtype=np.float64)
    return float(20 * np.log10(max(np.sqrt(np.mean(x * x)) if x.size else 0.0, 1e-10)))


def is_silent(audio: np.ndarray | torch.Tensor, threshold_db: float = SILENCE_DBFS) -> bool:
    return rms_dbfs(audio) < threshold_db


def clipped_fraction(audio: np.ndarray | torch.Tensor, level: float = CLIP_LEVEL) -> float:
    x = np.abs(np.asarray(audio, dtype=np.float64))
    return float((x >= level).mean()) if x.size else 0.0


class SanityRates(Metric):
    """Silence and clipping rates over clips: `update(clip [T])` per clip (clips differ in length)."""

    sum_states = ("silent", "clipping", "clipped_samples", "count")

    def update(self, clip: np.ndarray | torch.Tensor) -> None:
        self.update_stats(rms_dbfs(clip), clipped_fraction(clip))

    def update_stats(self, level_dbfs: float, clipped: float) -> None:
        """Add one clip from its precomputed RMS level (dBFS) and clipped-sample fraction (cached runs)."""
        self.silent = self.silent + float(level_dbfs < SILENCE_DBFS)
        self.clipping = self.clipping + float(clipped > CLIP_FRACTION)
        self.clipped_samples = self.clipped_samples + clipped
        self.count = self.count + 1

    def compute(self) -> dict[str, float]:
        n = float(self.count)
        if n == 0:
            return {
                "silence_rate": float("nan"),
                "clipping_rate": float("nan"),
                "clipped_sample_fraction": 0.0,
            }
        return {
            "silence_rate": float(self.silent) / n,
            "clipping_rate": float(self.clipping) / n,
            "clipped_sample_fraction": float(self.clipped_samples) / n,
        }
