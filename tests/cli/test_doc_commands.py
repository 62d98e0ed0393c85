"""Every `soundsmith ...` command written in README.md and docs/*.md parses with the real CLI (flags, choices,
subcommands): documentation that drifts from the code fails here, named by file and line.

Commands are read from fenced code blocks, with `\\` continuations joined, `# comments` and `VAR=value` prefixes
dropped, `[--optional FLAG]` usage notation removed, and `.venv/bin/soundsmith` / `python -m soundsmith` accepted.
Lines with `...` are skipped; placeholders such as `MODEL_DIR` parse as they are (argparse checks only the syntax).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from soundsmith.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PREFIX = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:\.venv/bin/|python -m\s+)?soundsmith\s")


def doc_commands() -> list[tuple[str, str]]:
    """``(where, command)`` for each soundsmith command in a fenced block of the docs."""
    found = []
    for path in DOCS:
        in_block, pending, start = False, "", 0
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if raw.lstrip().startswith("```"):
                in_block, pending = not in_block, ""
                continue
            if not in_block:
                continue
            line = raw.strip()
            if pending:
                line, start = pending + " " + line, start
            else:
                start = number
            if line.endswith("\\"):
                pending = line[:-1].strip()
                continue
            pending = ""
            for part in re.split(r"\s+(?:&&|;)\s+", line):
                if PREFIX.match(part) and "..." not in part:
                    found.append((f"{path.relative_to(ROOT)}:{start}", part))
    return found


def _argv(command: str) -> list[str]:
    command = re.sub(r"\s\[[^\]]*\]", "", command)  # usage notation: [--flag VALUE] is optional
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=\S+", words[0]):
        words.pop(0)
    if words[:2] == ["python", "-m"]:
        words = words[2:]
    assert words[0].endswith("soundsmith")
    return words[1:]


COMMANDS = doc_commands()


def test_the_docs_hold_many_commands():
    assert len(COMMANDS) >= 30, COMMANDS  # the scan itself works (README alone has ~20)
    assert any("generate" in c for _, c in COMMANDS) and any("finetune" in c for _, c in COMMANDS)


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where, command):
    parser = build_parser()
    try:
        parser.parse_args(_argv(command))
    except SystemExit as e:  # argparse's way of saying the flags or choices are wrong
        pytest.fail(f"{where}: `{command}` does not parse with the CLI (exit {e.code})")
