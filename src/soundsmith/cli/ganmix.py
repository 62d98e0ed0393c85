"""``soundsmith ganmix interpolate A B --steps 8 --out DIR``: walk GANmix's latent space between two prompts or
two seeds; writes ``step-00.wav`` ... and ``strip.png`` (a spectrogram strip). The work is
``GANmixPipeline.interpolate`` + ``pipelines.ganmix.save_interpolation``; this module only parses and prints."""

from __future__ import annotations

import argparse

DEFAULT_MODEL = "ganmix"  # the shipped GANmix model's name, once it ships (docs/ganmix.md)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ganmix", help="GANmix tools (latent-space interpolation)", description=__doc__)
    gsub = p.add_subparsers(dest="ganmix_command", metavar="ACTION")
    gsub.required = True
    i = gsub.add_parser(
        "interpolate",
        help="clips between two prompts (or two integer seeds with --prompt) + a spectrogram strip",
        description="Two prompts: their text embeddings are mixed, the noise is --seed's. Two integers: two seeds, "
        "their noises mixed spherically, the text is --prompt's.",
    )
    i.add_argument("a", help='first prompt ("a dog barks") or seed (an integer)')
    i.add_argument("b", help="second prompt or seed")
    i.add_argument("--steps", type=int, default=8, help="clips on the path, both ends included (default 8)")
    i.add_argument("--out", required=True, help="output folder (step-NN.wav and strip.png)")
    i.add_argument("--model", default=DEFAULT_MODEL, help="GANmix run or model directory, or shipped name")
    i.add_argument("--prompt", help="with two seeds: the prompt they share")
    i.add_argument("--seed", type=int, default=0, help="with two prompts: the noise seed they share")
    i.add_argument("--duration", type=float, help="seconds per clip (default: the model's training crop)")
    i.add_argument("--device", default="cpu")
    i.set_defaults(func=run_interpolate)


def _seed_or_prompt(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def run_interpolate(args: argparse.Namespace) -> int:
    from soundsmith.errors import ConfigError
    from soundsmith.pipelines import load_pipeline
    from soundsmith.pipelines.ganmix import GANmixPipeline, save_interpolation

    a, b = _seed_or_prompt(args.a), _seed_or_prompt(args.b)
    if type(a) is not type(b):
        raise ConfigError(f"give two prompts or two integer seeds, got {args.a!r} and {args.b!r}")
    pipe = load_pipeline(args.model, device=args.device)
    if not isinstance(pipe, GANmixPipeline):
        raise ConfigError(
            f"--model {args.model}: a {pipe.family or 'non-generator'} model; interpolate needs GANmix"
        )
    result = pipe.interpolate(a, b, args.steps, prompt=args.prompt, seed=args.seed, duration=args.duration)
    for path in save_interpolation(result, args.out):
        print(path)
    return 0
