"""Report writer: report.md and report.html beside metrics.json (spectrogram PNGs, audio players, loss curves).

All links are relative to the report folder so the folder can be moved or served as is.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from soundsmith.audio import MelConfig, load_audio, mel_spectrogram

# metric key -> (description, which direction is better)
METRICS: dict[str, tuple[str, str]] = {
    "fad": ("Fréchet distance of tagger embeddings", "lower"),
    "fad_inf": ("FAD extrapolated to infinite clips", "lower"),
    "kl_softmax": ("KL(reference ‖ generated), softmax posteriors", "lower"),
    "kl_sigmoid": ("KL(reference ‖ generated), per-class sigmoid", "lower"),
    "inception_score": ("Inception score (baseline: reference set)", "higher"),
    "clap_score": ("cosine(prompt, audio) in CLAP space", "higher"),
    "adherence_topk": ("asked class in the tagger's top-k", "higher"),
    "adherence_threshold": ("asked class with probability >= 0.5", "higher"),
    "pitch_error_cents": ("|pYIN pitch - asked MIDI pitch| in cents", "lower"),
    "pitch_within_50_cents": ("share of pitched prompts within 50 cents", "higher"),
    "onset_count_error": ("|detected onsets - asked count|", "lower"),
    "loudness_order_accuracy": ("louder-asked clip measured louder", "higher"),
    "attribute_adherence": ("share of asked attributes met (per clip, averaged)", "higher"),
    "silence_rate": ("share of clips below -60 dBFS RMS", "lower"),
    "clipping_rate": ("share of clips with > 0.1% clipped samples", "lower"),
}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for key, (desc, better) in METRICS.items():
        if key in summary:
            rows.append((key, _fmt(summary[key]), _fmt(summary.get(f"{key}_baseline")), better, desc))
    return rows


def adherence_rows(adherence: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(attribute, generated, real clips, shuffled real clips, chance) rows, with n in brackets; "overall" last."""

    def cell(row: dict[str, Any], kind: str) -> str:
        if kind not in row:
            return "n/a"
        return f"{_fmt(row[kind])} ({row[f'n_{kind}']})"

    rows = [
        (attr, cell(r, "generated"), cell(r, "real"), cell(r, "shuffled"), _fmt(r.get("chance")))
        for attr, r in adherence.get("table", {}).items()
    ]
    overall = adherence.get("overall", {})
    rows.append(
        ("overall", *(_fmt(overall.get(k)) for k in ("generated", "real", "shuffled")), "")  # type: ignore[misc]
    )
    return rows


ADHERENCE_NOTE = (
    "Each asked attribute checked by its own measurement (soundsmith.eval.adherence); accuracy (number of "
    "checks). real: annotated reference clips scored against their own annotations; shuffled: against another "
    "clip's; overall: mean over clips of the share of their asks met."
)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


