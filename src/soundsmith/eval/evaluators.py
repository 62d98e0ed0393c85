"""How good are the evaluators themselves: tagger accuracy / mAP and CLAP retrieval on a labelled manifest.

`tagger_figures(tagger, manifest)` and `clap_retrieval(clap, manifest)` score the evaluator networks on
held-out clips of a manifest. Clips are cut deterministically: the first `clip_seconds` of each file,
zero-padded when shorter (what `ClipDataset` gives with `DataConfig(valid_crop="start")` outside the
training split). `sample_figures()` does the same on a small fixed synthetic sample (`SAMPLE_SPEC`): the
figures documented in docs/evaluator_figures.json and checked by tests/eval/test_eval_shipped.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from soundsmith.audio import load_audio
from soundsmith.data import ManifestRow, read_manifest
from soundsmith.data.manifest import Manifest
from soundsmith.errors import ManifestError, ModelError
from soundsmith.eval.embedders import ClapEmbedder, TaggerEmbedder, model_identity

DEFAULT_CLIP_SECONDS = 4.0  # data.clip_seconds of configs/{tagger,clap}/base.yaml
THRESHOLD = 0.5  # sigmoid posterior at which a class counts as predicted
RECALL_AT = (1, 5, 10)

# The fixed sample the shipped evaluators' figures are reproduced on (see sample_figures): all four families
# (speech renders byte-identically since issue 3's fix in data/synth/speech.py).
SAMPLE_SPEC: dict[str, Any] = {
    "clips": 100,
    "seed": 20261121,
    "families": ["events", "instruments", "speech", "scenes"],
    "duration": 4.0,
    "split": None,
    "batch_size": 16,
    # the sources every machine has, so the figures do not depend on optional Debian/PyPI packages
    "sources": ["dsp", "espeak-ng", "TimGM6mb"],
}


# ---------------------------------------------------------------- pure figures


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of one class: `scores [N]`, binary `targets [N]` -> float (NaN with no positives).

    AP = sum over distinct score thresholds (descending) of (R_k - R_{k-1}) * P_k, tied scores forming one
    threshold: the step-wise definition of sklearn's `average_precision_score` (no interpolation).
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets).astype(bool)
    if scores.shape != targets.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must both be [N]")
    n_pos = int(targets.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], targets[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each run of tied scores
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def recall_at_k(similarity: torch.Tensor, k: int) -> float:
    """Share of queries (rows of `similarity [N, N]`) whose target (the diagonal) ranks within the top `k`.

    Rank = number of candidates scoring strictly higher than the target, so ties count in the target's favour.
    """
    target = similarity.diagonal()[:, None]
    rank = (similarity > target).sum(dim=1)
    return float((rank < k).double().mean())


def _multi_hot(rows: list[ManifestRow], classes: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(rows), len(classes)), dtype=bool)
    for r, row in enumerate(rows):
        for label in row.labels:
            if label in index:
                out[r, index[label]] = True
    return out


def classification_figures(
    logits: np.ndarray, rows: list[ManifestRow], classes: list[str], threshold: float = THRESHOLD
) -> dict[str, Any]:
    """Tagger figures from `logits [N, C]` and the rows' labels (see `tagger_figures`)."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = _multi_hot(rows, classes)  # [N, C]
    probs = 1.0 / (1.0 + np.exp(-logits))
    top = logits.argmax(axis=1)  # [N]
    top_hit = targets[np.arange(len(rows)), top]  # top prediction is one of the clip's labels
    exact = ((probs >= threshold) == targets).all(axis=1)
    single = np.array([len(r.labels) == 1 and r.labels[0] in classes for r in rows], dtype=bool)
    aps = {
        c: average_precision(probs[:, j], targets[:, j]) for j, c in enumerate(classes) if targets[:, j].any()
    }
    per_family: dict[str, dict[str, Any]] = {}
    families = [str(r.meta.get("family", "unknown")) for r in rows]
    for fam in sorted(set(families)):
        sel = np.array([f == fam for f in families])
        per_family[fam] = {
            "n": int(sel.sum()),
            "top1_accuracy": float(top_hit[sel].mean()),
            "exact_match_accuracy": float(exact[sel].mean()),
        }
    return {
        "n_clips": len(rows),
        "n_single_label": int(single.sum()),
        "top1_accuracy": float(top_hit[single].mean()) if single.any() else math.nan,
        "exact_match_accuracy": float(exact.mean()),
        "macro_map": float(np.mean(list(aps.values()))) if aps else math.nan,
        "n_map_classes": len(aps),
        "per_family": per_family,
        "unknown_labels": sorted({lb for r in rows for lb in r.labels if lb not in classes}),
    }


