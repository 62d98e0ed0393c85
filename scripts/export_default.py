"""Ship a latent-diffusion run as the default model: ``models/default`` with fp16 weight storage (``--storage int8``:
int8 weight matrices with a scale per row; loading converts back to float32), the default sampling steps and
guidance written into its config, and how far the storage moves a generation printed.

    python scripts/export_default.py --run runs/latent_diffusion --steps 6 --guidance 3 [--compute int8]
    python scripts/export_default.py --run RUN --out models/my_default \
        --settings configs/latent_diffusion/pipeline/default.yaml    # the shipped default's sampling and pipeline


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


# the fields a settings file may set: how the model samples and what its pipeline does, not what it is
NOT_SETTINGS = {"denoiser", "vae", "vocoder", "text_encoder", "sample_rate", "num_train_timesteps", "beta_schedule",
                "beta_start", "beta_end", "shift", "timestep_sampling", "cond_drop_prob", "latent_sample"}  # fmt: skip


def read_settings(path: Path | None) -> dict:
    """A settings YAML's fields (``{}`` without one); an unknown or structural field is a one-line error."""
    if path is None:
        return {}
    import yaml

    from soundsmith.models.latent_diffusion import LatentDiffusionConfig

    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"export_default: cannot read --settings {path}: {exc}") from None
    known = {f.name for f in dataclasses.fields(LatentDiffusionConfig)} - NOT_SETTINGS
    wrong = sorted(k for k in settings if k not in known) if isinstance(settings, dict) else ["(not a mapping)"]
    if wrong:
        raise SystemExit(f"export_default: --settings {path}: {wrong} are not settings; valid: {sorted(known)}")
    if isinstance(settings.get("guidance_interval"), list):
        settings["guidance_interval"] = tuple(settings["guidance_interval"])
    return settings


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
        "--settings",
        type=Path,
        help="YAML of sampling/pipeline fields of LatentDiffusionConfig to write (the flags above win over it)",
    )
    ap.add_argument(
        "--storage",
        choices=["float16", "int8"],
        default="float16",
        help="weight storage: fp16, or int8 weight matrices with a scale per row (half the size)",
    )
    args = ap.parse_args()
    settings = read_settings(args.settings)
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
    changes = {**settings, **{k: v for k, v in given.items() if v is not None}}
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
