"""How much of a note's pitch, and of a clip's count of events, survives a latent model's decoder: real test clips
that ask for a pitch (tracked by the evaluation's own check, pYIN median within 50 cents) or a count (the
evaluation's event counter, exact), through each stage of the decoding chain.

    python scripts/decoder_pitch.py --model models/default --manifest work/corpus_ld/manifest.jsonl --limit 200

Columns: the original clip; the vocoder on the clip's own log-mel (no VAE); the VAE's posterior mean decoded and
vocoded (what ``strength=0`` returns: the ceiling of any denoiser); the VAE's mel through Griffin-Lim instead of
the vocoder. Also the signed semitone errors that occur most, which tell a tracker's octave confusions from a
drifting decoder.
"""

from __future__ import annotations

import argparse
import collections
import json

import numpy as np
import torch

from soundsmith.audio import load_audio, mel_spectrogram
from soundsmith.audio.dsp import griffin_lim
from soundsmith.data.manifest import read_manifest
from soundsmith.eval.adherence import PITCH_TOLERANCE_CENTS, asks_from_events
from soundsmith.eval.attributes import count_events
from soundsmith.eval.pitch import cents_error, track_pitch
from soundsmith.models.registry import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="a latent model (directory or shipped name)")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument(
        "--limit", type=int, default=200, help="clips of the split read (those asking a pitch kept)"
    )
    ap.add_argument("--gl-iters", type=int, default=32)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    model = load_model(args.model).eval()
    sr, mel_cfg = model.config.sample_rate, model.mel_config()
    m = read_manifest(args.manifest)
    rows = [r for r in m if r.split == args.split][: args.limit]
    stages = ("original", "vocoder", "vae_vocoder", "vae_griffin_lim")
    errors: dict[str, list[float]] = {s: [] for s in stages}
    count_errors: dict[str, list[int]] = {s: [] for s in stages}
    for row in rows:
        asks = asks_from_events(row.meta.get("events", []), row.meta.get("family"))
        if "pitch" not in asks and "count" not in asks:
            continue
        audio, _ = load_audio(row.audio_path(m.root), sample_rate=sr, mono=True)
        x = torch.from_numpy(audio)[None].float()
        with torch.no_grad():
            mel = mel_spectrogram(x, mel_cfg)
            vae_mel = model.latents_to_mel(model.audio_to_latents(x), mel.shape[-1]).float()
            outs = {
                "original": audio,
                "vocoder": model.mel_to_audio(mel, x.shape[-1])[0].float().numpy(),
                "vae_vocoder": model.mel_to_audio(vae_mel, x.shape[-1])[0].float().numpy(),
                "vae_griffin_lim": np.asarray(
                    griffin_lim(vae_mel[0], mel_cfg, n_iter=args.gl_iters), dtype=np.float32
                ).reshape(-1)[: x.shape[-1]],
            }
        for stage, y in outs.items():
            if "pitch" in asks:
                median = track_pitch(y, sr).median_midi()
                errors[stage].append(median - asks["pitch"] if np.isfinite(median) else float("nan"))
            if "count" in asks:
                count_errors[stage].append(count_events(y, sr) - int(asks["count"]))
    figures: dict = {"model": str(args.model), "clips": len(errors["original"])}
    print(f"{figures['clips']} test clips asking for a pitch ({args.manifest}, {args.split})")
    print("| stage | within 50 cents | no pitch found | most frequent errors (semitones: clips) |")
    print("|---|---|---|---|")
    for stage in stages:
        e = np.array(errors[stage])
        ok = np.array([cents_error(v, 0.0) <= PITCH_TOLERANCE_CENTS for v in e])  # NaN (no pitch): a miss
        no_pitch = int((~np.isfinite(e)).sum())
        common = collections.Counter(int(round(v)) for v in e if np.isfinite(v)).most_common(5)
        figures[stage] = {"within_50_cents": float(ok.mean()), "no_pitch": no_pitch}
        figures[stage]["errors"] = {str(k): n for k, n in common}
        print(f"| {stage} | {ok.mean():.3f} | {no_pitch} | "
              f"{', '.join(f'{k:+d}: {n}' for k, n in common)} |")  # fmt: skip
    figures["count_clips"] = len(count_errors["original"])
    print(f"\n{figures['count_clips']} test clips asking for a count")
    print("| stage | counted exactly | most frequent errors (events: clips) |")
    print("|---|---|---|")
    for stage in stages:
        c = np.array(count_errors[stage])
        common = collections.Counter(c.tolist()).most_common(5)
        figures[stage]["count_exact"] = float((c == 0).mean()) if c.size else float("nan")
        print(
            f"| {stage} | {figures[stage]['count_exact']:.3f} | {', '.join(f'{k:+d}: {n}' for k, n in common)} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
