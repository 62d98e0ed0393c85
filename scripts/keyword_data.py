"""Build the spoken-word recognizer's data from the built-in corpus, with whole voices held out.

Writes, under ``--out``:
  ``speech/`` and ``other/``: two corpora from ``soundsmith.data.synth`` (spoken words; events, instruments and
  scenes, which give the "no word" class and words over backgrounds);
  ``train.jsonl``: every clip whose voices are all in the training voices, with the corpus splits (its ``test``
  rows say words in (word, voice) pairs that training never hears: "seen voices, held-out clips");
  ``unseen.jsonl``: every clip with a held-out voice (``--holdout-voices``), all in split ``test``.

  python scripts/keyword_data.py --out work/keyword2 --speech-clips 3000 --other-clips 1600 --workers 2

The voices held out measure how the recognizer hears voices it never heard. The shipped recognizer is then
trained with none held out (``--holdout-voices`` with no value), so that as an evaluator it knows every voice of
the corpus; the corpus' own held-out (word, voice) pairs stay in its test split either way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from soundsmith.data.manifest import ManifestRow, read_manifest, write_manifest
from soundsmith.data.synth import synthesize_corpus

# scottish_female, caribbean_male (espeak: one woman, one man, neither an extreme) and natural_male_high (piper,
# index 8 + 3; present only when piper is installed)
HOLDOUT_VOICES = (3, 4, 11)


def voices_of(row: ManifestRow) -> set[int]:
    return {int(e["voice"]) for e in row.meta.get("events", []) if "voice" in e}


def split_by_voice(rows: list[ManifestRow], holdout: set[int], prefix: str) -> tuple[list, list]:
    """``(training-voice rows, held-out-voice rows)``; audio paths get ``prefix`` (the corpus folder)."""
    seen, unseen = [], []
    for row in rows:
        row = ManifestRow(**{**row.to_dict(), "audio": f"{prefix}/{row.audio}"})
        if voices_of(row) & holdout:
            unseen.append(ManifestRow(**{**row.to_dict(), "split": "test"}))
        else:
            seen.append(row)
    return seen, unseen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--speech-clips", type=int, default=2400)
    ap.add_argument("--other-clips", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--holdout-voices",
        type=int,
        nargs="*",
        default=list(HOLDOUT_VOICES),
        help="voice indices kept out of training (default 3 4 11); none when given no value",
    )
    args = ap.parse_args()
    out = Path(args.out)
    holdout = set(args.holdout_voices)
    seen, unseen = [], []
    for name, clips, families, seed in (
        ("speech", args.speech_clips, ("speech",), args.seed),
        ("other", args.other_clips, ("events", "instruments", "scenes"), args.seed + 1),
    ):
        if clips <= 0:
            continue
        path = synthesize_corpus(out / name, clips=clips, seed=seed, families=families, workers=args.workers)
        s, u = split_by_voice(list(read_manifest(path)), holdout, name)
        seen += s
        unseen += u
    write_manifest(out / "train.jsonl", seen)
    write_manifest(out / "unseen.jsonl", unseen)
    counts = {sp: sum(r.split == sp for r in seen) for sp in ("train", "valid", "test")}
    print(f"train.jsonl: {counts}; unseen.jsonl: {len(unseen)} clips (voices {sorted(holdout)})")


if __name__ == "__main__":
    main()
