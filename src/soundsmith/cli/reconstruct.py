"""``soundsmith reconstruct IN.wav -o OUT.wav``: hear what the mel VAE and the vocoder (or, with ``--model``, a
codec) keep of a sound."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="round-trip audio through the mel VAE and the vocoder, or through a codec",
        description="Audio -> log-mel -> mel VAE -> vocoder -> audio (the shipped models unless named); with "
        "--model CODEC, audio -> codec tokens -> audio instead.",
    )
    p.add_argument("input", help="audio file to reconstruct (any rate; mixed to mono)")
    p.add_argument("-o", "--out", required=True, help="output audio file (written at the models' rate)")
    p.add_argument(
        "--vocoder",
        default=None,
        help="vocoder: shipped name, model or run directory, or 'griffin-lim' (64 iterations); default vocoder",
    )
    p.add_argument("--vae", default=None, help="mel VAE: shipped name, model or run directory; default vae")
    p.add_argument("--no-vae", action="store_true", help="vocode the input's mel directly (vocoder only)")
    p.add_argument(
        "--refine",
        type=int,
        default=None,
        help="rounds that move the vocoder's magnitudes to the mel, keeping its phase (default 8; 0: off)",
    )
    p.add_argument(
        "--no-level-match",
        action="store_true",
        help="keep the vocoder's own output level (by default each clip is scaled to the level of its mel)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="a codec (model or run directory): round-trip through its tokens instead",
    )
    p.add_argument("--n-q", type=int, default=None, help="with --model: the first N codebooks (default all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soundsmith.errors import ConfigError

    if args.model is not None:
        if args.vocoder is not None or args.vae is not None or args.no_vae or args.no_level_match or args.refine is not None:
            raise ConfigError(
                "--vocoder, --vae, --no-vae, --refine and --no-level-match choose the mel path; a codec (--model) "
                "replaces it"
            )
        from soundsmith.pipelines.codec import reconstruct_file as codec_file

        print(f"wrote {codec_file(args.input, args.out, args.model, n_q=args.n_q, device=args.device)}")
        return 0
    if args.n_q is not None:
        raise ConfigError("--n-q counts a codec's codebooks: give the codec with --model")
    from soundsmith.pipelines.reconstruct import GRIFFIN_LIM, reconstruct_file

    if args.vocoder == GRIFFIN_LIM and (args.refine is not None or args.no_level_match):
        raise ConfigError("--refine and --no-level-match work on a neural vocoder's output; Griffin-Lim has none")
    path = reconstruct_file(
        args.input,
        args.out,
        vocoder=args.vocoder or "vocoder",
        vae=None if args.no_vae else args.vae or "vae",
        device=args.device,
        level_match=not args.no_level_match,
        **({} if args.refine is None else {"refine": args.refine}),
    )
    print(f"wrote {path}")
    return 0
