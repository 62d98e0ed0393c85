"""``soundsmith finetune DATA --out RUN``: fine-tune a latent-diffusion model on a folder of one's own clips.

Thin: the options become a :class:`soundsmith.finetune.FinetuneConfig` (options left out stay ``None`` and are
planned from the data), :func:`soundsmith.finetune.finetune` does the work, and the result is printed.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune a text-to-audio model on your own sounds (LoRA or full)",
        description="Fine-tune a latent-diffusion model on a folder of clips (captions from captions.csv, "
        "<clip>.txt files, the file names, or --caption). Bad clips are named and skipped. Writes RUN/model, "
        "which `soundsmith generate --model RUN` uses. A killed run continues with --resume. See docs/finetune.md.",
    )
    p.add_argument("data", metavar="DATA", help="folder of audio clips, or a manifest (.jsonl)")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory (checkpoints, logs, model/)")
    p.add_argument(
        "--base", help="model to fine-tune: shipped name, model or run directory (default: default)"
    )
    p.add_argument(
        "--method",
        choices=["lora", "full", "guidance", "steps"],
        help="LoRA adapters (default), the whole denoiser, guidance: distil the base's classifier-free "
        "guidance into its denoiser (one pass a step instead of two), or steps: distil two of a one-pass "
        "base's steps into one (docs/latent_diffusion.md)",
    )
    p.add_argument(
        "--student-steps",
        type=int,
        help="--method steps: the distilled model's steps (default half the base's)",
    )
    p.add_argument(
        "--guidance-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="--method guidance or steps: the guidance scales it learns (default 1 5)",
    )
    p.add_argument("--rank", type=int, help="LoRA rank (default 8)")
    p.add_argument("--steps", type=int, help="optimizer steps (default: from the number of clips, 100-2000)")
    p.add_argument("--minutes", type=float, help="stop after this much wall time (a checkpoint is kept)")
    p.add_argument("--batch-size", type=int, help="rows per step (default: up to 8)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3 LoRA, 1e-4 full)")
    p.add_argument("--caption", help="one caption for every clip (overrides captions.csv and file names)")
    p.add_argument("--trigger", help='text appended to every caption, e.g. "in the style of zapp"')
    p.add_argument(
        "--no-prior", action="store_true", help="no prior preservation (base-model clips mixed in to keep it)"
    )
    p.add_argument("--prior-clips", type=int, help="prior-preservation clips (default: half the clips, 4-32)")
    p.add_argument("--seed", type=int, help="seed of the split, adapters, crops and noise (default 0)")
    p.add_argument(
        "--resume", action="store_true", help="continue the fine-tune in RUN from its last checkpoint"
    )
    p.add_argument("--accelerator", help="cpu, cuda or auto (default auto)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soundsmith.finetune import FinetuneConfig, finetune

    keys = (
        "base",
        "method",
        "rank",
        "steps",
        "batch_size",
        "lr",
        "caption",
        "trigger",
        "prior_clips",
        "seed",
        "guidance_range",
        "student_steps",
    )
    given = {key: getattr(args, key) for key in (*keys, "accelerator") if getattr(args, key) is not None}
    if args.no_prior:
        given["prior"] = False
    result = finetune(args.data, args.out, FinetuneConfig(**given), resume=args.resume, minutes=args.minutes)
    best = (
        f"best validation loss {result.best_valid_loss:.4g} at step {result.best_step}"
        if result.best_valid_loss is not None
        else "no clips held out for validation (fewer than 6): the last step is kept"
    )
    stop = " (time budget spent)" if result.timed_out else ""
    kind = "LoRA adapter" if result.method == "lora" else "model"
    print(f"trained {result.step} of {result.max_steps} steps in {result.wall_seconds:.0f} s{stop}; {best}")
    print(f"{kind} written to {result.model_dir} ({result.model_bytes / 1e6:.2f} MB)")
    print(f'try: soundsmith generate "{result.example_caption}" --model {result.run_dir}')
    return 0
