"""Continue a latent-diffusion model's whole denoiser at a low LR on a manifest (the CPU recipe of docs/latent_diffusion.md),
or distil its classifier-free guidance into it (``--method guidance``, docs/latent_diffusion.md "Guidance distilled"),
or distil two of a one-pass model's steps into one (``--method steps``, docs/latent_diffusion.md "Steps distilled").

    python scripts/ld_continue.py DATA RUN --steps 6000 [--lr 5e-5] [--valid-every 500] [--minutes M] [--resume]
    python scripts/ld_continue.py DATA RUN --method guidance --guidance-range 1 4 --steps 4000 --lr 1e-4
    python scripts/ld_continue.py DATA RUN --method steps --student-steps 8 --guidance-range 1 4 --steps 2000

A thin driver of ``soundsmith.finetune`` for settings its CLI leaves to the planner (EMA, validation cadence,
batch 32 of 4 s crops, no prior clips). ``RUN/model`` is the latest checkpoint's EMA weights; kill it at any time
and continue with ``--resume`` (exact).
"""

import argparse
import logging

import torch

from soundsmith.finetune.run import FinetuneConfig, finetune

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("data")
p.add_argument("out")
p.add_argument("--base", default="default")
p.add_argument("--steps", type=int, default=6000)
p.add_argument("--lr", type=float, default=5e-5)
p.add_argument("--ema", type=float, default=0.998)
p.add_argument("--valid-every", type=int, default=500)
p.add_argument("--minutes", type=float, default=None)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--resume", action="store_true")
p.add_argument("--method", choices=["full", "guidance", "steps"], default="full")
p.add_argument("--student-steps", type=int, default=None)
p.add_argument("--guidance-range", type=float, nargs=2, default=[1.0, 5.0])
p.add_argument("--batch-size", type=int, default=32)
args = p.parse_args()
torch.set_num_threads(args.threads)
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
cfg = FinetuneConfig(
    base=args.base,
    method=args.method,
    guidance_range=list(args.guidance_range),
    student_steps=args.student_steps,
    prior=False,
    steps=args.steps,
    batch_size=args.batch_size,
    lr=args.lr,
    clip_seconds=4.0,
    ema_decay=args.ema,
    valid_fraction=0.02,
    valid_every=args.valid_every,
)
print(finetune(args.data, args.out, cfg, resume=args.resume, minutes=args.minutes))
