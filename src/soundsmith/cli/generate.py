"""``soundsmith generate``: text in, audio file out, through the model family's declared pipeline."""

from __future__ import annotations

import argparse

# Kept in step with soundsmith.pipelines.base (tests/cli checks it) so that `--help` need not import torch.
DEFAULT_DURATION_S = 1.0
MAX_DURATION_S = 600.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate audio from a text prompt", description="Generate audio from text."
    )
    p.add_argument("prompt", help='what to generate, e.g. "three beeps over steady rain"')
    p.add_argument(
        "--model",
        default="default",
        help="model directory, run directory, or shipped model name (`soundsmith models list` lists them)",
    )
    p.add_argument("--out", default="out.wav", help="output audio file (.wav, .flac, .ogg)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help=f"seconds to generate (default: {DEFAULT_DURATION_S:g}, unless the model's pipeline sets its own; "
        f"at most {MAX_DURATION_S:g})",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--num-candidates", type=int, default=1, help="candidates to generate (out-0.wav, out-1.wav...)"
    )
    p.add_argument("--steps", type=int, help="sampler steps (diffusion families)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (diffusion families)")
    p.add_argument("--temperature", type=float, help="sampling temperature (autoregressive families)")
    p.add_argument("--top-k", type=int, help="top-k sampling (autoregressive families)")
    p.add_argument("--top-p", type=float, help="nucleus sampling (autoregressive families)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soundsmith.errors import ModelError
    from soundsmith.models.registry import shipped_models
    from soundsmith.pipelines import load_pipeline

    shipped = shipped_models()
    if args.model == "default" and "default" not in shipped:
        names = ", ".join(shipped) or "none"
        raise ModelError(
            f"there is no default generator yet; give --model a run or model directory (shipped models: {names})"
        )
    pipe = load_pipeline(args.model, device=args.device)
    family_kwargs = {
        k: v
        for k, v in {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}.items()
        if v is not None
    }
    result = pipe(
        args.prompt,
        duration=args.duration,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        num_candidates=args.num_candidates,
        **family_kwargs,
    )
    for path in result.save(args.out):
        print(path)
    return 0
