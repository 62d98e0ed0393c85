"""Can a held note be re-pitched in the log-mel, before the vocoder, as well as the phase vocoder does it after?

For the corpus' held single notes of a split, each clip is shifted by -7, -3, +3 and +7 semitones two ways: (a) its
log-mel moved along the frequency axis (each mel centre takes the value at its frequency / 2^(s/12), interpolated
on the mel scale), then the shipped vocoder; (b) ``librosa.effects.pitch_shift`` (what ``tune`` does for a shift
up). Each result's note is read with ``soundsmith.pipelines.tune.measure_note`` and counted as landed when it is
within half a semitone of the source's note plus the shift. Printed per register of the source note
(docs/latent_diffusion.md, "Next", item 4).

    OMP_NUM_THREADS=2 python scripts/mel_shift_probe.py --manifest work/corpus_ld/manifest.jsonl --limit 24
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import librosa
import numpy as np
import soundfile as sf
import torch

import soundsmith
from soundsmith.audio.dsp import mel_spectrogram
from soundsmith.data.manifest import read_manifest
from soundsmith.pipelines.tune import measure_note

SHIFTS = (-7, -3, 3, 7)


def shift_mel(mel: torch.Tensor, semitones: float, centres_hz: np.ndarray) -> torch.Tensor:
    """Log-mel ``[B, n_mels, frames]`` with its content moved by ``semitones`` (centres below the lowest: the floor)."""
    ratio = 2.0 ** (semitones / 12.0)
    centres = librosa.hz_to_mel(centres_hz)
    source = librosa.hz_to_mel(np.maximum(centres_hz / ratio, 1e-3))
    index = np.interp(source, centres, np.arange(len(centres)))
    lo = np.floor(index).astype(int)
    hi = np.minimum(lo + 1, len(centres) - 1)
    w = torch.tensor(index - lo, dtype=mel.dtype)[:, None]
    out = mel[:, lo, :] * (1 - w) + mel[:, hi, :] * w
    out[:, centres_hz / ratio < centres_hz[0], :] = mel.min()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--model", default="default", help="whose vocoder and mel settings")
    args = ap.parse_args()
    pipe = soundsmith.load(args.model)
    model, mc = pipe.model, pipe.model.mel_config()
    centres_hz = librosa.mel_frequencies(n_mels=mc.n_mels, fmin=mc.fmin, fmax=mc.fmax)
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
                "log-mel, then the vocoder": model.mel_to_audio(shift_mel(mel, s, centres_hz), len(audio))[
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
