"""`evaluate()`: every metric for a set of generated clips against a reference manifest, plus a report.

Stages: (1) collect the generated clips and their prompts, (2) embed generated and reference clips with the
tagger (cached by file content + model identity), (3) distribution metrics with a real-vs-real baseline
(two disjoint halves of the reference), (4) prompt metrics (adherence, attributes, CLAP score), (5) sanity
rates and outliers, (6) metrics.json + report.md + report.html.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from soundsmith.audio import load_audio
from soundsmith.data import read_manifest
from soundsmith.errors import ManifestError, ModelError
from soundsmith.eval.attributes import attribute_errors
from soundsmith.eval.embedders import ClapEmbedder, TaggerEmbedder, load_eval_model
from soundsmith.eval.frechet import fad_infinity, frechet_distance, mahalanobis_scores
from soundsmith.eval.metrics import (
    ClapScore,
    InceptionScore,
    PosteriorKL,
    SanityRates,
    TextAdherence,
    clap_score,
    clipped_fraction,
    kl_divergence,
    rms_dbfs,
)

log = logging.getLogger(__name__)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MIN_FAD_INF_CLIPS = 10  # fewer clips than this: FAD-infinity is not fitted
WORST_OUTLIERS = 5


@dataclass
class Clip:
    id: str
    path: Path
    prompt: str = ""
    labels: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)  # corpus annotations (meta.events)
    family: str | None = None
    prompted: bool = False  # generated from ``prompt`` (a prompts file): judged only on what the prompt asks


# ---------------------------------------------------------------- (1) inputs


def collect_generated(generated: str | Path, prompts: str | Path | None) -> list[Clip]:
    """Generated clips from a folder (recursive, sorted) or a manifest, with their prompt rows attached."""
    generated = Path(generated)
    if generated.is_dir():
        files = sorted(p for p in generated.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        clips = [Clip(id=p.stem, path=p) for p in files]
    elif generated.is_file():
        m = read_manifest(generated)
        clips = [
            Clip(
                id=r.id,
                path=r.audio_path(m.root),
                prompt=r.captions[0] if r.captions else "",
                labels=list(r.labels),
                events=list(r.meta.get("events") or []),
                family=r.meta.get("family"),
            )
            for r in m.rows
        ]
    else:
        raise ManifestError(
            f"{generated}: neither a folder of audio nor a manifest; check the --generated path"
        )
    if not clips:
        raise ManifestError(f"{generated}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found to evaluate")
    if prompts is not None:
        _attach_prompts(clips, Path(prompts), generated if generated.is_dir() else generated.parent)
    return clips


def _attach_prompts(clips: list[Clip], prompts: Path, gen_root: Path) -> None:
    if not prompts.is_file():
        raise ManifestError(f"{prompts}: prompts file not found; pass a JSONL file or leave prompts out")
    by_path = {c.path.resolve(): c for c in clips}
    for n, line in enumerate(prompts.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = Path(row["audio"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ManifestError(f"{prompts}, line {n}: expected a JSON object with 'audio' ({exc})") from exc
        candidates = [audio] if audio.is_absolute() else [prompts.parent / audio, gen_root / audio]
        clip = next((by_path[c.resolve()] for c in candidates if c.resolve() in by_path), None)
        if clip is None:
            raise ManifestError(f"{prompts}, line {n}: audio {audio} is not among the generated clips")
        clip.prompt = str(row.get("prompt", ""))
        clip.prompted = True
        clip.labels = list(row.get("labels") or [])
        clip.attributes = dict(row.get("attributes") or {})
        clip.id = str(row.get("id", clip.id))
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        clip.events = list(row.get("events") or meta.get("events") or [])
        clip.family = meta.get("family", clip.family)


# ---------------------------------------------------------------- (2) embeddings with a content cache


def file_key(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:32]


def embed_files(
    paths: list[Path],
    embedder: Any,
    cache_dir: Path,
    batch_size: int = 16,
    desc: str = "embedding",
    windows: bool = True,
) -> dict[str, np.ndarray]:
    """Run `embedder` over audio files; per-file results cached under `cache_dir/<embedder.name>/<sha>.npz`.

    Returns stacked arrays: `emb [N, D]`, `level_db [N]`, `clipped [N]`, and for the tagger `logits [N, C]` and
    `window_logits [N, C]` (each class's best over the clip and its windows, for the class check of a scene; not
    with ``windows=False``, for a caller that reads the embeddings only). Equal-length clips are batched together
    (no padding: it would change the embeddings).
    """
    from soundsmith.eval.adherence import WINDOW_HOP_SECONDS, WINDOW_SECONDS

    tagger = isinstance(embedder, TaggerEmbedder)
    windows = windows and tagger
    window = np.array([WINDOW_SECONDS, WINDOW_HOP_SECONDS])
    folder = cache_dir / embedder.name
    folder.mkdir(parents=True, exist_ok=True)
    keys = [file_key(p) for p in paths]
    results: dict[int, dict[str, np.ndarray]] = {}
    todo: dict[int, list[tuple[int, np.ndarray]]] = {}
    for i, (p, k) in enumerate(zip(paths, keys)):
        f = folder / f"{k}.npz"
        cached = None
        if f.is_file():
            with np.load(f) as z:
                cached = {name: z[name] for name in z.files}
        # a tagger entry holds the windows it was made with: older entries (none), or other windows, are remade
        if cached is not None and (not windows or np.array_equal(cached.get("window", []), window)):
            results[i] = cached
        else:
            audio, _ = load_audio(p, sample_rate=embedder.sample_rate)  # mono float32 [T]
            todo.setdefault(len(audio), []).append((i, audio))
    with tqdm(total=sum(len(v) for v in todo.values()), desc=desc, disable=None, leave=False) as bar:
        for group in todo.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                batch = np.stack([a for _, a in chunk])
                if tagger:
                    emb, logits = embedder.embed_and_logits(batch, embedder.sample_rate)
                else:
                    emb, logits = embedder.embed(batch, embedder.sample_rate), None
                best = None
                if windows:
                    best = embedder.window_logits(
                        batch,
                        embedder.sample_rate,
                        WINDOW_SECONDS,
                        WINDOW_HOP_SECONDS,
                        whole=logits,
                        batch_size=batch_size,
                    )
                for j, (i, audio) in enumerate(chunk):
                    res = {
                        "emb": emb[j].numpy(),
                        "level_db": np.float64(rms_dbfs(audio)),
                        "clipped": np.float64(clipped_fraction(audio)),
                    }
                    if logits is not None:
                        res["logits"] = logits[j].numpy()
                    if best is not None:
                        res["window_logits"], res["window"] = best[j].numpy(), window
                    np.savez(folder / f"{keys[i]}.npz", **res)
                    results[i] = res
                bar.update(len(chunk))
    # without windows, a cached entry may hold them and a new one not: what every entry holds
    names = [name for name in results[0] if all(name in r for r in results.values())]
    return {name: np.stack([results[i][name] for i in range(len(paths))]) for name in names}


# ---------------------------------------------------------------- model resolution


def resolve_tagger(
    tagger: Any, reference_labels: list[str], bf16: bool = False
) -> tuple[TaggerEmbedder, str]:
    """A TaggerEmbedder from a model, a path/name, an embedder, or None (shipped "tagger", else random init)."""
    if isinstance(tagger, TaggerEmbedder):
        return tagger, "given"
    if isinstance(tagger, torch.nn.Module):
        return TaggerEmbedder(tagger, bf16=bf16), "given"
    if tagger is not None:
        return TaggerEmbedder(load_eval_model(tagger, "tagger"), bf16=bf16), str(tagger)
    try:
        return TaggerEmbedder(load_eval_model("tagger", "tagger"), bf16=bf16), "shipped tagger"
    except ModelError:
        from soundsmith.models.tagger import AudioTagger, TaggerConfig

        log.warning("no trained tagger found: using a random-weight tagger; metrics are only indicative")
        with torch.random.fork_rng():  # deterministic init without disturbing the caller's RNG
            torch.manual_seed(0)
            model = AudioTagger(TaggerConfig(labels=reference_labels or ["sound"]))
        return TaggerEmbedder(model, bf16=bf16), "random-init (no trained tagger found; indicative only)"


def resolve_clap(clap: Any, bf16: bool = False) -> ClapEmbedder | None:
    """A ClapEmbedder from a model, a path/name, an embedder, or None (shipped "clap", else None: no score)."""
    if clap is None:
        try:
            return ClapEmbedder(load_eval_model("clap", "clap"), bf16=bf16)
        except ModelError:
            return None
    if isinstance(clap, ClapEmbedder):
        return clap
    if isinstance(clap, torch.nn.Module):
        return ClapEmbedder(clap, bf16=bf16)
    return ClapEmbedder(load_eval_model(clap, "clap"), bf16=bf16)


# ---------------------------------------------------------------- (3)-(5) metrics


def _softmax(logits: np.ndarray) -> torch.Tensor:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=-1)


def _sigmoid(logits: np.ndarray) -> torch.Tensor:
    return torch.sigmoid(torch.as_tensor(logits, dtype=torch.float64))


def _marginal_kl(gen_logits: np.ndarray, ref_logits: np.ndarray, kind: str) -> float:
    post = _softmax if kind == "softmax" else _sigmoid
    return float(
        kl_divergence(post(gen_logits).mean(0, keepdim=True), post(ref_logits).mean(0, keepdim=True), kind)
    )


def distribution_metrics(
    gen: dict[str, np.ndarray], ref: dict[str, np.ndarray], pairs: list[tuple[int, int]], seed: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """FAD, FAD-inf, KL (paired when pairs exist, else between mean posteriors), IS; each with a baseline."""
    out: dict[str, float] = {}
    info: dict[str, Any] = {}
    perm = np.random.default_rng(seed).permutation(len(ref["emb"]))
    half_a, half_b = perm[: len(perm) // 2], perm[len(perm) // 2 :]
    out["fad"] = frechet_distance(gen["emb"], ref["emb"])
    out["fad_baseline"] = (
        frechet_distance(ref["emb"][half_a], ref["emb"][half_b]) if len(half_a) >= 2 else math.nan
    )
    if len(gen["emb"]) >= MIN_FAD_INF_CLIPS:
        out["fad_inf"] = fad_infinity(gen["emb"], ref["emb"], seed=seed)["fad_inf"]
    if len(half_a) >= MIN_FAD_INF_CLIPS:
        out["fad_inf_baseline"] = fad_infinity(ref["emb"][half_a], ref["emb"][half_b], seed=seed)["fad_inf"]
    info["kl_mode"] = "paired" if pairs else "marginal"
    for kind in ("softmax", "sigmoid"):
        if pairs:
            metric = PosteriorKL(kind)
            post = _softmax if kind == "softmax" else _sigmoid
            gi, ri = map(list, zip(*pairs))
            metric.update(post(gen["logits"][gi]), post(ref["logits"][ri]))
            out[f"kl_{kind}"] = metric.compute()
        else:
            out[f"kl_{kind}"] = _marginal_kl(gen["logits"], ref["logits"], kind)
        out[f"kl_{kind}_baseline"] = (
            _marginal_kl(ref["logits"][half_a], ref["logits"][half_b], kind) if len(half_a) else math.nan
        )
    inc = InceptionScore()
    inc.update(_softmax(gen["logits"]))
    out["inception_score"] = inc.compute()
    inc_ref = InceptionScore()
    inc_ref.update(_softmax(ref["logits"]))
    out["inception_score_baseline"] = inc_ref.compute()
    return out, info


def evaluate(
    generated: str | Path,
    reference: str | Path | None,
    prompts: str | Path | None = None,
    out_dir: str | Path = "eval_report",
    run_dir: str | Path | None = None,
    tagger: Any = None,
    clap: Any = None,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 16,
    seed: int = 0,
    bf16: bool = False,
    max_report_clips: int = 50,
    keyword: Any = None,
    pitch_method: str = "pyin",
    adherence_reference_clips: int = 200,
) -> dict[str, Any]:
    """Evaluate generated audio against a reference manifest; write metrics.json, report.md, report.html.

    `tagger`/`clap`: a model, an embedder, a model directory or registered name, or None (shipped model;
    for the tagger a random-weight fallback, for CLAP the CLAP score is skipped). `bf16`: CPU bf16 autocast
    for both evaluator CNNs (not for embedders passed in ready-made). `reference=None` (prompt-only mode)
    skips the distribution metrics and outliers. `keyword`: the spoken-word recognizer (model, directory or
    name; None = shipped "keyword" if present). Per-attribute adherence (`soundsmith.eval.adherence`) runs on
    clips whose prompts ask for attributes, and on up to `adherence_reference_clips` annotated reference
    clips (their own asks: the real-clip column; another clip's asks: the shuffled column). Returns the
    metrics dict.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out_dir / "cache"

    # 1. inputs
    clips = collect_generated(generated, prompts)
    ref_rows, ref_paths = [], []
    if reference is not None:
        ref_manifest = read_manifest(reference)
        ref_rows = ref_manifest.rows
        ref_paths = [r.audio_path(ref_manifest.root) for r in ref_rows]
        if len(ref_rows) < 2:
            raise ManifestError(f"{reference}: needs at least 2 reference clips to fit a distribution")
    ref_labels = sorted({label for r in ref_rows for label in r.labels})
    embedder, tagger_name = resolve_tagger(tagger, ref_labels, bf16=bf16)

    # 2. embeddings
    gen = embed_files([c.path for c in clips], embedder, cache, batch_size, "generated")
    ref = embed_files(ref_paths, embedder, cache, batch_size, "reference") if ref_rows else None

    # 3. distribution metrics, paired by id where ids match
    ref_index = {r.id: i for i, r in enumerate(ref_rows)} | {p.stem: i for i, p in enumerate(ref_paths)}
    pairs = [(i, ref_index[c.id]) for i, c in enumerate(clips) if c.id in ref_index]
    summary: dict[str, Any] = {}
    info: dict[str, Any] = {}
    if ref is not None:
        summary, info = distribution_metrics(gen, ref, pairs, seed)

    # 4. prompt metrics
    labels = embedder.labels
    per_clip: list[dict[str, Any]] = []
    probs = _sigmoid(gen["logits"])
    unknown = sorted({lb for c in clips for lb in c.labels if lb not in labels})
    asked = [i for i, c in enumerate(clips) if any(lb in labels for lb in c.labels)]
    if asked:
        targets = torch.zeros(len(asked), len(labels))
        for row, i in enumerate(asked):
            for lb in clips[i].labels:
                if lb in labels:
                    targets[row, labels.index(lb)] = 1.0
        adherence = TextAdherence()
        adherence.update(probs[asked], targets)
        res = adherence.compute()
        summary["adherence_topk"] = res["topk_accuracy"]
        summary["adherence_threshold"] = res["threshold_accuracy"]
    with_attrs = [c for c in clips if c.attributes]
    if with_attrs:
        sr = embedder.sample_rate
        audio_attrs = [
            (load_audio(c.path, sample_rate=sr)[0], c.attributes)
            for c in tqdm(with_attrs, desc="attributes", disable=None)
        ]
        summary.update(attribute_errors(audio_attrs, sr))
    adherence, adherence_per_clip = attribute_adherence(
        clips, gen, ref_rows, ref_paths, ref, labels, keyword, embedder.sample_rate,
        pitch_method, adherence_reference_clips, seed,
    )  # fmt: skip
    if adherence:
        summary["attribute_adherence"] = adherence["overall"]["generated"]
    clap_emb = resolve_clap(clap, bf16=bf16)
    clap_per_clip: dict[int, float] = {}
    prompted = [i for i, c in enumerate(clips) if c.prompt]
    if clap_emb is not None and prompted:
        a = embed_files([clips[i].path for i in prompted], clap_emb, cache, batch_size, "clap")["emb"]
        t = clap_emb.embed_text([clips[i].prompt for i in prompted])
        score = ClapScore()
        score.update(torch.as_tensor(a), t)
        summary["clap_score"] = score.compute()
        clap_per_clip = dict(zip(prompted, clap_score(torch.as_tensor(a), t).tolist()))

    # 5. sanity and outliers
    sanity = SanityRates()
    for level, clipped in zip(gen["level_db"], gen["clipped"]):
        sanity.update_stats(float(level), float(clipped))
    summary.update(sanity.compute())
    outlier = mahalanobis_scores(gen["emb"], ref["emb"]) if ref is not None else np.zeros(len(clips))
    for i, c in enumerate(clips):
        top = probs[i].argsort(descending=True)[:3].tolist()
        per_clip.append(
            {
                "id": c.id,
                "audio": str(c.path),
                "prompt": c.prompt,
                "labels": c.labels,
                "top_labels": [[labels[j], round(float(probs[i, j]), 4)] for j in top],
                "outlier_score": float(outlier[i]),
                "level_db": float(gen["level_db"][i]),
                "clap_score": clap_per_clip.get(i),
            }
            | adherence_per_clip.get(i, {})
        )
    worst = [per_clip[i]["id"] for i in np.argsort(-outlier)[:WORST_OUTLIERS]] if ref is not None else []

    metrics = {
        "summary": summary,
        "info": {
            **info,
            "generated": str(generated),
            "reference": str(reference) if reference is not None else None,
            "n_generated": len(clips),
            "n_reference": len(ref_rows),
            "n_pairs": len(pairs),
            "tagger": tagger_name,
            "embedder": embedder.name,
            "clap": clap_emb.name if clap_emb is not None else None,
            "unknown_labels": unknown,
        },
        "worst_outliers": worst,
        "per_clip": per_clip,
    }
    if adherence:
        metrics["adherence"] = adherence
    (out_dir / "metrics.json").write_text(json.dumps(_finite_json(metrics), indent=2) + "\n")

    # 6. report
    from soundsmith.eval.report import write_report

    write_report(
        out_dir, metrics, run_dir=run_dir, max_clips=max_report_clips, sample_rate=embedder.sample_rate
    )
    return metrics


def attribute_adherence(
    clips: list[Clip],
    gen: dict[str, np.ndarray],
    ref_rows: list[Any],
    ref_paths: list[Path],
    ref: dict[str, np.ndarray] | None,
    labels: list[str],
    keyword: Any,
    sample_rate: int,
    pitch_method: str,
    max_reference: int,
    seed: int,
) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """Per-attribute adherence of the generated clips, of annotated reference clips and of shuffled ones.

    Returns ``({"table": {attr: {generated, n_generated, real, n_real, shuffled, chance}}, "overall": {...},
    "recognizer": name}, {clip index: {"asks", "checks", "adherence"}})``; ``({}, {})`` when no prompt asks
    for an attribute.
    """
    from soundsmith.eval import adherence as adh

    recognizer = adh.load_recognizer(keyword)
    words = list(recognizer.config.words) if recognizer is not None else None
    asks = [
        adh.clip_asks(c.events, c.family, c.labels, c.attributes, c.prompt, words, c.prompted) for c in clips
    ]
    asked = [i for i, a in enumerate(asks) if a]
    if not asked:
        return {}, {}
    n_words = len(recognizer.classes) if recognizer is not None else 0
    measured = adh.measure_files(
        [clips[i].path for i in asked], gen["logits"][asked], labels, recognizer, sample_rate, pitch_method,
        window_logits=gen["window_logits"][asked],
    )  # fmt: skip
    n_ranks = adh.n_class_ranks(labels)
    gen_res, gen_per = adh.score_clips([asks[i] for i in asked], measured, n_ranks, n_words)
    results = {"generated": gen_res}
    annotated = [j for j, r in enumerate(ref_rows) if r.meta.get("events")]
    if ref is not None and annotated:
        rng = np.random.default_rng(seed)
        if len(annotated) > max_reference:
            annotated = sorted(rng.choice(annotated, size=max_reference, replace=False).tolist())
        ref_asks = [
            adh.asks_from_events(ref_rows[j].meta["events"], ref_rows[j].meta.get("family"))
            for j in annotated
        ]
        ref_measured = adh.measure_files(
            [ref_paths[j] for j in annotated], ref["logits"][annotated], labels, recognizer, sample_rate,
            pitch_method, window_logits=ref["window_logits"][annotated],
        )  # fmt: skip
        results["real"], _ = adh.score_clips(ref_asks, ref_measured, n_ranks, n_words)
        perm = adh.derangement(len(annotated), seed)
        results["shuffled"], _ = adh.score_clips(ref_asks, ref_measured, n_ranks, n_words, perm)
    table: dict[str, dict[str, Any]] = {}
    for attr in adh.ATTRIBUTES:
        row: dict[str, Any] = {}
        for kind, res in results.items():
            cell = res["table"].get(attr)
            if cell:
                row[kind] = cell["accuracy"]
                row[f"n_{kind}"] = cell["n"]
                row.setdefault("chance", cell["chance"])
        if row:
            table[attr] = row
    overall = {kind: res["overall"] for kind, res in results.items()}
    name = str(keyword) if keyword is not None else ("shipped keyword" if recognizer is not None else None)
    per_clip = {
        i: {"asks": asks[i], "checks": p["checks"], "adherence": p["score"]} for i, p in zip(asked, gen_per)
    }
    return {"table": table, "overall": overall, "recognizer": name, "pitch_method": pitch_method}, per_clip


def _finite_json(obj: Any) -> Any:
    """NaN/Inf become null so metrics.json stays strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_json(v) for v in obj]
    return obj
