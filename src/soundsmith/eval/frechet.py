"""Fréchet distance between embedding sets (FAD), FAD-infinity and per-clip outlier scores.

All statistics are computed in float64. The matrix square root uses the symmetric form
`tr sqrt(S1 S2) = tr sqrt(A S2 A)` with `A = sqrt(S1)` (both symmetric PSD), evaluated with `eigh`
and tiny negative eigenvalues clipped to zero: stable for singular covariances (N < D), unlike a
general `sqrtm`, and never complex.
"""

from __future__ import annotations

import numpy as np
import torch

from soundsmith.eval.base import Metric


def _as_f64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected embeddings [N, D], got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 embeddings to fit a Gaussian, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or Inf; check the audio and the embedding model")
    return x


def gaussian_stats(x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean `[D]` and unbiased covariance `[D, D]` of `x [N, D]`, float64."""
    x = _as_f64(x)
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_from_stats(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """`|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)`, clipped at 0."""
    if mu1.shape != mu2.shape:
        raise ValueError(f"embedding sizes differ: {mu1.shape[0]} vs {mu2.shape[0]}; use one embedding model")
    a = _psd_sqrt(s1)
    m = a @ s2 @ a
    w = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)
    return max(value, 0.0)


def frechet_distance(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to `x [N, D]` and `y [M, D]` (symmetric, >= 0)."""
    return frechet_from_stats(*gaussian_stats(x), *gaussian_stats(y))


def fad_infinity(
    generated: np.ndarray | torch.Tensor,
    reference: np.ndarray | torch.Tensor,
    sizes: list[int] | None = None,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """FAD-infinity (Gui et al. 2024): FAD is biased upward by ~c/N; fit FAD(N) = a + b/N over subsample sizes
    of the generated set (reference kept whole) and extrapolate to 1/N = 0.

    Returns `{"fad_inf": a, "slope": b, "r2": fit quality}`. Subsamples are drawn without replacement from a
    `numpy.random.Generator(seed)`. The intercept is reported as fitted: for two samples of one distribution
    it scatters around 0 and may be slightly negative.
    """
    g = _as_f64(generated)
    ref_stats = gaussian_stats(reference)
    n = g.shape[0]
    if sizes is None:
        lo = max(2, n // 5)
        sizes = sorted({int(s) for s in np.linspace(lo, n, num=min(6, n - lo + 1))})
    sizes = [s for s in sizes if 2 <= s <= n]
    if len(sizes) < 2:
        raise ValueError(f"FAD-infinity needs at least 2 subsample sizes in [2, {n}], got {sizes}")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for s in sizes:
        reps = 1 if s == n else repeats
        for _ in range(reps):
            idx = rng.choice(n, size=s, replace=False)
            xs.append(1.0 / s)
            ys.append(frechet_from_stats(*gaussian_stats(g[idx]), *ref_stats))
    xs_a, ys_a = np.asarray(xs), np.asarray(ys)
    slope, intercept = np.polyfit(xs_a, ys_a, 1)
    pred = intercept + slope * xs_a
    ss_tot = float(((ys_a - ys_a.mean()) ** 2).sum())
    r2 = 1.0 - float(((ys_a - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return {"fad_inf": float(intercept), "slope": float(slope), "r2": r2}


def mahalanobis_scores(
    x: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor, shrinkage: float = 1e-3
) -> np.ndarray:
    """Outlier score per row of `x [N, D]`: Mahalanobis distance under the Gaussian fitted to `reference`.

    The covariance is shrunk towards `shrinkage * mean variance * I` so that it stays invertible when the
    reference set is smaller than D. Returns `[N]` float64, larger = further from the reference.
    """
    x64 = np.asarray(
        x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64
    )
    mu, s = gaussian_stats(reference)
    s = s + shrinkage * max(float(np.trace(s)) / s.shape[0], 1e-12) * np.eye(s.shape[0])
    diff = x64 - mu
    sol = np.linalg.solve(s, diff.T).T
    return np.sqrt(np.clip((diff * sol).sum(axis=1), 0.0, None))


class FrechetDistance(Metric):
    """Accumulating FAD: `update(generated=[B, D], reference=[B, D])`, either or both; `compute() -> float`."""

    cat_states = ("generated", "reference")

    def update(self, generated: torch.Tensor | None = None, reference: torch.Tensor | None = None) -> None:
        if generated is not None:
            self.generated.append(torch.as_tensor(generated).detach().cpu().double())
        if reference is not None:
            self.reference.append(torch.as_tensor(reference).detach().cpu().double())

    def compute(self) -> float:
        g, r = self._cat("generated"), self._cat("reference")
        if g is None or r is None:
            raise RuntimeError("FrechetDistance.compute() before both generated and reference were updated")
        return frechet_distance(g, r)
