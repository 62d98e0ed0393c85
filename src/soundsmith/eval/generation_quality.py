"""Generation quality of a text-to-audio pipeline against issue 11's targets (scripts/ld_quality.py wraps it).

:func:`run_quality` (1) takes one prompt per test clip (its first caption + its ``meta`` annotations), (2) a
one-knob-at-a-time sweep of steps, guidance and duration around the default setting, (3) generates each
setting's clips (prompt ``i`` with seed ``i``) and scores them with :func:`soundsmith.eval.evaluate` against a
reference set of real clips disjoint from the prompts' own clips, (4) scores the prompts' own real clips the same
way (the real-vs-real FAD baseline at the same sample size, real CLAP score, real adherence), (5) re-captions the
same clips with seen templates, so adherence on held-out templates is compared with seen ones on the same content,
(6) variety (seeds of one prompt against real clips of its class), (7) free-text prompts, (8) the targets.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from soundsmith.errors import ConfigError, ManifestError

log = logging.getLogger(__name__)

# issue 11, "Targets"
TARGET_ADHERENCE = 0.90
TARGET_ATTRIBUTE = 0.80
TARGET_TEMPLATE_GAP = 0.05  # held-out templates within 5 points of seen ones
TARGET_FAD_RATIO = 2.0  # FAD <= 2x real-vs-real
TARGET_CLAP_GAP = 0.05
TARGET_X_REAL_TIME = 0.05  # 4 s in <= 0.2 s
TABLE_ATTRIBUTES = ("class", "word", "pitch", "register", "count", "direction", "loudness", "noise_tone")


def held_out_templates() -> frozenset[str]:
    """The caption template ids only the test split uses (docs/corpus.md, "Splits")."""
    from soundsmith.data.synth.captions import HELD_OUT_TEMPLATES

    return HELD_OUT_TEMPLATES


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    """One generation setting; ``knob`` names the swept knob (``default`` for the centre point)."""

    steps: int | None  # None (with guidance None): the model's own defaults, for families without them
    guidance: float | None
    duration: float
    knob: str = "default"
    # the guidance is the model's own: generated without passing it, so what the model does at its default
    # guidance alone applies too (the latent-diffusion default's speech parts at their own guidance)
    own: bool = False

    @property
    def name(self) -> str:
        if self.steps is None:
            return f"defaults_d{self.duration:g}"
        return f"steps{self.steps}_g{self.guidance:g}_d{self.duration:g}"


def sweep_settings(
    default: Setting,
    steps: Iterable[int] = (),
    guidance: Iterable[float] = (),
    durations: Iterable[float] = (),
) -> list[Setting]:
    """The default setting, then each knob varied alone around it (not a grid); duplicates dropped."""
    out = [replace(default, knob="default")]
    seen = {(default.steps, default.guidance, default.duration)}
    for knob, values in (("steps", steps), ("guidance", guidance), ("duration", durations)):
        for v in values:
            own = default.own and knob != "guidance"
            s = replace(default, knob=knob, own=own, **{"duration" if knob == "duration" else knob: v})
            key = (s.steps, s.guidance, s.duration)
            if key not in seen:
                seen.add(key)
                out.append(s)
    return out


def parse_list(text: str, kind: type = float) -> list[Any]:
    """``"2,4,8"`` -> ``[2, 4, 8]``; an empty string is an empty list."""
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{text!r}: expected comma-separated {kind.__name__} values, e.g. 2,4,8") from None


# ---------------------------------------------------------------- prompts


@dataclass
class Prompt:
    """A prompt with what the adherence checks need: corpus annotations (``events``) or labels + attributes."""

    id: str
    prompt: str
    labels: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    family: str | None = None
    template: str | None = None  # the caption template id (corpus prompts)


def corpus_prompts(rows: Sequence[Any]) -> list[Prompt]:
    """One prompt per manifest row: its first caption, labels and ``meta`` annotations."""
    out = []
    for r in rows:
        if not r.captions:
            raise ManifestError(f"clip {r.id} has no caption to use as a prompt; give a captioned manifest")
        templates = r.meta.get("caption_templates") or []
        out.append(
            Prompt(
                id=r.id,
                prompt=r.captions[0],
                labels=list(r.labels),
                events=list(r.meta.get("events") or []),
                family=r.meta.get("family"),
                template=str(templates[0]) if templates else None,
            )
        )
    return out


def seen_template_prompts(prompts: Sequence[Prompt], seed: int = 0) -> list[Prompt]:
    """The same clips re-captioned with a template the training split uses (same annotations, other words).

    Only prompts with synthetic-corpus annotations (``events`` + ``family``) are re-captioned.
    """
    from soundsmith.data.synth.captions import caption_clip

    out = []
    for i, p in enumerate(prompts):
        if not p.events or not p.family:
            continue
        try:
            captions, ids = caption_clip(
                p.family, p.events, np.random.default_rng([seed, i]), held_out=False, n=1
            )
        except (KeyError, StopIteration, IndexError):  # annotations the captioner does not know
            continue
        out.append(replace(p, id=f"{p.id}@seen", prompt=captions[0], template=ids[0]))
    return out


def read_prompt_file(path: str | Path) -> list[Prompt]:
    """Free-text prompts: JSONL with ``prompt`` and optional ``id``, ``labels``, ``attributes``."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: prompts file not found; pass a JSONL file with a 'prompt' per line")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text = str(row["prompt"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ManifestError(f"{path}, line {n}: expected a JSON object with 'prompt' ({exc})") from exc
        out.append(
            Prompt(
                id=str(row.get("id", f"line{n}")),
                prompt=text,
                labels=list(row.get("labels") or []),
                attributes=dict(row.get("attributes") or {}),
            )
        )
    return out


# ---------------------------------------------------------------- generation


def prompt_row(p: Prompt, audio: str, clip_id: str) -> dict[str, Any]:
    """The prompts-file row ``evaluate`` reads for the clip at ``audio`` made from ``p``."""
    meta = {"events": p.events, "family": p.family, "template": p.template}
    return {"audio": audio, "id": clip_id, "prompt": p.prompt, "labels": p.labels} | {
        "attributes": p.attributes,
        "meta": meta,
    }


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


def generate_set(
    pipe: Any,
    prompts: Sequence[Prompt],
    setting: Setting,
    folder: Path,
    seeds: Sequence[int] | None = None,
    candidates: int = 1,
) -> dict[str, Any]:
    """Generate prompt ``i`` with ``seeds[i]`` (default ``i``) into ``folder/audio``; write ``folder/prompts.jsonl``
    (the rows ``evaluate`` reads). ``candidates > 1``: the pipeline's best of that many (seeds ``seed..seed+N-1``,
    ranked by its CLAP-style score). Returns paths and the generation time (seconds) over the audio's seconds."""
    audio_dir = folder / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(len(prompts))) if seeds is None else list(seeds)
    rows, gen_s = [], 0.0
    for i, (p, seed) in enumerate(zip(prompts, seeds)):
        start = time.perf_counter()
        knobs = {} if setting.steps is None else {"steps": setting.steps, "guidance": setting.guidance}
        if setting.own:
            knobs.pop("guidance", None)
        out = pipe(
            p.prompt,
            duration=setting.duration,
            **knobs,
            seed=int(seed),
            progress=False,
            **({"num_candidates": candidates} if candidates > 1 else {}),
        )
        gen_s += time.perf_counter() - start
        rel = f"audio/{i:04d}_{_safe(p.id)}_s{seed}.wav"
        out.save(folder / rel, index=0)  # the best (first) candidate
        rows.append(prompt_row(p, rel, f"{p.id}#s{seed}"))
    prompts_path = folder / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    audio_s = setting.duration * len(rows)
    return {
        "audio_dir": audio_dir,
        "prompts": prompts_path,
        "gen_seconds": gen_s,
        "audio_seconds": audio_s,
        "x_real_time": gen_s / audio_s if audio_s else math.nan,
    }


# ---------------------------------------------------------------- scoring


def summarize(metrics: dict[str, Any]) -> dict[str, Any]:
    """The figures of one ``evaluate`` result that the tables need."""
    s = metrics.get("summary", {})
    adherence = metrics.get("adherence") or {}
    table = adherence.get("table", {})
    return {
        "n": metrics.get("info", {}).get("n_generated"),
        "adherence": adherence.get("overall", {}).get("generated", math.nan),
        "attributes": {a: row["generated"] for a, row in table.items() if "generated" in row},
        "attribute_n": {a: row["n_generated"] for a, row in table.items() if "n_generated" in row},
        "fad": s.get("fad", math.nan),
        "fad_halves_baseline": s.get("fad_baseline", math.nan),
        "clap": s.get("clap_score", math.nan),
        "silence_rate": s.get("silence_rate", math.nan),
    }


def per_clip_rows(metrics: dict[str, Any], templates: dict[str, str | None]) -> list[dict[str, Any]]:
    """``evaluate``'s per-clip adherence with each clip's caption template (looked up by its id)."""
    out = []
    for c in metrics.get("per_clip", []):
        if c.get("adherence") is None:
            continue
        base = str(c["id"]).split("#s")[0]
        out.append({"id": c["id"], "template": templates.get(base), "adherence": c["adherence"]} | {
            "checks": c.get("checks", {})
        })  # fmt: skip
    return out


def template_split(rows: Iterable[dict[str, Any]], held_out: Iterable[str] | None = None) -> dict[str, Any]:
    """Adherence of clips prompted with held-out templates against seen ones.

    ``rows``: ``{"template": id or None, "adherence": clip share met, "checks": {attr: bool or share}}``; rows
    without a template or with a NaN score are left out. Returns ``{"seen": {...}, "held_out": {...},
    "gap": seen - held_out}``, each group ``{"overall", "clips", "attributes": {attr: accuracy}}``.
    """
    held = frozenset(held_out) if held_out is not None else held_out_templates()
    groups: dict[str, list[dict[str, Any]]] = {"seen": [], "held_out": []}
    for r in rows:
        score = r.get("adherence")
        if r.get("template") is None or score is None or not math.isfinite(float(score)):
            continue
        groups["held_out" if r["template"] in held else "seen"].append(r)
    out: dict[str, Any] = {}
    for name, group in groups.items():
        checks: dict[str, list[float]] = {}
        for r in group:
            for attr, ok in (r.get("checks") or {}).items():
                checks.setdefault(attr, []).append(float(ok))
        out[name] = {
            "overall": float(np.mean([r["adherence"] for r in group])) if group else math.nan,
            "clips": len(group),
            "attributes": {a: float(np.mean(v)) for a, v in sorted(checks.items())},
        }
    out["gap"] = out["seen"]["overall"] - out["held_out"]["overall"]
    return out


def mean_pairwise_distance(emb: np.ndarray) -> float:
    """Mean Euclidean distance over the pairs of rows of ``emb [N, D]`` (NaN for N < 2)."""
    x = np.asarray(emb, dtype=np.float64)
    if len(x) < 2:
        return math.nan
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    return float(d[np.triu_indices(len(x), k=1)].mean())


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def check_targets(
    default: dict[str, Any], real: dict[str, Any], split: dict[str, Any] | None
) -> dict[str, Any]:
    """Issue 11's targets on the default setting: ``{name: {"value", "target", "met"}}`` (met None: not measured)."""

    def row(value: Any, target: str, ok: Any) -> dict[str, Any]:
        return {"value": value, "target": target, "met": bool(ok) if _finite(value) else None}

    out = {
        "adherence": row(
            default["adherence"], f">= {TARGET_ADHERENCE}", default["adherence"] >= TARGET_ADHERENCE
        )
    }
    for attr in TABLE_ATTRIBUTES:
        v = default["attributes"].get(attr, math.nan)
        out[f"attribute_{attr}"] = row(v, f">= {TARGET_ATTRIBUTE}", _finite(v) and v >= TARGET_ATTRIBUTE)
    gap = split["gap"] if split else math.nan
    out["held_out_template_gap"] = row(
        gap, f"|seen - held out| <= {TARGET_TEMPLATE_GAP}", abs(gap) <= TARGET_TEMPLATE_GAP
    )
    ratio = default["fad"] / real["fad"] if _finite(real.get("fad")) and real["fad"] > 0 else math.nan
    out["fad_ratio"] = row(ratio, f"<= {TARGET_FAD_RATIO} x real-vs-real", ratio <= TARGET_FAD_RATIO)
    gap = default["clap"] - real["clap"] if _finite(real.get("clap")) else math.nan
    out["clap_gap"] = row(gap, f"|generated - real| <= {TARGET_CLAP_GAP}", abs(gap) <= TARGET_CLAP_GAP)
    xrt = default.get("x_real_time", math.nan)
    out["x_real_time"] = row(xrt, f"<= {TARGET_X_REAL_TIME} (2 idle cores)", xrt <= TARGET_X_REAL_TIME)
    return out


# ---------------------------------------------------------------- the whole run


@dataclass
class QualityConfig:
    """What :func:`run_quality` measures (the script's arguments)."""

    split: str = "test"
    limit: int = 100
    steps: list[int] = field(default_factory=lambda: [2, 4, 6, 8, 16])
    guidance: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0, 4.0, 6.0])
    durations: list[float] = field(default_factory=lambda: [1.0, 4.0, 10.0])
    default_steps: int | None = None  # None: the model's config
    default_guidance: float | None = None
    default_duration: float = 4.0
    seeds_variety: int = 4
    free_text: str | None = None
    seen_templates: bool = True
    reference_limit: int = 500
    tagger: str | None = None
    clap: str | None = None
    keyword: str | None = None
    pitch_method: str = "pyin"
    report_clips: int = 4
    seed: int = 0
    # > 1: each clip is the pipeline's CLAP-ranked best of this many (the sweep, seen templates and free text)
    candidates: int = 1
    round_trip: bool = True  # also score the prompts' real clips through the model's VAE + vocoder

    def __post_init__(self) -> None:
        if isinstance(self.candidates, bool) or not (
            isinstance(self.candidates, int) and self.candidates >= 1
        ):
            raise ConfigError(f"candidates={self.candidates!r} must be an integer >= 1")