def retrieval_figures(audio_emb: torch.Tensor, text_emb: torch.Tensor) -> dict[str, Any]:
    """CLAP figures from L2-normalised `audio_emb [N, P]` and `text_emb [N, P]` (row i of each: clip i)."""
    a, t = audio_emb.double(), text_emb.double()
    sim = t @ a.T  # [N text, N audio] cosine similarities
    n = sim.shape[0]
    out: dict[str, Any] = {"n_clips": n}
    for k in RECALL_AT:
        out[f"t2a_r@{k}"] = recall_at_k(sim, k)
    out["a2t_r@1"] = recall_at_k(sim.T, 1)
    matched = sim.diagonal()
    out["matched_score"] = float(matched.mean())
    out["mismatched_score"] = float((sim.sum() - matched.sum()) / (n * (n - 1))) if n > 1 else math.nan
    return out


# ---------------------------------------------------------------- data


def _rows(
    manifest: str | Path | Manifest, split: str | None, need: str
) -> tuple[Manifest, list[ManifestRow]]:
    m = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    rows = m.rows if split is None else m.split(split)
    rows = [r for r in rows if getattr(r, need)]
    if not rows:
        where = "all splits" if split is None else f"split {split!r}"
        raise ManifestError(
            f"manifest {m.path}: no rows with {need} in {where}; pick another split or manifest"
        )
    return m, rows


def crop_batches(
    paths: list[Path], sample_rate: int, clip_seconds: float, batch_size: int, desc: str, progress: bool
) -> Iterator[np.ndarray]:
    """Batches `[B, T]` of the first `clip_seconds` of each file (mono, resampled, zero-padded at the end)."""
    if batch_size <= 0 or clip_seconds <= 0:
        raise ValueError(f"batch_size ({batch_size}) and clip_seconds ({clip_seconds}) must be positive")
    T = int(round(clip_seconds * sample_rate))
    with tqdm(total=len(paths), desc=desc, disable=not progress, leave=False) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            batch = np.zeros((len(chunk), T), dtype=np.float32)
            for i, p in enumerate(chunk):
                audio, _ = load_audio(p, sample_rate=sample_rate, mono=True)  # [N]
                batch[i, : min(T, len(audio))] = audio[:T]
            yield batch
            bar.update(len(chunk))


# ---------------------------------------------------------------- evaluators


