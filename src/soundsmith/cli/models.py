"""``soundsmith models list|show|card``: the declared families and shipped models; a model's card.

``models show NAME_OR_DIR`` prints a model's card (``soundsmith.models.card``: family, size, training data and its
classes, figures), or its config, size and hash when it has no card. ``models card MODEL_DIR --data MANIFEST``
writes the card from the manifest the model was trained on (docs/model_card.md).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

WIDTH = 110
KEY = 16
INDENT = " " * (KEY + 1)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list model families and shipped models; show or write a model card",
        description="Models.",
    )
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    ls = msub.add_parser("list", help="print the declared families and the shipped models")
    ls.set_defaults(func=run_list)
    show = msub.add_parser(
        "show", help="print a model's card (family, size, training data and its classes, figures)"
    )
    show.add_argument(
        "model", metavar="NAME_OR_DIR", help="shipped model name, model directory or run directory"
    )
    show.set_defaults(func=run_show)
    card = msub.add_parser(
        "card", help="write a model's card (card.json + caption embeddings) from its training manifest"
    )
    card.add_argument(
        "model", metavar="MODEL_DIR", help="model directory (or run directory) to write the card into"
    )
    card.add_argument(
        "--data", required=True, metavar="MANIFEST", help="the manifest the model was trained on"
    )
    card.add_argument(
        "--figures",
        metavar="JSON",
        help='measured figures: a JSON object or a .json file, e.g. \'{"fad": 1.2, "speed_x_realtime": 40}\'',
    )
    card.add_argument("--command", metavar="TEXT", help="the training command, recorded as given")
    card.add_argument(
        "--threshold",
        type=float,
        help="prompt-check similarity threshold (default: the measured one for the model's text encoder)",
    )
    card.add_argument(
        "--max-captions", type=int, default=1000, help="training captions to embed for the prompt check"
    )
    card.set_defaults(func=run_card)


def run_list(args: argparse.Namespace) -> int:
    from soundsmith import families
    from soundsmith.models.registry import read_model_config, shipped_models

    print("families:")
    for name, fam in sorted(families.all_families().items()):
        print(f"  {name:<10s} {fam.kind:<11s} {fam.description}")
    print("shipped models:")
    shipped = shipped_models()
    for name, path in shipped.items():
        print(f"  {name:<10s} {read_model_config(path)['family']:<11s} {path}")
    if not shipped:
        print("  (none)")
    return 0


# --- show -----------------------------------------------------------------------------------------------------


def _line(key: str, value: str) -> str:
    return textwrap.fill(
        value, WIDTH, initial_indent=f"{key:<{KEY}s} ", subsequent_indent=INDENT, break_on_hyphens=False
    )


def _items_line(key: str, items: list[str]) -> str:
    """``key`` then ``items`` joined by ", ", wrapped between items only (an item never splits)."""
    lines, current = [], f"{key:<{KEY}s} "
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(current) + len(piece) > WIDTH and current.strip() != key:
            lines.append(current.rstrip())
            current = INDENT
        current += piece + " "
    return "\n".join([*lines, current.rstrip()])


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def _counts(counts: dict[str, int]) -> list[str]:
    return [f"{name} {n:,}" for name, n in counts.items()]


def _parts(components: dict[str, Any]) -> str:
    parts = []
    for name, info in components.items():
        if "path" in info:
            ref = f"saved in {info['path']}/"
        elif "shipped" in info:
            ref = f"shipped {info['shipped']}"
        else:
            ref = str(info.get("text_encoder", "?"))
        if "parameters" in info:
            ref += f" ({info['family']}, {info['parameters']:,} parameters, {_mb(info['bytes'])})"
        elif info.get("missing"):
            ref += " (not found)"
        parts.append(f"{name}: {ref}")
    return "; ".join(parts)


def _figure(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _flat(config: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in config.items():
        if isinstance(value, dict):
            out.extend(_flat(value, f"{prefix}{key}."))
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def show_lines(name_or_dir: str) -> list[str]:
    """The lines ``soundsmith models show`` prints for a model (its card, or config/size/hash without one)."""
    from soundsmith import families
    from soundsmith.models.card import model_size, read_card, read_card_captions
    from soundsmith.models.registry import read_model_config, resolve_model_dir, weights_sha256

    directory = resolve_model_dir(name_or_dir)
    meta = read_model_config(directory)
    card = read_card(directory)
    family = families.get(meta["family"])
    sha = weights_sha256(directory)
    lines = [
        _line("model", str(directory)),
        _line("family", f"{family.name} ({family.kind}): {family.description}"),
    ]
    size = card if card is not None else model_size(directory, meta)
    stale = card is not None and card.get("weights_sha256") != sha
    lines.append(
        _line(
            "weights",
            f"{size['parameters']:,} parameters, {_mb(size['weights_bytes'])}, sha256 {sha[:16]}"
            + (" (the card was written for other weights: write it again)" if stale else ""),
        )
    )
    if size.get("components"):
        lines.append(_line("parts", _parts(size["components"])))
    if card is None:
        lines.append(_line("config", " ".join(_flat(meta["config"]))))
        lines.append(
            _line("card", f"none; write one with `soundsmith models card {directory} --data MANIFEST`")
        )
        return lines
    training = card.get("training", {})
    data = training.get("data", {})
    if training.get("command"):
        lines.append(_line("command", training["command"]))
    if training.get("step") is not None:
        lines.append(_line("step", f"{training['step']:,}"))
    splits = " / ".join(f"{s} {v['clips']:,}" for s, v in data.get("splits", {}).items())
    lines.append(
        _line(
            "data",
            f"{data.get('manifest', '?')}: {data.get('clips', 0):,} clips, {data.get('hours', 0):.2f} h"
            + (f" ({splits})" if splits else "")
            + f", {data.get('distinct_train_captions', 0):,} distinct training captions",
        )
    )
    for key in ("families", "sources", "labels", "instruments", "words"):
        if data.get(key):
            title = f"{key} ({len(data[key])})" if key != "families" else key
            lines.append(_items_line(title, _counts(data[key])))
    figures = card.get("figures") or {}
    lines.append(
        _line("figures", "; ".join(f"{k}: {_figure(v)}" for k, v in figures.items()) if figures else "none")
    )
    check = card.get("prompt_check")
    if check:
        captions, _, _ = read_card_captions(directory)
        lines.append(
            _line(
                "prompts",
                f"{check['captions']:,} training captions embedded with {check['text_encoder']}; generate warns "
                f"when a prompt's best similarity is below {check['threshold']:.2f}",
            )
        )
        lines.append(_line("e.g.", " | ".join(captions[:5])))
    return lines


def run_show(args: argparse.Namespace) -> int:
    for line in show_lines(args.model):
        print(line)
    return 0


# --- card -----------------------------------------------------------------------------------------------------


def parse_figures(value: str | None) -> dict[str, Any] | None:
    """``--figures``: a JSON object, or the path of a .json file holding one; else a one-line ConfigError."""
    from soundsmith.errors import ConfigError

    if value is None:
        return None
    path = Path(value)
    where = "--figures"
    if not value.lstrip().startswith("{") and path.is_file():
        value, where = path.read_text(encoding="utf-8"), str(path)
    try:
        figures = json.loads(value)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{where}: not valid JSON ({e.msg}); give an object like '{{\"fad\": 1.2}}'"
        ) from None
    if not isinstance(figures, dict):
        raise ConfigError(f"{where}: give a JSON object (name -> value), not {type(figures).__name__}")
    return figures


def run_card(args: argparse.Namespace) -> int:
    from soundsmith.errors import ConfigError
    from soundsmith.models.card import write_card

    if args.max_captions < 1:
        raise ConfigError(f"--max-captions {args.max_captions}: give at least 1")
    path = write_card(
        args.model,
        args.data,
        figures=parse_figures(args.figures),
        command=args.command,
        max_captions=args.max_captions,
        threshold=args.threshold,
    )
    print(path)
    return 0
