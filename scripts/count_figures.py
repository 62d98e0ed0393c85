"""How well the event counter (`soundsmith.eval.attributes.count_events`) counts the clips of a manifest that ask for
a count, split into clean clips and clips through the recording chain (reverb, background noise, mic, codec).

    python scripts/count_figures.py --manifest work/corpus_eval_all/manifest.jsonl --split train --limit 3000

Prints, per kind, the number of clips, the share counted exactly and the most frequent signed errors.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from soundsmith.audio import load_audio
from soundsmith.data.manifest import read_manifest
from soundsmith.eval.adherence import asks_from_events
from soundsmith.eval.attributes import count_events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument(
        "--limit", type=int, default=3000, help="rows of the split read (those asking a count kept)"
    )
    args = ap.parse_args()
    m = read_manifest(args.manifest)
    errors: dict[str, list[int]] = collections.defaultdict(list)
    for row in [r for r in m if r.split == args.split][: args.limit]:
        asks = asks_from_events(row.meta.get("events", []), row.meta.get("family"))
        if "count" not in asks:
            continue
        audio, _ = load_audio(row.audio_path(m.root), sample_rate=16000, mono=True)
        kind = "recording chain" if row.meta.get("render_chain") else "clean"
        errors[kind].append(count_events(audio, 16000) - int(asks["count"]))
    print("| clips | n | counted exactly | most frequent errors (events: clips) |")
    print("|---|---|---|---|")
    for kind, e in sorted(errors.items()):
        common = collections.Counter(e).most_common(4)
        print(
            f"| {kind} | {len(e)} | {np.mean(np.array(e) == 0):.3f} | {', '.join(f'{k:+d}: {n}' for k, n in common)} |"
        )


if __name__ == "__main__":
    main()
