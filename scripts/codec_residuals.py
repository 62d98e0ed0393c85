"""How much of a codec's latent each RVQ stage leaves: the latent's mean square and the mean squared residual after
every stage, on the first valid clips of a manifest (docs/codec_lm.md, "The commitment loss is the latent's scale").

    python scripts/codec_residuals.py --codec work/codec_model --manifest work/corpus_ld/manifest.jsonl --clips 16

The training log's commitment loss is the mean over stages of these residuals, so it grows with the latent's
scale; the relative figures say whether the quantizer is losing ground.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from soundsmith.audio import load_audio
from soundsmith.data import read_manifest
from soundsmith.models.registry import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codec", type=Path, required=True, help="codec model directory")
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    codec = load_model(args.codec).eval()
    sr = codec.config.sample_rate
    manifest = read_manifest(args.manifest)
    rows = manifest.split("valid")[: args.clips]
    if not rows:
        raise SystemExit(f"{args.manifest} has no valid-split clips")
    n = int(round(args.seconds * sr))
    audio = np.zeros((len(rows), n), np.float32)
    for i, r in enumerate(rows):
        x, _ = load_audio(r.audio_path(manifest.root), sample_rate=sr)
        audio[i, : min(n, len(x))] = x[:n]
    with torch.no_grad():
        z = codec.embed(torch.from_numpy(audio))
        power = float(z.pow(2).mean())
        residuals = codec.quantizer.residual_norms(z)
    print(f"{len(rows)} clips: latent mean square {power:.3f}")
    print("stage | residual mean square | relative")
    for k, r in enumerate(residuals, 1):
        print(f"{k} | {r:.4f} | {r / power:.2%}")
    print(f"mean over stages (the logged commitment loss): {np.mean(residuals):.3f}")


if __name__ == "__main__":
    main()