def spectrogram_png(audio: np.ndarray, sample_rate: int, path: Path, title: str = "") -> None:
    """A log-mel image of a clip `[T]`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = MelConfig(sample_rate=sample_rate, fmax=sample_rate / 2)
    mel = mel_spectrogram(audio, cfg).numpy()
    fig, ax = plt.subplots(figsize=(5, 2), dpi=80)
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma")
    ax.set_title(title[:60], fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def loss_curves_png(run_dir: Path, path: Path) -> bool:
    """Plot every key containing "loss" against `step` from `run_dir/metrics.jsonl`; False when none."""
    jsonl = Path(run_dir) / "metrics.jsonl"
    if not jsonl.is_file():
        return False
    series: dict[str, list[tuple[float, float]]] = {}
    for line in jsonl.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a partially written last line of a live run
        if not isinstance(row, dict) or "step" not in row:
            continue
        for key, value in row.items():
            if "loss" in key and isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(key, []).append((float(row["step"]), float(value)))
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    for key, pts in sorted(series.items()):
        xs, ys = zip(*pts)
        ax.plot(xs, ys, label=key)
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(
    out_dir: str | Path,
    metrics: dict[str, Any],
    run_dir: str | Path | None = None,
    max_clips: int = 50,
    sample_rate: int = 16000,
) -> None:
    """Write report.md and report.html (and their images) into `out_dir` from the `evaluate()` metrics."""
    out_dir = Path(out_dir)
    spec_dir = out_dir / "spectrograms"
    spec_dir.mkdir(parents=True, exist_ok=True)
    summary, info, clips = metrics["summary"], metrics["info"], metrics["per_clip"]
    curves = run_dir is not None and loss_curves_png(Path(run_dir), out_dir / "loss_curves.png")

    images: dict[int, str] = {}
    for i, clip in enumerate(clips[:max_clips]):
        png = spec_dir / f"{i:04d}_{_safe(clip['id'])}.png"
        spectrogram_png(
            load_audio(clip["audio"], sample_rate=sample_rate)[0],
            sample_rate,
            png,
            clip["prompt"] or clip["id"],
        )
        images[i] = os.path.relpath(png, out_dir)

    def rel_audio(clip: dict[str, Any]) -> str:
        return os.path.relpath(Path(clip["audio"]).resolve(), out_dir.resolve())

    worst = set(metrics.get("worst_outliers", []))
    head = (
        f"{info['n_generated']} generated vs {info['n_reference']} reference clips; tagger: {info['tagger']}"
    )
    kl_note = f"KL mode: {info.get('kl_mode')} ({info.get('n_pairs', 0)} pairs)"
    table = _rows(summary)

    # report.md
    md = [
        "# Evaluation report",
        "",
        head,
        "",
        kl_note,
        "",
        "| metric | generated | real vs real | better | what |",
    ]
    md.append("|---|---|---|---|---|")
    md += [f"| {k} | {g} | {b} | {d} | {w.replace('|', '/')} |" for k, g, b, d, w in table]
    adherence = metrics.get("adherence")
    if adherence:
        md += ["", "## Attribute adherence", "", ADHERENCE_NOTE, ""]
        md += ["| attribute | generated | real clips | shuffled real | chance |", "|---|---|---|---|---|"]
        md += [f"| {a} | {g} | {r} | {s} | {c} |" for a, g, r, s, c in adherence_rows(adherence)]
    md += ["", "## Worst outliers (Mahalanobis distance under the reference Gaussian)", ""]
    md += [f"- {c['id']}: {c['outlier_score']:.3g}" for c in clips if c["id"] in worst]
    if curves:
        md += ["", "## Loss curves", "", "![loss curves](loss_curves.png)"]
    md += ["", "## Clips", "", "| id | prompt | asked | tagger top | outlier | clap | spectrogram |"]
    md.append("|---|---|---|---|---|---|---|")
    for i, c in enumerate(clips):
        top = ", ".join(f"{lb} {p:.2f}" for lb, p in c["top_labels"])
        img = f"![spec]({images[i]})" if i in images else ""
        prompt = c["prompt"].replace("|", "/")
        md.append(
            f"| [{c['id']}]({rel_audio(c)}) | {prompt} | {', '.join(c['labels'])} | {top} | "
            f"{c['outlier_score']:.3g} | {_fmt(c['clap_score'])} | {img} |"
        )
    (out_dir / "report.md").write_text("\n".join(md) + "\n")

    # report.html
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>soundsmith evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}.worst{background:#fee}</style></head><body>",
        f"<h1>Evaluation report</h1><p>{e(head)}</p><p>{e(kl_note)}</p>",
        "<table><tr><th>metric</th><th>generated</th><th>real vs real</th><th>better</th><th>what</th></tr>",
    ]
    parts += [
        f"<tr><td>{e(k)}</td><td>{g}</td><td>{b}</td><td>{d}</td><td>{e(w)}</td></tr>"
        for k, g, b, d, w in table
    ]
    parts.append("</table>")
    if adherence:
        parts.append(f"<h2>Attribute adherence</h2><p>{e(ADHERENCE_NOTE)}</p>")
        parts.append(
            "<table><tr><th>attribute</th><th>generated</th><th>real clips</th><th>shuffled real</th>"
            "<th>chance</th></tr>"
        )
        parts += [
            f"<tr><td>{e(a)}</td><td>{g}</td><td>{r}</td><td>{s_}</td><td>{c}</td></tr>"
            for a, g, r, s_, c in adherence_rows(adherence)
        ]
        parts.append("</table>")
    if curves:
        parts.append("<h2>Loss curves</h2><img src='loss_curves.png' alt='loss curves'>")
    parts.append("<h2>Clips</h2><table><tr><th>id</th><th>prompt</th><th>asked</th><th>tagger top</th>")
    parts.append("<th>outlier</th><th>clap</th><th>audio</th><th>spectrogram</th></tr>")
    for i, c in enumerate(clips):
        top = ", ".join(f"{e(lb)} {p:.2f}" for lb, p in c["top_labels"])
        img = f"<img src='{e(images[i])}' alt='spectrogram'>" if i in images else ""
        cls = " class='worst'" if c["id"] in worst else ""
        parts.append(
            f"<tr{cls}><td>{e(c['id'])}</td><td>{e(c['prompt'])}</td><td>{e(', '.join(c['labels']))}</td>"
            f"<td>{top}</td><td>{c['outlier_score']:.3g}</td><td>{_fmt(c['clap_score'])}</td>"
            f"<td><audio controls preload='none' src='{e(rel_audio(c))}'></audio></td><td>{img}</td></tr>"
        )
    parts.append("</table></body></html>")
    (out_dir / "report.html").write_text("\n".join(parts) + "\n")