def _evaluate(
    gen_dir: Path, reference: Path, prompts: Path | None, out: Path, ev: dict[str, Any], cfg: QualityConfig
):
    from soundsmith.eval import evaluate

    return evaluate(
        gen_dir, reference, prompts=prompts, out_dir=out, tagger=ev["tagger"], clap=ev["clap"],
        keyword=cfg.keyword, cache_dir=ev["cache"], pitch_method=cfg.pitch_method,
        max_report_clips=cfg.report_clips, adherence_reference_clips=0, seed=cfg.seed,
    )  # fmt: skip


def _evaluators(cfg: QualityConfig, ref_rows: Sequence[Any], out: Path) -> dict[str, Any]:
    """The tagger (over the reference clips' labels), the CLAP model and the embedding cache of one run."""
    from soundsmith.eval.runner import resolve_clap, resolve_tagger

    labels = sorted({lb for r in ref_rows for lb in r.labels})
    return {
        "tagger": resolve_tagger(cfg.tagger, labels)[0],
        "clap": resolve_clap(cfg.clap),
        "cache": out / "cache",
    }


def _prompts_and_reference(manifest: str | Path, out_dir: str | Path, cfg: QualityConfig) -> tuple[Any, ...]:
    """``(out folder, manifest, prompt rows, reference rows, OUT/reference.jsonl)`` of a run (see :func:`_split_rows`)."""
    from soundsmith.data.manifest import read_manifest, write_manifest

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = read_manifest(manifest)
    prompt_rows, ref_rows = _split_rows(m, cfg)
    return out, m, prompt_rows, ref_rows, write_manifest(out / "reference.jsonl", ref_rows, root=m.root)


