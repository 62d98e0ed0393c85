"""``soundsmith evaluate``: metrics and a report for generated audio against a reference manifest."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="FAD, KL, IS, CLAP score, adherence, and an HTML report",
        description="Evaluate generated audio against a reference manifest, or score prompt adherence alone.",
    )
    p.add_argument("--generated", required=True, help="folder of generated audio or a manifest")
    p.add_argument("--reference", help="reference manifest (leave out for prompt-only scoring)")
    p.add_argument("--prompts", help="JSONL: audio, prompt, optional labels/attributes/id per generated clip")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--run", help="training run directory whose loss curves go into the report")
    p.add_argument("--tagger", help="tagger model directory or name (default: the shipped models/tagger)")
    p.add_argument("--clap", help="CLAP model directory or name (default: the shipped models/clap, if any)")
    p.add_argument(
        "--keyword", help="spoken-word recognizer dir or name (default: the shipped models/keyword)"
    )
    p.add_argument("--pitch-method", choices=["pyin", "crepe"], default="pyin", help="pitch tracker")
    p.add_argument(
        "--bf16", action="store_true", help="run the evaluator CNNs under CPU bf16 autocast (faster)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soundsmith.eval.runner import evaluate

    metrics = evaluate(
        args.generated,
        args.reference,
        prompts=args.prompts,
        out_dir=args.out,
        run_dir=args.run,
        tagger=args.tagger,
        clap=args.clap,
        bf16=args.bf16,
        keyword=args.keyword,
        pitch_method=args.pitch_method,
    )
    for key, value in metrics.get("summary", metrics).items():
        if isinstance(value, (int, float)):
            print(f"{key:>28s}  {value:.4g}")
    print(f"report: {args.out}/report.html")
    return 0
