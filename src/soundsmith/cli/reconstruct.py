"""``soundsmith reconstruct IN.wav -o OUT.wav``: hear what the mel VAE and the vocoder keep of a sound."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="round-trip audio through the mel VAE and the vocoder",
        description="Audio -> log-mel -> mel VAE -> vocoder -> audio (the shipped models unless named).",
    )
    p.add_argument("input", help="audio file to reconstruct (any rate; mixed to mono)")
    p.add_argument("-o", "--out", required=True, help="output audio file (written at the models' rate)")
    p.add_argument(
        "--vocoder",
        default="vocoder",
        help="vocoder: shipped name, model or run directory, or 'griffin-lim' (64 iterations); default vocoder",
    )
    p.add_argument("--vae", default="vae", help="mel VAE: shipped name, model or run directory; default vae")
    p.add_argument("--no-vae", action="store_true", help="vocode the input's mel directly (vocoder only)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soundsmith.pipelines.reconstruct import reconstruct_file

    path = reconstruct_file(
        args.input, args.out, vocoder=args.vocoder, vae=None if args.no_vae else args.vae, device=args.device
    )
    print(f"wrote {path}")
    return 0
