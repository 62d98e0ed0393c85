"""``soundsmith generate``: text in, WAV out."""

from __future__ import annotations

import argparse

MAX_DURATION_S = 120.0


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("soundsmith.pipelines.wavenet") is not None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate audio from a text prompt", description="Generate audio from text."
    )
    p.add_argument("prompt", help='what to generate, e.g. "three beeps over steady rain"')
    p.add_argument("--model", default="default", help="model directory, run directory, or shipped model name")
    p.add_argument("--out", default="out.wav", help="output audio file (.wav, .flac, .ogg)")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: the model's)")
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
    from soundsmith.pipelines import load_pipeline

    pipe = load_pipeline(args.model, device=args.device)
    kwargs = {
        k: v
        for k, v in {
            "duration": args.duration,
            "steps": args.steps,
            "guidance": args.guidance,
            "temperature": args.temperature,
            "top_k": args.top_k,
            "top_p": args.top_p,
        }.items()
        if v is not None
    }
    result = pipe(args.prompt, seed=args.seed, num_candidates=args.num_candidates, **kwargs)
    for path in result.save(args.out):
        print(path)
    return 0