def _split_rows(manifest: Any, cfg: QualityConfig) -> tuple[list[Any], list[Any]]:
    """(prompt rows: the first ``limit`` of the split; reference rows: the rest of it, seeded subset)."""
    rows = [r for r in manifest.rows if r.split == cfg.split]
    prompt_rows = rows[: cfg.limit]
    rest = rows[cfg.limit :]
    if len(rest) > cfg.reference_limit:
        keep = np.random.default_rng(cfg.seed).choice(len(rest), size=cfg.reference_limit, replace=False)
        rest = [rest[i] for i in sorted(keep.tolist())]
    if not prompt_rows or len(rest) < 2:
        raise ManifestError(
            f"{manifest.path}: split {cfg.split!r} has {len(rows)} clips; need --limit ({cfg.limit}) prompt clips "
            "plus at least 2 more as the reference; lower --limit or pick another --split"
        )
    return prompt_rows, rest


def variety(
    pipe: Any, prompts: Sequence[Prompt], pool: Sequence[Any], root: Path, setting: Setting, k: int,
    folder: Path, embedder: Any, cache: Path,
) -> dict[str, Any]:  # fmt: skip
    """For up to ``k`` prompts whose label set has >= 2 real clips in ``pool``: ``k`` seeds each; the mean
    pairwise embedding distance of the generated clips against that of up to ``k`` real clips of the same labels."""
    from soundsmith.eval.runner import embed_files

    by_labels: dict[tuple[str, ...], list[Any]] = {}
    for r in pool:
        by_labels.setdefault(tuple(sorted(r.labels)), []).append(r)
    chosen = [p for p in prompts if len(by_labels.get(tuple(sorted(p.labels)), [])) >= 2][:k]
    items = []
    for j, p in enumerate(chosen):
        gen = generate_set(pipe, [p] * k, setting, folder / f"p{j}", seeds=range(k))
        files = sorted(gen["audio_dir"].glob("*.wav"))
        g = embed_files(files, embedder, cache, desc="variety", windows=False)["emb"]
        real = by_labels[tuple(sorted(p.labels))][:k]
        r = embed_files(
            [x.audio_path(root) for x in real], embedder, cache, desc="variety real", windows=False
        )["emb"]
        items.append(
            {"id": p.id, "prompt": p.prompt, "labels": p.labels, "n_real": len(real)}
            | {"generated": mean_pairwise_distance(g), "real": mean_pairwise_distance(r)}
        )
    gen_mean = float(np.mean([i["generated"] for i in items])) if items else math.nan
    real_mean = float(np.mean([i["real"] for i in items])) if items else math.nan
    return {
        "seeds": k,
        "prompts": items,
        "generated_mean": gen_mean,
        "real_mean": real_mean,
        "ratio": gen_mean / real_mean if real_mean > 0 else math.nan,
    }