def tagger_figures(
    tagger: torch.nn.Module | TaggerEmbedder,
    manifest: str | Path | Manifest,
    split: str | None = None,
    *,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    batch_size: int = 32,
    bf16: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Score an `AudioTagger` on the labelled clips of `manifest` (one split, or all rows when None).

    Returns `top1_accuracy` (argmax class == the label, over single-label clips), `exact_match_accuracy`
    (classes with sigmoid >= 0.5 == the label set, over all clips), `macro_map` (mean average precision over
    the classes with at least one positive), `per_family` (by `meta.family`: `top1_accuracy` = argmax is one
    of the clip's labels, and `exact_match_accuracy`), counts and `unknown_labels` (not in the tagger's classes).
    """
    embedder = tagger if isinstance(tagger, TaggerEmbedder) else TaggerEmbedder(tagger, bf16=bf16)
    m, rows = _rows(manifest, split, "labels")
    paths = [r.audio_path(m.root) for r in rows]
    logits = []
    for batch in crop_batches(paths, embedder.sample_rate, clip_seconds, batch_size, "tagger", progress):
        logits.append(embedder.embed_and_logits(batch, embedder.sample_rate)[1])  # [B, C]
    out = classification_figures(torch.cat(logits).numpy(), rows, embedder.labels)
    return {**out, "clip_seconds": clip_seconds, "bf16": embedder.bf16}


def clap_retrieval(
    clap_model: torch.nn.Module | ClapEmbedder,
    manifest: str | Path | Manifest,
    split: str | None = None,
    *,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    batch_size: int = 32,
    bf16: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Text-audio retrieval with an `AudioTextContrastive` model over the captioned clips of `manifest`.

    Query: each clip's first caption; target: the clip itself, among all clips scored. Returns `t2a_r@1/5/10`,
    `a2t_r@1`, `matched_score` / `mismatched_score` (mean cosine of a clip with its own / other clips' first
    captions), `n_clips` and `n_unique_queries` (identical captions of different clips cap R@1 below 1).
    """
    embedder = clap_model if isinstance(clap_model, ClapEmbedder) else ClapEmbedder(clap_model, bf16=bf16)
    m, rows = _rows(manifest, split, "captions")
    paths = [r.audio_path(m.root) for r in rows]
    audio = [
        embedder.embed(batch, embedder.sample_rate)
        for batch in crop_batches(paths, embedder.sample_rate, clip_seconds, batch_size, "clap", progress)
    ]
    queries = [r.captions[0] for r in rows]
    text = [embedder.embed_text(queries[i : i + batch_size]) for i in range(0, len(queries), batch_size)]
    out = retrieval_figures(torch.cat(audio), torch.cat(text))
    out["n_unique_queries"] = len(set(queries))
    return {**out, "clip_seconds": clip_seconds, "bf16": embedder.bf16}


# ---------------------------------------------------------------- shipped evaluators and the fixed sample


def trained_clip_seconds(name_or_path: str | Path) -> float:
    """`data.clip_seconds` a model directory was trained with (from its config.json), else the default."""
    from soundsmith.models.registry import read_model_config, resolve_model_dir

    meta = read_model_config(resolve_model_dir(name_or_path))
    run = (meta.get("extra") or {}).get("run") or {}
    return float((run.get("data") or {}).get("clip_seconds", DEFAULT_CLIP_SECONDS))


def sample_figures(
    tagger: torch.nn.Module,
    clap_model: torch.nn.Module | None,
    directory: str | Path,
    spec: dict[str, Any] | None = None,
    *,
    clip_seconds: float = DEFAULT_CLIP_SECONDS,
    bf16: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Synthesize the fixed sample `spec` (default `SAMPLE_SPEC`) under `directory` and score both models on it.

    Returns `{"sample": spec + clip_seconds, "models": identities, "tagger": ..., "clap": ... or None}`: the
    layout of docs/evaluator_figures.json.
    """
    from soundsmith.data.synth import synthesize_corpus

    spec = dict(SAMPLE_SPEC if spec is None else spec)
    directory = Path(directory)
    manifest = directory / "manifest.jsonl"
    if not manifest.is_file():
        synthesize_corpus(
            directory,
            clips=spec["clips"],
            seed=spec["seed"],
            families=tuple(spec["families"]),
            duration=spec["duration"],
            workers=1,
            progress=progress,
            sources=tuple(spec["sources"]) if spec.get("sources") else None,
        )
    kw = {"clip_seconds": clip_seconds, "batch_size": spec["batch_size"], "bf16": bf16, "progress": progress}
    return {
        "sample": {**spec, "clip_seconds": clip_seconds},
        "models": {
            "tagger": model_identity(tagger),
            "clap": model_identity(clap_model) if clap_model is not None else None,
        },
        "tagger": tagger_figures(tagger, manifest, spec["split"], **kw),
        "clap": clap_retrieval(clap_model, manifest, spec["split"], **kw) if clap_model is not None else None,
    }


def load_shipped(name: str) -> torch.nn.Module:
    """A shipped evaluator ("tagger" or "clap") from the repository's `models/` folder, or ModelError."""
    from soundsmith.eval.embedders import load_eval_model

    try:
        return load_eval_model(name, name)
    except ModelError as exc:
        raise ModelError(
            f"{exc}; train the shipped evaluators with scripts/train_evaluators.sh (or pass a model directory)"
        ) from exc
