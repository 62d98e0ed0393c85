"""The step-distillation loss per student step (noisiest first), on held-out clips at one guidance scale: how far
each model's one step lands from where its teacher lands in two (docs/latent_diffusion.md, "Steps distilled").

    python scripts/step_distill_check.py --teacher work/ldm_sd_base --run runs/ld_sd --models teacher runs/ld_sd/model

``teacher`` as a model name scores the teacher itself as the student (where distillation starts). The clips are the
first ``--clips`` of the run's held-out split (``RUN/data/manifest.jsonl``), noised with one fixed draw.
"""

from __future__ import annotations

import argparse
import copy

import torch

from soundsmith.data import ClipDataset, collate_clips, read_manifest
from soundsmith.data.dataset import DataConfig
from soundsmith.finetune.run import StepObjective
from soundsmith.models.registry import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True, help="the run's base (the one-pass model it distils)")
    ap.add_argument("--run", required=True, help="the step-distillation run directory (its held-out clips)")
    ap.add_argument("--models", nargs="+", required=True, help="model directories, or 'teacher'")
    ap.add_argument("--student-steps", type=int, default=8)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = load_model(args.teacher).eval()
    teacher = copy.deepcopy(base.denoiser)
    manifest = read_manifest(f"{args.run}/data/manifest.jsonl")
    clips = DataConfig(sample_rate=int(base.config.sample_rate), clip_seconds=float(base.config.duration))
    data = ClipDataset(manifest, clips, split="valid", random_crop=False)
    batch0 = collate_clips([data[i] for i in range(min(args.clips, len(data)))])
    g = args.guidance
    for name in args.models:
        model = base if name == "teacher" else load_model(name).eval()
        objective = StepObjective(model, teacher, args.student_steps, [g, g + 1e-9])
        batch = objective.prepare_batch(dict(batch0))
        x0 = batch["latents"]
        n = len(x0)
        text = (batch["text_tokens"], batch["text_mask"], batch["text_pooled"])
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
        w = torch.full((n,), g)
        losses = []
        with torch.no_grad():
            for k in range(args.student_steps):
                pred, target = objective.student_pair(x0, noise, torch.full((n,), 2 * k), text, w)
                losses.append(float(torch.nn.functional.mse_loss(pred, target)))
        print(name, " ".join(f"{v:.4f}" for v in losses), f"mean {sum(losses) / len(losses):.4f}", flush=True)


if __name__ == "__main__":
    main()