def prompts_for(clips: Path, prompts: Sequence[Prompt]) -> Path:
    """A prompts file beside the manifest ``clips`` that gives its row ``i`` prompt ``i``: real clips judged on what
    the generated clips' prompts ask, no more (``soundsmith.eval.adherence.asks_in_prompt``)."""
    from soundsmith.data.manifest import read_manifest

    m = read_manifest(clips)
    if len(m.rows) != len(prompts):
        raise ManifestError(f"{clips}: {len(m.rows)} clips for {len(prompts)} prompts")
    rows = [prompt_row(p, str(r.audio_path(m.root).resolve()), p.id) for r, p in zip(m.rows, prompts)]
    path = clips.with_name("prompts.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _evaluate_prompted(
    clips: Path, prompts: Sequence[Prompt], reference: Path, ev: dict[str, Any], cfg: QualityConfig
) -> dict[str, Any]:
    """``evaluate`` of the manifest ``clips`` (real or round-trip clips, row ``i`` scored on prompt ``i``) into
    the ``eval`` folder beside it."""
    return _evaluate(clips, reference, prompts_for(clips, prompts), clips.parent / "eval", ev, cfg)


def round_trip_set(pipe: Any, rows: list[Any], root: str | Path, folder: Path) -> Path:
    """The rows' clips through ``pipe.round_trip`` (VAE posterior mean + vocoder) as WAVs in ``folder/audio``, and
    a manifest of the same rows (labels, captions, annotations) pointing at them; returns the manifest's path."""
    from dataclasses import replace

    from soundsmith.audio import load_audio, save_audio
    from soundsmith.data.manifest import write_manifest

    sr = pipe.sample_rate
    out_rows = []
    for row in rows:
        audio, _ = load_audio(row.audio_path(root), sample_rate=sr, mono=True)
        path = folder / "audio" / f"{len(out_rows):04d}.wav"
        save_audio(path, pipe.round_trip(audio), sr)
        out_rows.append(replace(row, audio=str(path.resolve()), sample_rate=sr))
    return write_manifest(folder / "clips.jsonl", out_rows)


