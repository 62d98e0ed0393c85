"""``soundsmith codec encode IN.wav -o tokens.npz`` / ``soundsmith codec decode tokens.npz -o OUT.wav``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "codec", help="audio <-> codec tokens", description="Encode audio to codec tokens or back."
    )
    actions = p.add_subparsers(dest="codec_command", metavar="ACTION")
    actions.required = True
    enc = actions.add_parser("encode", help="audio file -> token file (.npz)")
    enc.add_argument("input", help="audio file (any rate; mixed to mono)")
    enc.add_argument("-o", "--out", required=True, help="token file to write (.npz)")
    enc.add_argument("--model", default="codec", help="codec: model or run directory, or shipped name")
    enc.add_argument("--n-q", type=int, default=None, help="codebooks to keep (lower bitrate); default all")
    enc.set_defaults(func=run_encode)
    dec = actions.add_parser("decode", help="token file -> audio file")
    dec.add_argument("input", help="token file written by `soundsmith codec encode`")
    dec.add_argument("-o", "--out", required=True, help="audio file to write")
    dec.add_argument("--model", default=None, help="codec (default: the one recorded in the token file)")
    dec.set_defaults(func=run_decode)


def run_encode(args: argparse.Namespace) -> int:
    from soundsmith.pipelines.codec import encode_file

    print(f"wrote {encode_file(args.input, args.out, args.model, args.n_q)}")
    return 0


def run_decode(args: argparse.Namespace) -> int:
    from soundsmith.pipelines.codec import decode_file

    print(f"wrote {decode_file(args.input, args.out, args.model)}")
    return 0
