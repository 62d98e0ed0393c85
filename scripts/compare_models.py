"""Several text-to-audio models (any family) side by side on the same test prompts, each at its own defaults.

    OMP_NUM_THREADS=2 python scripts/compare_models.py --models runs/ganmix_improved_speech default \
        --manifest work/corpus_speech/manifest.jsonl --limit 100 --duration 4 --out work/compare_speech

Prompt ``i`` (the first caption of the split's ``i``-th clip, with its annotations) is generated with seed ``i`` by
every model; all are scored by ``soundsmith.eval.evaluate`` against the same reference clips (the rest of the
split) and beside the prompts' own real clips: ``OUT/comparison.json`` and ``OUT/table.md`` (library:
``soundsmith.eval.generation_quality.compare_models``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from soundsmith.errors import SoundsmithError
from soundsmith.eval.generation_quality import QualityConfig, compare_models, comparison_table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="model directories, run directories or names")
    ap.add_argument("--manifest", required=True, help="annotated corpus manifest")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=100, help="prompts (one per clip of the split)")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per clip")
    ap.add_argument("--reference-limit", type=int, default=500, help="real reference clips at most")
    ap.add_argument("--out", required=True)
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        cfg = QualityConfig(
            split=args.split,
            limit=args.limit,
            default_duration=args.duration,
            reference_limit=args.reference_limit,
            round_trip=False,
        )
        results = compare_models(args.models, args.manifest, args.out, cfg)
    except SoundsmithError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    table = comparison_table(results)
    (Path(args.out) / "table.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
