"""Build the spoken-word recognizer's data from the built-in corpus, with whole voices held out.

Writes, under ``--out``:
  ``speech/`` and ``other/``: two corpora from ``soundsmith.data.synth`` (spoken words; events, instruments and
  scenes, which give the "no word" class and words over backgrounds);
  ``train.jsonl``: every clip whose voices are all in the training voices, with the corpus splits (its ``test``
  rows say words in (word, voice) pairs that training never hears: "seen voices, held-out clips");
  ``unseen.jsonl``: every clip with a held-out voice (``--holdout-voices``), all in split ``test``.
  ``extra/`` (``--extra-voices N``): the 20 words said by N espeak-ng voices the corpus never uses (accent x
  variant x pitch x rate drawn from ``--seed``), two 4-s clips per utterance, all in split ``train``.

  python scripts/keyword_data.py --out work/keyword2 --speech-clips 3000 --other-clips 1600 --workers 2

The voices held out measure how the recognizer hears voices it never heard. The shipped recognizer is then
trained with none held out (``--holdout-voices`` with no value), so that as an evaluator it knows every voice of
the corpus; the corpus' own held-out (word, voice) pairs stay in its test split either way.

A (word, voice) pair of the corpus is one waveform, so the corpus teaches each word in at most 12 renderings; the
extra voices add renderings the corpus never holds (the recognizer then hears accents and variants its test
pairs are not), so it generalises to the held-out pairs instead of memorising the others.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

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


EXTRA_ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd")  # fmt: skip
EXTRA_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "whisperf", "croak",
                  "klatt", "Andy", "anika", "aunty", "edward", "grandma", "steph", "travis", "iven")  # fmt: skip


def extra_voices(n: int, seed: int) -> list[tuple[str, int, int, int]]:
    """``n`` espeak voices ``(name, pitch, rate, pitch_range)`` none of which is a corpus voice's name."""
    from soundsmith.data.synth.speech import VOICES

    corpus = {v[1] for v in VOICES}
    rng = np.random.default_rng(seed)
    out: list[tuple[str, int, int, int]] = []
    while len(out) < n:
        name = f"{rng.choice(EXTRA_ACCENTS)}+{rng.choice(EXTRA_VARIANTS)}"
        pitch, rate, spread = (
            int(rng.integers(15, 91)),
            int(rng.integers(110, 221)),
            int(rng.integers(20, 91)),
        )
        if name not in corpus:
            out.append((name, pitch, rate, spread))
    return out


def write_extra(out: Path, n_voices: int, seed: int, sample_rate: int = 16000, duration: float = 4.0) -> list:
    """Two clips per (word, extra voice) under ``out/audio``; returns their manifest rows (split train)."""
    import soundfile as sf

    from soundsmith.data.synth.dsp import fade, set_loudness
    from soundsmith.data.synth.speech import LOUDNESS_RANGE, WORDS, espeak_word

    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    n = int(duration * sample_rate)
    rows = []
    for v, (name, pitch, rate, spread) in enumerate(extra_voices(n_voices, seed)):
        for word in WORDS:
            spoken = espeak_word(word, name, pitch, rate, spread, sample_rate)[:n].astype(np.float64)
            for k in range(2):
                clip = np.zeros(n)
                start = int(rng.uniform(0, 1) * (n - spoken.shape[0]))
                clip[start : start + spoken.shape[0]] = fade(spoken.copy(), sample_rate, 0.005, 0.005)
                audio, _ = set_loudness(clip, sample_rate, float(rng.uniform(*LOUDNESS_RANGE)))
                path = f"audio/{word}_{v:03d}_{k}.wav"
                sf.write(out / path, audio, sample_rate, subtype="PCM_16")
                rows.append(ManifestRow(
                    audio=f"extra/{path}", captions=[f'a voice says the word "{word}"'], labels=[f"speech_{word}"],
                    duration=duration, sample_rate=sample_rate, split="train",
                    meta={"id": f"extra-{word}-{v}-{k}", "family": "speech", "voice_name": name},
                ))  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--speech-clips", type=int, default=2400)
    ap.add_argument("--other-clips", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--extra-voices", type=int, default=0, help="espeak voices outside the corpus (train only)"
    )
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
    if args.extra_voices > 0:
        seen += write_extra(out / "extra", args.extra_voices, args.seed)
    write_manifest(out / "train.jsonl", seen)
    write_manifest(out / "unseen.jsonl", unseen)
    counts = {sp: sum(r.split == sp for r in seen) for sp in ("train", "valid", "test")}
    print(f"train.jsonl: {counts}; unseen.jsonl: {len(unseen)} clips (voices {sorted(holdout)})")


if __name__ == "__main__":
    main()