def run_quality(
    model: str | Path, manifest: str | Path, out_dir: str | Path, cfg: QualityConfig
) -> dict[str, Any]:
    """Every figure of issue 11's targets for ``model``; writes ``out_dir/results.json`` and returns it."""
    import soundsmith
    from soundsmith.data.manifest import write_manifest

    started = time.perf_counter()
    # 1. prompts and the reference set
    out, m, prompt_rows, ref_rows, reference = _prompts_and_reference(manifest, out_dir, cfg)
    prompts = corpus_prompts(prompt_rows)
    real_set = write_manifest(out / "real" / "clips.jsonl", prompt_rows, root=m.root)
    pipe = soundsmith.load(model)
    mc = pipe.model.config
    default = Setting(
        steps=int(cfg.default_steps if cfg.default_steps is not None else mc.steps),
        guidance=float(cfg.default_guidance if cfg.default_guidance is not None else mc.guidance),
        duration=float(cfg.default_duration),
        own=cfg.default_steps is None and cfg.default_guidance is None,
    )
    settings = sweep_settings(default, cfg.steps, cfg.guidance, cfg.durations)
    ev = _evaluators(cfg, ref_rows, out)
    pipe(prompts[0].prompt, duration=default.duration, seed=0, progress=False)  # warm-up: lazy loads untimed
    templates = {p.id: p.template for p in prompts}
    results: dict[str, Any] = {
        "model": str(model),
        "manifest": str(manifest),
        "config": asdict(cfg),
        "default": asdict(default),
        "n_prompts": len(prompts),
        "n_reference": len(ref_rows),
        "settings": [],
    }

    # 2-3. the sweep
    split_rows: list[dict[str, Any]] = []
    for s in settings:
        folder = out / "settings" / s.name
        gen = generate_set(pipe, prompts, s, folder, candidates=cfg.candidates)
        start = time.perf_counter()
        metrics = _evaluate(gen["audio_dir"], reference, gen["prompts"], folder / "eval", ev, cfg)
        row = (
            asdict(s) | {"eval_seconds": time.perf_counter() - start} | {"name": s.name} | summarize(metrics)
        )
        row |= {k: gen[k] for k in ("gen_seconds", "audio_seconds", "x_real_time")}
        results["settings"].append(row)
        if s.knob == "default":
            split_rows += per_clip_rows(metrics, templates)
        log.info(
            "%s: adherence %.3f fad %.3g x real time %.3f",
            s.name,
            row["adherence"],
            row["fad"],
            row["x_real_time"],
        )

    # 4. the prompts' own real clips: real-vs-real FAD at the same size, real CLAP score, real adherence
    real = summarize(_evaluate_prompted(real_set, prompts, reference, ev, cfg))
    results["real"] = real
    # 4b. the same clips through the model's own VAE + vocoder: what its decoder keeps (the ceiling of any denoiser)
    if cfg.round_trip and hasattr(pipe, "round_trip"):
        trip = round_trip_set(pipe, prompt_rows, m.root, out / "round_trip")
        results["round_trip"] = summarize(_evaluate_prompted(trip, prompts, reference, ev, cfg))

    # 5. held-out against seen templates, on the same clips
    if cfg.seen_templates:
        seen = seen_template_prompts(prompts, cfg.seed)
        if seen:
            folder = out / "seen_templates"
            gen = generate_set(pipe, seen, default, folder, candidates=cfg.candidates)
            metrics = _evaluate(gen["audio_dir"], reference, gen["prompts"], folder / "eval", ev, cfg)
            results["seen_templates"] = summarize(metrics) | {"x_real_time": gen["x_real_time"]}
            split_rows += per_clip_rows(metrics, {p.id: p.template for p in seen})
    results["template_split"] = template_split(split_rows)

    # 6. variety
    if cfg.seeds_variety >= 2:
        pool = [r for r in m.rows if r.split == cfg.split]
        results["variety"] = variety(
            pipe,
            prompts,
            pool,
            m.root,
            default,
            cfg.seeds_variety,
            out / "variety",
            ev["tagger"],
            ev["cache"],
        )

    # 7. free-text prompts, reported apart
    if cfg.free_text:
        free = read_prompt_file(cfg.free_text)
        folder = out / "free_text"
        gen = generate_set(pipe, free, default, folder, candidates=cfg.candidates)
        metrics = _evaluate(gen["audio_dir"], reference, gen["prompts"], folder / "eval", ev, cfg)
        results["free_text"] = summarize(metrics) | {"x_real_time": gen["x_real_time"], "file": cfg.free_text}

    # 8. targets on the default setting
    default_row = next(r for r in results["settings"] if r["knob"] == "default")
    results["targets"] = check_targets(default_row, real, results["template_split"])
    results["wall_seconds"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(_finite_json(results), indent=2) + "\n")
    return results


