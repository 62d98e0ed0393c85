"""Listening tests: blind clips, OVL (overall quality) and REL (relevance to the prompt) ratings from 1 to 100 as
in AudioLDM 2, and per-system means with 95% confidence intervals (Student's t).

A *system* is a model with its settings (steps, guidance, sampling options): the prompt, seed, duration and
candidate count are what a listening test varies, not what it compares.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from typing import Any

import numpy as np

SYSTEM_KEYS = ("steps", "guidance", "negative_prompt", "temperature", "top_k", "top_p")


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) is quoted with a leading '."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value


def _number(value: Any) -> Any:
    """Floats to two decimals, NaN (undefined) as an empty cell; anything else as it is."""
    if not isinstance(value, float):
        return value
    return "" if math.isnan(value) else round(value, 2)


def system_of(model: str, request: dict[str, Any]) -> str:
    """``"tiny"`` or ``"tiny (steps=50, guidance=3.0)"``: the model and the settings that were given."""
    settings = [f"{k}={request[k]}" for k in SYSTEM_KEYS if request.get(k) is not None]
    return f"{model} ({', '.join(settings)})" if settings else model


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (NaN with fewer than two values)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()) if len(x) else math.nan, math.nan
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def summary(ratings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per system: ratings, OVL and REL means with 95% half-widths, sorted by system."""
    by_system: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ratings:
        by_system[system_of(r["model"], r["request"])].append(r)
    rows = []
    for system in sorted(by_system):
        rs = by_system[system]
        ovl, ovl_ci = mean_ci95([r["ovl"] for r in rs])
        rel, rel_ci = mean_ci95([r["rel"] for r in rs])
        rows.append(
            {
                "system": system,
                "ratings": len(rs),
                "clips": len({(r["job_id"], r["clip"]) for r in rs}),
                "raters": len({r["rater"] for r in rs}),
                "ovl_mean": ovl,
                "ovl_ci95": ovl_ci,
                "rel_mean": rel,
                "rel_ci95": rel_ci,
            }
        )
    return rows


def summary_csv(ratings: list[dict[str, Any]]) -> str:
    """:func:`summary` as CSV (means and half-widths to two decimals; empty where undefined)."""
    out = io.StringIO()
    fields = ["system", "ratings", "clips", "raters", "ovl_mean", "ovl_ci95", "rel_mean", "rel_ci95"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in summary(ratings):
        row["system"] = _cell(row["system"])
        writer.writerow({k: _number(v) for k, v in row.items()})
    return out.getvalue()


def ratings_csv(ratings: list[dict[str, Any]]) -> str:
    """Every rating as a CSV row: system, prompt, clip, rater, OVL, REL."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["system", "prompt", "clip", "rater", "ovl", "rel", "created"])
    for r in ratings:
        system = system_of(r["model"], r["request"])
        row = [
            system,
            r["prompt"],
            f"{r['job_id']}-{r['clip']}",
            r["rater"],
            r["ovl"],
            r["rel"],
            r["created"],
        ]
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()
