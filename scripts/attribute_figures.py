"""The attribute-adherence table of real corpus clips (own prompts) and shuffled ones (docs/evaluation.md).

Takes up to ``--limit`` clips of ``--split`` from an annotated manifest, writes them as a manifest in ``--out``
and runs ``soundsmith.eval.evaluate`` with that manifest as the generated set and as the reference: the
"generated" and "real" columns are then the same clips scored against their own annotations, "shuffled" the
same clips scored against another clip's. With ``--generated DIR --prompts FILE`` it scores a model's
generations instead (the reference subset still gives the real and shuffled columns).

  python scripts/attribute_figures.py --manifest work/corpus2k/manifest.jsonl --split test --limit 200 \
      --out work/attr_real
"""

from __future__ import annotations

import argparse
import json

from soundsmith.data.manifest import read_manifest, write_manifest
from soundsmith.eval import evaluate
from soundsmith.eval.report import adherence_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--out", required=True)
    ap.add_argument("--generated", default=None)
    ap.add_argument("--prompts", default=None)
    ap.add_argument("--keyword", default=None)
    ap.add_argument("--tagger", default=None)
    ap.add_argument("--pitch-method", default="pyin")
    args = ap.parse_args()
    m = read_manifest(args.manifest)
    rows = [r for r in m.rows if r.split == args.split][: args.limit]
    subset = write_manifest(f"{args.out}/subset.jsonl", rows, root=m.root)
    metrics = evaluate(
        args.generated or subset,
        subset,
        prompts=args.prompts,
        out_dir=args.out,
        tagger=args.tagger,
        keyword=args.keyword,
        pitch_method=args.pitch_method,
        adherence_reference_clips=args.limit,
    )
    adherence = metrics.get("adherence", {})
    print("| attribute | generated | real clips | shuffled real | chance |")
    print("|---|---|---|---|---|")
    for row in adherence_rows(adherence):
        print("| " + " | ".join(row) + " |")
    print(json.dumps({"recognizer": adherence.get("recognizer"), "n_clips": len(rows)}))


if __name__ == "__main__":
    main()
