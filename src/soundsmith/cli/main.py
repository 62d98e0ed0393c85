"""The ``soundsmith`` command: parse arguments, call the library, print.

Exit codes: 0 success, 1 user error (one line on stderr, traceback only with --debug), 2 usage error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from soundsmith import __version__
from soundsmith.cli import codec as codec_cmd
from soundsmith.cli import data as data_cmd
from soundsmith.cli import evaluate as evaluate_cmd
from soundsmith.cli import finetune as finetune_cmd
from soundsmith.cli import ganmix as ganmix_cmd
from soundsmith.cli import generate as generate_cmd
from soundsmith.cli import models as models_cmd
from soundsmith.cli import reconstruct as reconstruct_cmd
from soundsmith.cli import serve as serve_cmd
from soundsmith.cli import train as train_cmd
from soundsmith.cli import wavenet as wavenet_cmd

# Each module adds its subcommand(s) with `add_parser(subparsers)` and sets `func` on the namespace.
COMMANDS = [
    data_cmd,
    train_cmd,
    finetune_cmd,
    generate_cmd,
    evaluate_cmd,
    models_cmd,
    serve_cmd,
    wavenet_cmd,
    ganmix_cmd,
    codec_cmd,
    reconstruct_cmd,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soundsmith",
        description="Train, run and evaluate text-to-audio models.",
    )
    parser.add_argument("--version", action="version", version=f"soundsmith {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from soundsmith.errors import SoundsmithError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.debug else "%(message)s",
    )
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SoundsmithError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        if args.debug:
            raise
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
