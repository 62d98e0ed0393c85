"""The levels a model holds soft and loud parts to (``LatentDiffusionConfig.dynamics_db``), from its training clips.

    python scripts/dynamics_levels.py --manifest work/corpus_ld/manifest.jsonl --limit 3000

Reads the RMS level (dBFS, the level the evaluation orders soft and loud clips by) of the ``--split`` clips that
hold one sound asked soft or loud (the corpus' ``dynamics`` annotation), the first ``--limit`` of them, and prints
the percentiles of each and the ``dynamics_db`` they give: soft at most the ``--soft-percentile`` (95th) of the
soft clips, loud at least the ``--loud-percentile`` (5th) of the loud ones.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from soundsmith.errors import SoundsmithError


def levels(manifest: str, split: str, limit: int) -> dict[str, list[float]]:
    from soundsmith.audio.io import load_audio
    from soundsmith.data.manifest import read_manifest
    from soundsmith.eval.metrics import rms_dbfs

    rows = read_manifest(manifest)
    out: dict[str, list[float]] = {"soft": [], "loud": []}
    for row in rows.split(split):
        events = row.meta.get("events", [])
        asked = [e.get("dynamics") for e in events if e.get("dynamics") in out]
        if len(events) != 1 or len(asked) != 1:
            continue
        audio, _ = load_audio(row.audio_path(rows.root))
        out[asked[0]].append(rms_dbfs(audio))
        if sum(map(len, out.values())) >= limit:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit", type=int, default=3000, help="clips read at most")
    ap.add_argument("--soft-percentile", type=float, default=95.0)
    ap.add_argument("--loud-percentile", type=float, default=5.0)
    args = ap.parse_args(argv)
    try:
        found = levels(args.manifest, args.split, args.limit)
    except (SoundsmithError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not found["soft"] or not found["loud"]:
        print(f"error: {args.manifest}: no {args.split} clips asked soft and loud (a `dynamics` annotation)",
              file=sys.stderr)  # fmt: skip
        return 1
    for key, vals in found.items():
        q = np.percentile(vals, [5, 25, 50, 75, 95])
        print(f"{key}: {len(vals)} clips, RMS dBFS 5/25/50/75/95th percentiles " + " / ".join(f"{v:.1f}" for v in q))
    bounds = {
        "soft": round(float(np.percentile(found["soft"], args.soft_percentile)), 1),
        "loud": round(float(np.percentile(found["loud"], args.loud_percentile)), 1),
    }
    print(json.dumps({"dynamics_db": bounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
