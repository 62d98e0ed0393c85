"""Accuracy of the pitch trackers on corpus notes with known MIDI pitch (docs/evaluation.md).

Clips: single notes and repeated notes of the instruments, and the pitched events (sine tone, buzzer, beeps,
bell), from a corpus manifest (not scenes). Prints per method: median |cents error| of the clip's median f0,
share within 50 cents, share with no pitch found, seconds per clip; and per instrument/event class.

  python scripts/pitch_accuracy.py --manifest work/keyword/other/manifest.jsonl --limit 200 --methods pyin crepe

torchcrepe imports torchaudio only to read files; when the installed torchaudio cannot load (no build matches
torch here), ``--stub-torchaudio`` puts an empty module in its place for this measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from collections import defaultdict

import numpy as np

from soundsmith.audio import load_audio
from soundsmith.data import read_manifest
from soundsmith.eval.pitch import cents_error, track_pitch

PITCHED_EVENTS = ("sine_tone", "buzzer", "beeps", "bell")
NOTE_PHRASES = ("single_note", "repeated_note")


def note_clips(manifest: str, limit: int) -> list[tuple[str, str, int]]:
    """``(path, class, midi_pitch)`` of single-item clips with one known pitch."""
    m = read_manifest(manifest)
    out = []
    for row in m.rows:
        if row.meta.get("family") not in ("events", "instruments"):
            continue
        (ev,) = row.meta["events"][:1]
        name = ev.get("instrument") or ev["class"]
        if ev.get("midi_pitch") is None:
            continue
        if ev.get("instrument") and ev.get("phrase") not in NOTE_PHRASES:
            continue
        if not ev.get("instrument") and ev["class"] not in PITCHED_EVENTS:
            continue
        out.append((str(row.audio_path(m.root)), name, int(ev["midi_pitch"])))
    return out[:limit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--methods", nargs="+", default=["pyin", "crepe"])
    ap.add_argument("--stub-torchaudio", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.stub_torchaudio:
        try:
            import torchaudio  # noqa: F401
        except (ImportError, OSError):
            sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    clips = note_clips(args.manifest, args.limit)
    results = {}
    for method in args.methods:
        errors, by_class, t0 = [], defaultdict(list), time.perf_counter()
        for path, name, midi in clips:
            audio, sr = load_audio(path, sample_rate=16000)
            err = cents_error(track_pitch(audio, sr, method).median_midi(), midi)
            errors.append(err)
            by_class[name].append(err)
        seconds = (time.perf_counter() - t0) / max(len(clips), 1)
        e = np.asarray(errors)

        def figures(v: np.ndarray) -> dict:
            f = v[np.isfinite(v)]
            return {
                "n": int(v.size),
                "median_cents": float(np.median(f)) if f.size else None,
                "within_50_cents": float((f <= 50).sum() / max(v.size, 1)),
                "no_pitch": float((~np.isfinite(v)).mean()) if v.size else 0.0,
            }

        results[method] = figures(e) | {"seconds_per_clip": seconds}
        results[method]["per_class"] = {k: figures(np.asarray(v)) for k, v in sorted(by_class.items())}
        print(method, json.dumps({k: v for k, v in results[method].items() if k != "per_class"}))
        for k, v in results[method]["per_class"].items():
            print(f"  {k:16s} n={v['n']:3d} within50={v['within_50_cents']:.2f} median={v['median_cents']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
