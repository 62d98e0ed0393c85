"""``soundsmith data``: import datasets into manifests, check manifests, synthesize the built-in corpus."""

from __future__ import annotations

import argparse
import sys

IMPORTERS = ["folder", "audiomnist", "clotho", "audiocaps", "esc50"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="import, check and synthesize datasets", description="Dataset tools.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    imp = dsub.add_parser("import", help="write a manifest for an existing dataset on disk")
    imp.add_argument("kind", choices=IMPORTERS, help="dataset layout")
    imp.add_argument("src", help="dataset folder")
    imp.add_argument("--out", required=True, help="manifest path to write (JSON Lines)")
    imp.add_argument("--captions", help="folder importer: CSV with file,caption columns")
    imp.set_defaults(func=run_import)

    chk = dsub.add_parser("check", help="open every clip of a manifest and list the bad rows")
    chk.add_argument("manifest")
    chk.set_defaults(func=run_check)

    syn = dsub.add_parser("synth", help="synthesize the built-in captioned corpus (offline, deterministic)")
    syn.add_argument("--out", required=True, help="output folder (audio/ and manifest.jsonl)")
    size = syn.add_mutually_exclusive_group(required=True)
    size.add_argument("--clips", type=int, help="number of clips")
    size.add_argument("--hours", type=float, help="hours of audio")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument(
        "--families", default="events,instruments,speech,scenes", help="comma-separated families"
    )
    syn.add_argument("--duration", type=float, default=4.0, help="clip length in seconds")
    syn.add_argument("--sample-rate", type=int, default=16000)
    syn.add_argument("--workers", type=int, default=1)
    syn.add_argument(
        "--augment-rate",
        type=float,
        default=0.0,
        help="fraction of clips through a recording chain (reverb, mic EQ, noise, codec); 0 = off",
    )
    syn.add_argument(
        "--sources",
        default=None,
        help="comma-separated: dsp,espeak-ng,FluidR3_GM,TimGM6mb,hydrogen,piper (default: all installed)",
    )
    syn.set_defaults(func=run_synth)

    sh = dsub.add_parser(
        "shift",
        help="register augmentation: clips of one pitched sound played octaves up/down, recaptioned",
        description="Write a copy of every train clip of one pitched event (a sound event or an instrument "
        "phrase of the synthetic corpus's annotation) played SEMITONES higher or lower, its annotation and "
        "captions moved with it (soundsmith.data.synth.shift).",
    )
    sh.add_argument("manifest", help="a synthetic corpus's manifest (its rows need meta.events)")
    sh.add_argument("--out", required=True, help="output folder (audio/ and manifest.jsonl)")
    sh.add_argument(
        "--semitones", default="-12,12", help="comma-separated shifts to draw from (default -12,12)"
    )
    sh.add_argument("--seed", type=int, default=0)
    sh.add_argument(
        "--any-register", action="store_true", help="also shifts that leave the clip in its register"
    )
    sh.add_argument(
        "--every-shift", action="store_true", help="one copy per allowed shift (default: one drawn)"
    )
    sh.add_argument(
        "--with-source", action="store_true", help="the manifest also lists the source's rows (to train on)"
    )
    sh.set_defaults(func=run_shift)


def run_import(args: argparse.Namespace) -> int:
    from soundsmith.data import importers

    kwargs = {}
    if args.captions:
        if args.kind != "folder":
            print("error: --captions applies to the folder importer only", file=sys.stderr)
            return 2
        kwargs["captions_csv"] = args.captions
    fn = getattr(importers, f"import_{args.kind}")
    manifest = fn(args.src, args.out, **kwargs)
    rows = getattr(manifest, "rows", None)
    print(f"wrote {args.out}" + (f" ({len(rows)} clips)" if rows is not None else ""))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from soundsmith.data.manifest import check_manifest

    problems = check_manifest(args.manifest)
    for p in problems:
        print(f"{args.manifest}:{p.row}: {p.audio}: {p.message}")
    if problems:
        print(f"{len(problems)} bad row(s)", file=sys.stderr)
        return 1
    print(f"{args.manifest}: all rows OK")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from soundsmith.data.synth import synthesize_corpus

    families = tuple(f.strip() for f in args.families.split(",") if f.strip())
    path = synthesize_corpus(
        args.out,
        clips=args.clips,
        hours=args.hours,
        seed=args.seed,
        families=families,
        duration=args.duration,
        sample_rate=args.sample_rate,
        workers=args.workers,
        augment_rate=args.augment_rate,
        sources=tuple(x.strip() for x in args.sources.split(",") if x.strip()) if args.sources else None,
    )
    print(f"wrote {path}")
    return 0


def run_shift(args: argparse.Namespace) -> int:
    from soundsmith.data.synth.shift import shift_corpus
    from soundsmith.errors import ConfigError

    try:
        semitones = tuple(int(x) for x in args.semitones.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--semitones {args.semitones!r}: give whole numbers, e.g. -12,12") from None
    path = shift_corpus(
        args.manifest,
        args.out,
        semitones,
        seed=args.seed,
        change_register=not args.any_register,
        with_source=args.with_source,
        every_shift=args.every_shift,
    )
    print(f"wrote {path}")
    return 0
