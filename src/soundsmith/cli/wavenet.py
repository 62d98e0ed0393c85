"""``soundsmith wavenet``: a front end for people coming from tensorflow-wavenet (train.py / generate.py).

Flag names and meanings follow tensorflow-wavenet; underneath, the same engine and pipeline as
``soundsmith train`` / ``soundsmith generate`` run. Differences are documented in docs/wavenet.md:
a CHECKPOINT is a soundsmith run or model directory, ``--data_dir`` is imported with the folder importer (the
parent folder name of each file is its category, the global-condition id when ``--gc_channels`` is given), and
``--prompt`` drives a caption-conditioned model. This module only parses flags: the mapping and the folder import
live in ``soundsmith.train.wavenet_compat`` and ``soundsmith.pipelines.wavenet.generate_tf_wavenet``.
"""

from __future__ import annotations

import argparse

# Flags left unset are not passed on, so tensorflow-wavenet's defaults live in one place:
# soundsmith.train.wavenet_compat.TfWaveNetTraining (imported when a command runs: `--help` stays fast).
_TRAIN_FLAGS = (
    "data_dir",
    "logdir",
    "logdir_root",
    "restore_from",
    "batch_size",
    "num_steps",
    "learning_rate",
    "sample_size",
    "l2_regularization_strength",
    "silence_threshold",
    "checkpoint_every",
    "max_checkpoints",
    "gc_channels",
)


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "wavenet",
        help="tensorflow-wavenet compatible train/generate front end",
        description="tensorflow-wavenet's train.py / generate.py flags on top of soundsmith.",
    )
    wsub = p.add_subparsers(dest="wavenet_command", metavar="ACTION")
    wsub.required = True

    t = wsub.add_parser(
        "train",
        help="train a WaveNet on a folder of audio (train.py flags)",
        description="Unset flags take tensorflow-wavenet's train.py defaults.",
    )
    t.add_argument("--data_dir", required=True, help="folder of audio files (searched recursively)")
    t.add_argument("--logdir", help="run directory (default: ./logdir/train/<timestamp>)")
    t.add_argument("--logdir_root", help="root of the default --logdir")
    t.add_argument("--restore_from", help="run directory to continue training from")
    t.add_argument("--batch_size", type=int)
    t.add_argument("--num_steps", type=int)
    t.add_argument("--learning_rate", type=float)
    t.add_argument("--wavenet_params", help="JSON file with filter_width, dilations, *_channels, sample_rate")
    t.add_argument("--sample_size", type=int, help="samples per training crop")
    t.add_argument("--l2_regularization_strength", type=float)
    t.add_argument("--silence_threshold", type=float, help="> 0 trims leading/trailing silence")
    t.add_argument("--optimizer", default="adam", choices=["adam"], help="only adam (as AdamW) is supported")
    t.add_argument("--checkpoint_every", type=int)
    t.add_argument("--max_checkpoints", type=int)
    t.add_argument(
        "--gc_channels",
        type=int,
        help="> 0: condition on the file's folder (category); 0 (default): unconditional",
    )
    t.add_argument(
        "--store_metadata", type=_bool, default=False, help="accepted; TensorBoard is always written"
    )
    t.set_defaults(func=run_train)

    g = wsub.add_parser("generate", help="generate audio from a trained WaveNet (generate.py flags)")
    g.add_argument("checkpoint", help="run directory or model directory")
    g.add_argument("--samples", type=int, default=16000, help="number of samples to generate")
    g.add_argument("--wav_out_path", required=True, help="output WAV")
    g.add_argument("--save_every", type=int, help="write the partial WAV every this many samples")
    g.add_argument("--fast_generation", type=_bool, default=True, help="cached generation (false: naive)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--gc_channels", type=int, help="must match the model's")
    g.add_argument("--gc_cardinality", type=int, help="must match the model's")
    g.add_argument("--gc_id", help="category id (or name) to generate")
    g.add_argument("--wav_seed", help="audio file to prime the generation with (continuation)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--prompt", help="caption, for a caption-conditioned model")
    g.add_argument("--logdir", help="accepted for compatibility; unused")
    g.add_argument(
        "--wavenet_params", help="accepted for compatibility; the model directory holds its config"
    )
    g.set_defaults(func=run_generate)


def run_train(args: argparse.Namespace) -> int:
    from soundsmith.train.wavenet_compat import TfWaveNetTraining, read_wavenet_params, train_tf_wavenet

    given = {name: getattr(args, name) for name in _TRAIN_FLAGS if getattr(args, name) is not None}
    settings = TfWaveNetTraining(**given, wavenet_params=read_wavenet_params(args.wavenet_params))
    out, result = train_tf_wavenet(settings)
    print(f"trained to step {result['step']}; run directory {out}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from soundsmith.pipelines.wavenet import generate_tf_wavenet

    paths = generate_tf_wavenet(
        args.checkpoint,
        args.wav_out_path,
        samples=args.samples,
        save_every=args.save_every,
        fast_generation=args.fast_generation,
        temperature=args.temperature,
        gc_channels=args.gc_channels,
        gc_cardinality=args.gc_cardinality,
        gc_id=args.gc_id,
        wav_seed=args.wav_seed,
        seed=args.seed,
        prompt=args.prompt,
    )
    for path in paths:
        print(path)
    return 0