def rescore(out_dir: str | Path) -> dict[str, Any]:
    """Score the clips of an earlier :func:`run_quality` in ``out_dir`` again with the current evaluators (taggers,
    adherence checks), generating nothing: every setting, the real clips, the round trip, the seen templates and
    the free text; the template split and the targets follow. Writes ``out_dir/results_rescored.json`` (timings
    and variety as they were) and returns it."""
    from soundsmith.data.manifest import read_manifest

    out = Path(out_dir)
    if not (out / "results.json").is_file():
        raise ManifestError(f"{out}: no results.json; give the --out folder of an earlier ld_quality run")
    results = json.loads((out / "results.json").read_text())
    cfg = QualityConfig(**results["config"])
    prompt_rows, _ = _split_rows(read_manifest(results["manifest"]), cfg)
    prompts = corpus_prompts(prompt_rows)
    reference = out / "reference.jsonl"
    ev = _evaluators(cfg, read_manifest(reference).rows, out)

    def again(folder: Path) -> dict[str, Any]:
        return _evaluate(folder / "audio", reference, folder / "prompts.jsonl", folder / "eval", ev, cfg)

    split_rows: list[dict[str, Any]] = []
    for row in results["settings"]:
        metrics = again(out / "settings" / row["name"])
        row |= summarize(metrics)
        if row["knob"] == "default":
            split_rows += per_clip_rows(metrics, {p.id: p.template for p in prompts})
    for key in ("real", "round_trip"):
        if key in results:
            results[key] = summarize(
                _evaluate_prompted(out / key / "clips.jsonl", prompts, reference, ev, cfg)
            )
    for key in ("seen_templates", "free_text"):
        if key in results:
            metrics = again(out / key)
            results[key] |= summarize(metrics)
            if key == "seen_templates":
                seen = seen_template_prompts(prompts, cfg.seed)
                split_rows += per_clip_rows(metrics, {p.id: p.template for p in seen})
    results["template_split"] = template_split(split_rows)
    default_row = next(r for r in results["settings"] if r["knob"] == "default")
    results["targets"] = check_targets(default_row, results["real"], results["template_split"])
    (out / "results_rescored.json").write_text(json.dumps(_finite_json(results), indent=2) + "\n")
    return results


