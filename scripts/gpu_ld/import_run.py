"""Turn the EMA weights that ``scripts/gpu_ld/train.py`` wrote into a model directory that everything loads.

    python scripts/gpu_ld/import_run.py --weights /work/.device/.../last --like runs/latent_diffusion/model \
        --out runs/latent_diffusion_gpu/model

``--weights`` is the prefix of the ``<tag>_0.safetensors`` / ``<tag>_1.safetensors`` halves; ``--like`` a model
directory of the same config (the run whose ``model/config.json`` went into the pack), whose frozen parts (VAE,
vocoder, text encoder) the new directory references too; ``--guidance-embed`` for a guidance-distilled student
(``glast`` / ``gbest``): ``--like``'s denoiser gets the guidance-scale input first. ``extra`` records the step and ``log.json``'s figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from soundsmith.models.registry import load_model, read_model_config, save_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, required=True, help="prefix of the two halves (…/last)")
    ap.add_argument("--like", type=Path, required=True, help="model directory with the same config")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--guidance-embed",
        action="store_true",
        help="the weights are a guidance-distilled student (train.py --distill-s: glast / gbest) of --like's denoiser",
    )
    args = ap.parse_args()
    halves = [args.weights.with_name(f"{args.weights.name}_{i}.safetensors") for i in (0, 1)]
    state = {}
    for h in halves:
        state.update(load_file(str(h)))
    with safe_open(str(halves[0]), "pt") as f:
        step = int(f.metadata()["step"])
    model = load_model(args.like)
    if args.guidance_embed:
        model.denoiser.add_guidance_input()
    own = {k: v for k, v in model.state_dict().items() if k.startswith("denoiser.")}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise SystemExit(
            f"weights do not match {args.like}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    log_path = args.weights.parent / "log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    extra = {
        **read_model_config(args.like).get("extra", {}),
        "step": step,
        "ema": True,
        "trained_by": "scripts/gpu_ld/train.py",
        "gpu_log": {
            k: log.get(k)
            for k in ("gpu", "args", "flow_step_s", "flow_total_steps", "steps", "train_clips", "valid")
            + (("distill_step_s", "distill_steps", "distill", "distill_valid") if args.guidance_embed else ())
        },
    }
    save_model(model, args.out, extra=extra)
    print(f"{args.out}: step {step}, {sum(v.numel() for v in state.values()):,} parameters")


if __name__ == "__main__":
    main()
