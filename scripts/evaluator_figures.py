#!/usr/bin/env python
"""Print how good the shipped evaluators are: tagger accuracy / mAP and CLAP retrieval.

    python scripts/evaluator_figures.py --manifest work/corpus4k/manifest.jsonl --split test --json out.json
    python scripts/evaluator_figures.py --sample   # the fixed sample; writes docs/evaluator_figures.json

`--sample` synthesizes the small fixed corpus sample of `soundsmith.eval.evaluators.SAMPLE_SPEC` in a
temporary folder and writes the figures that tests/eval/test_eval_shipped.py reproduces.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = "work/corpus4k/manifest.jsonl"
SAMPLE_JSON = REPO / "docs" / "evaluator_figures.json"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def print_figures(title: str, figures: dict[str, Any] | None) -> None:
    print(f"== {title}")
    if figures is None:
        print("   (no model)")
        return
    for key, value in figures.items():
        if key == "per_family":
            for fam, row in value.items():
                cells = "  ".join(f"{k}={_fmt(v)}" for k, v in row.items())
                print(f"   {'family ' + fam:>24s}  {cells}")
        else:
            print(f"   {key:>24s}  {_fmt(value)}")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    from soundsmith.errors import SoundsmithError
    from soundsmith.eval import evaluators as ev
    from soundsmith.eval.embedders import load_eval_model, model_identity

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--manifest", default=DEFAULT_MANIFEST, help=f"labelled manifest (default {DEFAULT_MANIFEST})"
    )
    p.add_argument("--split", default="test", help="split to score; 'all' for every row (default test)")
    p.add_argument("--sample", action="store_true", help="score the fixed synthetic sample instead")
    p.add_argument("--json", help=f"write the figures here (default with --sample: {SAMPLE_JSON})")
    p.add_argument("--tagger", default="tagger", help="tagger directory or name (default: shipped tagger)")
    p.add_argument(
        "--clap", default="clap", help="CLAP directory or name (default: shipped clap); 'none' skips"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bf16", action="store_true", help="CPU bf16 autocast for both CNNs")
    args = p.parse_args(argv)
    command = "python scripts/evaluator_figures.py " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    try:
        tagger = (
            ev.load_shipped(args.tagger)
            if args.tagger == "tagger"
            else load_eval_model(args.tagger, "tagger")
        )
        clap = None
        if args.clap.lower() != "none":
            clap = ev.load_shipped(args.clap) if args.clap == "clap" else load_eval_model(args.clap, "clap")
        clip_seconds = ev.trained_clip_seconds(args.tagger)
        if args.sample:
            with tempfile.TemporaryDirectory(prefix="evaluator-sample-") as tmp:
                result = ev.sample_figures(tagger, clap, tmp, clip_seconds=clip_seconds, bf16=args.bf16)
            out = Path(args.json) if args.json else SAMPLE_JSON
        else:
            split = None if args.split == "all" else args.split
            kw = {"clip_seconds": clip_seconds, "batch_size": args.batch_size, "bf16": args.bf16}
            result = {
                "manifest": args.manifest,
                "split": split,
                "models": {
                    "tagger": model_identity(tagger),
                    "clap": model_identity(clap) if clap is not None else None,
                },
                "tagger": ev.tagger_figures(tagger, args.manifest, split, **kw),
                "clap": ev.clap_retrieval(clap, args.manifest, split, **kw) if clap is not None else None,
            }
            out = Path(args.json) if args.json else None
    except SoundsmithError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result["command"] = command
    print_figures(f"tagger ({args.tagger})", result["tagger"])
    print_figures(f"clap ({args.clap})", result["clap"])
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_finite(result), indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
