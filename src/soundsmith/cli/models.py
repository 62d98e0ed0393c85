"""``soundsmith models list``: the declared model families and the shipped models."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list model families and shipped models", description="Model families.")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    ls = msub.add_parser("list", help="print the declared families and the shipped models")
    ls.set_defaults(func=run_list)


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