def compare_models(
    models: Sequence[str | Path], manifest: str | Path, out_dir: str | Path, cfg: QualityConfig
) -> dict[str, Any]:
    """Several text-to-audio models of any family on the same test prompts, each at its own default settings
    (``cfg.default_duration`` seconds, prompt ``i`` with seed ``i``), scored against the same reference clips by
    the same evaluators, beside the prompts' real clips; writes ``out_dir/comparison.json`` and returns it."""
    import soundsmith
    from soundsmith.data.manifest import write_manifest

    out, m, prompt_rows, ref_rows, reference = _prompts_and_reference(manifest, out_dir, cfg)
    prompts = corpus_prompts(prompt_rows)
    ev = _evaluators(cfg, ref_rows, out)
    setting = Setting(steps=None, guidance=None, duration=cfg.default_duration)
    results: dict[str, Any] = {"manifest": str(manifest), "config": asdict(cfg), "models": []}
    for i, model in enumerate(models):
        pipe = soundsmith.load(str(model))
        pipe(
            prompts[0].prompt, duration=setting.duration, seed=0, progress=False
        )  # warm-up: lazy loads untimed
        folder = out / f"model{i}"
        gen = generate_set(pipe, prompts, setting, folder)
        metrics = _evaluate(gen["audio_dir"], reference, gen["prompts"], folder / "eval", ev, cfg)
        row = {"model": str(model), "family": pipe.family} | summarize(metrics)
        results["models"].append(row | {"x_real_time": gen["x_real_time"]})
    real_set = write_manifest(out / "real" / "clips.jsonl", prompt_rows, root=m.root)
    results["real"] = summarize(_evaluate_prompted(real_set, prompts, reference, ev, cfg))
    (out / "comparison.json").write_text(json.dumps(_finite_json(results), indent=2) + "\n")
    return results


