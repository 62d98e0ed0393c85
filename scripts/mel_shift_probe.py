"""Can a held note be re-pitched in the log-mel, before the vocoder, as well as the phase vocoder does it after?

For the corpus' held single notes of a split, each clip is shifted by -7, -3, +3 and +7 semitones two ways: (a) its
log-mel moved along the frequency axis (``soundsmith.audio.dsp.shift_log_mel``), then the shipped vocoder; (b) ``librosa.effects.pitch_shift`` (what ``tune`` does for a shift
up). Each result's note is read with ``soundsmith.pipelines.tune.measure_note`` and counted as landed when it is
within half a semitone of the source's note plus the shift. Printed per register of the source note
(docs/latent_diffusion.md, "Next", item 4).

    OMP_NUM_THREADS=2 python scripts/mel_shift_probe.py --manifest work/corpus_ld/manifest.jsonl --limit 24
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import librosa
import soundfile as sf
import torch

import soundsmith
from soundsmith.audio.dsp import mel_spectrogram, shift_log_mel
from soundsmith.data.manifest import read_manifest
from soundsmith.pipelines.tune import measure_note

SHIFTS = (-7, -3, 3, 7)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--model", default="default", help="whose vocoder and mel settings")
    args = ap.parse_args()
    pipe = soundsmith.load(args.model)
    model, mc = pipe.model, pipe.model.mel_config()
    manifest = read_manifest(args.manifest)
    rows = [
        r
        for r in manifest.rows
        if r.split == args.split
        and r.meta.get("family") == "instruments"
        and (r.meta.get("events") or [{}])[0].get("phrase") == "single_note"
    ][: args.limit]
    landed: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        audio, sr = sf.read(str(row.audio_path(manifest.root)), dtype="float32")
        note = measure_note(audio, sr)
        if note is None:
            continue
        band = "below C4" if note < 60 else "C4-B4" if note < 72 else "C5 and up"
        mel = mel_spectrogram(torch.from_numpy(audio)[None], mc)
        for s in SHIFTS:
            made = {
                "log-mel, then the vocoder": model.mel_to_audio(shift_log_mel(mel, s, mc), len(audio))[
                    0
                ].numpy(),
                "phase vocoder": librosa.effects.pitch_shift(audio, sr=sr, n_steps=s, res_type="soxr_hq"),
            }
            for way, out in made.items():
                got = measure_note(out, sr)
                landed[way][band].append(got is not None and abs(got - (note + s)) <= 0.5)
    for way, bands in landed.items():
        cells = ", ".join(f"{band} {sum(v)}/{len(v)}" for band, v in sorted(bands.items()))
        total = [x for v in bands.values() for x in v]
        print(f"{way}: landed within half a semitone {sum(total)}/{len(total)} ({cells})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
