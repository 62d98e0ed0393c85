"""``soundsmith wavenet``: a front end with tensorflow-wavenet's flag names (train.py / generate.py)."""

from __future__ import annotations

import argparse


def available() -> bool:
    return False


def add_parser(sub: argparse._SubParsersAction) -> None:  # pragma: no cover - filled in with the WaveNet family
    raise NotImplementedError
