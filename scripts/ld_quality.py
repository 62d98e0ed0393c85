"""Measure a text-to-audio model against issue 11's targets: adherence, FAD, CLAP, variety, speed.

Sweeps steps, guidance and duration one knob at a time around the default, generates one clip per test prompt
(first caption + annotations), scores each setting with ``soundsmith.eval.evaluate`` against real test clips,
and writes ``OUT/results.json``, ``OUT/table.md`` and ``OUT/quality.png`` (library:
``soundsmith.eval.generation_quality``).

  OMP_NUM_THREADS=2 python scripts/ld_quality.py --model runs/latent_diffusion/model \
      --manifest work/corpus_ld/manifest.jsonl --split test --limit 60 --out work/ld_quality \
      --steps 2,4,6,8,16 --guidance 1,2,3,4,6 --durations 1,4,10 --seeds-variety 4 \
      --free-text configs/prompts/free_text.jsonl

``--rescore --out OUT`` scores the clips of an earlier run in OUT again with the current evaluators (no generation):
``OUT/results_rescored.json`` and ``OUT/table_rescored.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from soundsmith.errors import SoundsmithError
from soundsmith.eval.generation_quality import (
    QualityConfig,
    markdown_table,
    parse_list,
    plot,
    rescore,
    run_quality,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model directory or shipped name (not with --rescore)")
    ap.add_argument("--manifest", help="annotated corpus manifest (not with --rescore)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=60, help="prompts (one per clip of the split)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", default="2,4,6,8,16")
    ap.add_argument("--guidance", default="1,2,3,4,6")
    ap.add_argument("--durations", default="1,4,10")
    ap.add_argument("--default-steps", type=int, default=None, help="default: the model's config")
    ap.add_argument("--default-guidance", type=float, default=None, help="default: the model's config")
    ap.add_argument("--default-duration", type=float, default=4.0)
    ap.add_argument("--seeds-variety", type=int, default=4, help="K prompts x K seeds (0: skip)")
    ap.add_argument(
        "--free-text", default=None, help="JSONL of free-text prompts (prompt, labels, attributes)"
    )
    ap.add_argument("--no-seen-templates", action="store_true", help="skip the seen-template re-captions")
    ap.add_argument(
        "--no-round-trip",
        action="store_true",
        help="skip the real clips through the VAE + vocoder (the ceiling)",
    )
    ap.add_argument("--reference-limit", type=int, default=500, help="real reference clips at most")
    ap.add_argument("--tagger", default=None)
    ap.add_argument("--clap", default=None)
    ap.add_argument("--keyword", default=None)
    ap.add_argument("--pitch-method", default="pyin", choices=["pyin", "crepe"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--candidates",
        type=int,
        default=1,
        help="best of N by the pipeline's CLAP score (CLI -n; not for variety)",
    )
    ap.add_argument(
        "--rescore",
        action="store_true",
        help="score the clips already in --out again with the current evaluators (generates nothing)",
    )
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    args = ap.parse_args(argv)
    if not args.rescore and not (args.model and args.manifest):
        ap.error("--model and --manifest are required (unless --rescore)")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if args.rescore:
            results = rescore(args.out)
            table = markdown_table(results)
            (Path(args.out) / "table_rescored.md").write_text(table)
            print(table)
            return 0
        cfg = QualityConfig(
            split=args.split,
            limit=args.limit,
            steps=parse_list(args.steps, int),
            guidance=parse_list(args.guidance, float),
            durations=parse_list(args.durations, float),
            default_steps=args.default_steps,
            default_guidance=args.default_guidance,
            default_duration=args.default_duration,
            seeds_variety=args.seeds_variety,
            free_text=args.free_text,
            seen_templates=not args.no_seen_templates,
            reference_limit=args.reference_limit,
            tagger=args.tagger,
            clap=args.clap,
            keyword=args.keyword,
            pitch_method=args.pitch_method,
            seed=args.seed,
            candidates=args.candidates,
            round_trip=not args.no_round_trip,
        )
        results = run_quality(args.model, args.manifest, args.out, cfg)
    except SoundsmithError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    table = markdown_table(results)
    (Path(args.out) / "table.md").write_text(table)
    print(table)
    png = plot(results, Path(args.out) / "quality.png")
    print(f"results: {args.out}/results.json; plot: {png or 'skipped (matplotlib not installed)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