def comparison_table(results: dict[str, Any]) -> str:
    """:func:`compare_models`' rows as a markdown table: adherence, attributes, FAD (and its ratio), CLAP, speed."""
    real_fad = results["real"].get("fad", math.nan)
    head = [
        "model",
        "family",
        "adherence",
        *TABLE_ATTRIBUTES,
        "FAD",
        "FAD / real-vs-real",
        "CLAP",
        "x real time",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [*results["models"], {"model": "real clips", "family": "-"} | results["real"]]
    for r in rows:
        ratio = r.get("fad", math.nan) / real_fad if _finite(real_fad) and real_fad > 0 else math.nan
        cells = [str(r["model"]), str(r["family"]), _fmt(r.get("adherence"))]
        cells += [_fmt(r.get("attributes", {}).get(a, math.nan)) for a in TABLE_ATTRIBUTES]
        cells += [_fmt(r.get("fad"), 1), _fmt(ratio, 2), _fmt(r.get("clap")), _fmt(r.get("x_real_time"), 4)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _finite_json(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_json(v) for v in obj]
    return obj


# ---------------------------------------------------------------- presentation


def _fmt(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if _finite(v) else "-"


def markdown_table(results: dict[str, Any]) -> str:
    """Rows per setting (then real clips, seen templates, free text): knobs, adherence, attributes, FAD, CLAP."""
    head = [
        "setting",
        "steps",
        "guidance",
        "duration",
        "adherence",
        *TABLE_ATTRIBUTES,
        "FAD",
        "CLAP",
        "x real time",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def line(label: str, r: dict[str, Any], knobs: tuple[str, str, str]) -> str:
        cells = [label, *knobs, _fmt(r.get("adherence"))]
        cells += [_fmt(r.get("attributes", {}).get(a, math.nan)) for a in TABLE_ATTRIBUTES]
        cells += [_fmt(r.get("fad"), 4), _fmt(r.get("clap")), _fmt(r.get("x_real_time"), 4)]
        return "| " + " | ".join(cells) + " |"

    for r in results["settings"]:
        lines.append(line(r["knob"], r, (str(r["steps"]), f"{r['guidance']:g}", f"{r['duration']:g}")))
    d = results["default"]
    knobs = (str(d["steps"]), f"{d['guidance']:g}", f"{d['duration']:g}")
    lines.append(line("real clips", results["real"], ("-", "-", "-")))
    if "round_trip" in results:
        lines.append(line("real clips, VAE + vocoder round trip", results["round_trip"], ("-", "-", "-")))
    for key, label in (("seen_templates", "seen templates"), ("free_text", "free text")):
        if key in results:
            lines.append(line(label, results[key], knobs))
    ts = results.get("template_split", {})
    text = "\n".join(lines)
    if ts:
        text += (
            f"\n\nheld-out templates {_fmt(ts['held_out']['overall'])} ({ts['held_out']['clips']} clips), seen "
            f"{_fmt(ts['seen']['overall'])} ({ts['seen']['clips']} clips), gap {_fmt(ts['gap'])}"
        )
    if "variety" in results:
        v = results["variety"]
        text += (
            f"\nvariety ({v['seeds']} seeds, {len(v['prompts'])} prompts): generated {_fmt(v['generated_mean'])}, "
            f"real same-class {_fmt(v['real_mean'])}, ratio {_fmt(v['ratio'])}"
        )
    real = results["real"]
    text += f"\nreal-vs-real FAD {_fmt(real['fad'], 4)}; real clips' CLAP {_fmt(real['clap'])}\n\ntargets:\n"
    for name, t in results.get("targets", {}).items():
        met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        text += f"- {name}: {_fmt(t['value'], 4)} ({t['target']}): {met}\n"
    return text


def plot(results: dict[str, Any], path: str | Path) -> Path | None:
    """Adherence and FAD against steps and against guidance (2 x 2 panels); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), dpi=100)
    for col, knob in enumerate(("steps", "guidance")):
        rows = [r for r in results["settings"] if r["knob"] in ("default", knob)]
        rows.sort(key=lambda r: r[knob])
        for row_i, (metric, label) in enumerate((("adherence", "adherence"), ("fad", "FAD"))):
            ax = axes[row_i, col]
            xs = [r[knob] for r in rows]
            ys = [r[metric] if _finite(r[metric]) else np.nan for r in rows]
            ax.plot(xs, ys, "o-", label="generated")
            ref = results["real"].get(metric)
            if _finite(ref):
                ax.axhline(
                    ref, ls="--", c="gray", label="real clips" if metric == "adherence" else "real vs real"
                )
            ax.set_xlabel(knob)
            ax.set_ylabel(label)
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
