"""``soundsmith train``: train any family from a run config on a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a run config",
        description="Train a model. Presets: configs/<family>/{tiny,base}.yaml. "
        "Killed runs continue with --resume from the last checkpoint in --out.",
    )
    p.add_argument("--config", help="run config YAML (optional with --resume: the run's own config.yaml)")
    p.add_argument("--data", required=True, help="manifest (JSON Lines) to train on")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs, samples, model/)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=3e-4"
    )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="start from this model's weights (model or run directory, or shipped name; same family and model "
        "config; fresh optimizer, step 0)",
    )
    p.add_argument("--max-steps", type=int, help="total optimizer steps (overrides train.max_steps)")
    p.add_argument("--accelerator", help="cpu, cuda, auto (Lightning Fabric)")
    p.add_argument("--devices", type=int, help="devices per node")
    p.add_argument("--nodes", type=int, help="number of nodes")
    p.add_argument(
        "--strategy", choices=["auto", "ddp", "fsdp"], help="distributed strategy (Lightning Fabric)"
    )
    p.add_argument("--precision", choices=["32-true", "bf16-mixed"], help="numeric precision")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soundsmith.train.run import resolve_run_config, train_run
    from soundsmith.train.runconfig import parse_overrides

    # --set strings are parsed once (as YAML); the typed flags go in as values, never re-parsed.
    overrides = parse_overrides(args.set)
    for flag, key in (
        ("max_steps", "train.max_steps"),
        ("accelerator", "train.accelerator"),
        ("devices", "train.devices"),
        ("nodes", "train.num_nodes"),
        ("strategy", "train.strategy"),
        ("precision", "train.precision"),
        ("init", "init"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    out = Path(args.out)
    run_cfg = resolve_run_config(args.config, out, overrides, resume=args.resume)
    result = train_run(run_cfg, args.data, out, resume=args.resume)
    summary = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items())
    print(f"finished: {summary}")
    print(f"model written to {out / 'model'}")
    return 0
