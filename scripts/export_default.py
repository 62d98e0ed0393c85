"""Ship a latent-diffusion run as the default model: ``models/default`` with fp16 weight storage (``--storage int8``:
int8 weight matrices with a scale per row; loading converts back to float32), the default sampling steps and
guidance written into its config, and how far the storage moves a generation printed.

    python scripts/export_default.py --run runs/latent_diffusion --steps 6 --guidance 3 [--compute int8]

(``--run`` may also be a model directory, e.g. one that ``scripts/gpu_ld/import_run.py`` wrote.)
The run's ``model/`` holds the EMA weights of its newest checkpoint (the engine exports EMA when it is on).
Frozen parts (VAE, vocoder, text encoder) stay references to the shipped ones (``{"shipped": "vae"}``).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import numpy as np

from soundsmith.models.latent_diffusion import COMPUTES
from soundsmith.models.registry import load_model, read_model_config, save_model
from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("three beeps over steady rain", 2.0, 0)  # prompt, seconds, seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="latent-diffusion run directory")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "default")
    ap.add_argument("--steps", type=int, help="default sampling steps (else the run's)")
    ap.add_argument("--guidance", type=float, help="default guidance scale (else the run's)")
    ap.add_argument("--sampler", help="default sampler (else the run's)")
    ap.add_argument(
        "--sample-shift", type=float, help="the sampler's timestep shift (else the training shift)"
    )
    ap.add_argument(
        "--compute",
        choices=COMPUTES,
        help="the denoiser's default arithmetic when sampling on the CPU (else the run's): float32 or int8",
    )
    ap.add_argument("--context-seconds", type=float, help="the trained clip length (windows, crops)")
    ap.add_argument(
        "--storage",
        choices=["float16", "int8"],
        default="float16",
        help="weight storage: fp16, or int8 weight matrices with a scale per row (half the size)",
    )
    args = ap.parse_args()
    source = args.run / "model" if (args.run / "model" / "config.json").exists() else args.run
    model = load_model(source).eval()
    given = {
        "steps": args.steps,
        "guidance": args.guidance,
        "sampler": args.sampler,
        "sample_shift": args.sample_shift,
        "context_seconds": args.context_seconds,
        "compute": args.compute,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    model.config = dataclasses.replace(model.config, **changes)
    prompt, seconds, seed = PROBE
    ref = LatentDiffusionPipeline(model)(prompt, duration=seconds, seed=seed, progress=False).audio[0]
    extra = {
        **read_model_config(source).get("extra", {}),
        "storage": args.storage,
        "exported_from": str(args.run),
    }
    if args.out.exists():
        shutil.rmtree(args.out)
    save_model(model.half(), args.out, extra=extra, storage="int8" if args.storage == "int8" else "as_saved")
    size = sum(p.stat().st_size for p in args.out.rglob("*.safetensors")) / 1e6
    reloaded = load_model(args.out).eval()
    got = LatentDiffusionPipeline(reloaded)(prompt, duration=seconds, seed=seed, progress=False).audio[0]
    moved = float(np.abs(got - ref).max())
    print(f"exported {args.run} -> {args.out}: {size:.2f} MB of weights, config {changes or 'unchanged'}")
    print(
        f"{args.storage} storage moves {prompt!r} ({seconds:g} s, seed {seed}) by at most {moved:.2e} (peak {np.abs(ref).max():.2f})"
    )


if __name__ == "__main__":
    main()
