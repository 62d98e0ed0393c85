"""``soundsmith wavenet``: a front end for people coming from tensorflow-wavenet (train.py / generate.py).

Flag names and meanings follow tensorflow-wavenet; underneath, the same engine and pipeline as
``soundsmith train`` / ``soundsmith generate`` run. Differences are documented in docs/wavenet.md:
a CHECKPOINT is a soundsmith run or model directory, ``--data_dir`` is imported with the folder importer (the
parent folder name of each file is its category, used as the global-condition id), and ``--prompt`` drives a
caption-conditioned model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from soundsmith.errors import ConfigError

# tensorflow-wavenet's wavenet_params.json defaults: 5 stacks of dilations 1..512, 32/32/512 channels.
TF_WAVENET_DEFAULTS: dict[str, Any] = {
    "filter_width": 2,
    "sample_rate": 16000,
    "dilations": [2**i for i in range(10)] * 5,
    "residual_channels": 32,
    "dilation_channels": 32,
    "quantization_channels": 256,
    "skip_channels": 512,
}


def available() -> bool:
    return True


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

    t = wsub.add_parser("train", help="train a WaveNet on a folder of audio (train.py flags)")
    t.add_argument("--data_dir", required=True, help="folder of audio files (searched recursively)")
    t.add_argument("--logdir", help="run directory (default: ./logdir/train/<timestamp>)")
    t.add_argument("--logdir_root", default="./logdir", help="root of the default --logdir")
    t.add_argument("--restore_from", help="run directory to continue training from")
    t.add_argument("--batch_size", type=int, default=1)
    t.add_argument("--num_steps", type=int, default=int(1e5))
    t.add_argument("--learning_rate", type=float, default=1e-3)
    t.add_argument("--wavenet_params", help="JSON file with filter_width, dilations, *_channels, sample_rate")
    t.add_argument("--sample_size", type=int, default=100000, help="samples per training crop")
    t.add_argument("--l2_regularization_strength", type=float, default=0.0)
    t.add_argument("--silence_threshold", type=float, default=0.0, help="> 0 trims leading/trailing silence")
    t.add_argument("--optimizer", default="adam", choices=["adam"], help="only adam (as AdamW) is supported")
    t.add_argument("--checkpoint_every", type=int, default=50)
    t.add_argument("--max_checkpoints", type=int, default=5)
    t.add_argument(
        "--gc_channels", type=int, default=0, help="> 0: condition on the file's folder (category)"
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


def wavenet_params_to_model(params: dict[str, Any]) -> dict[str, Any]:
    """Map tensorflow-wavenet's wavenet_params.json to WaveNetConfig fields (dilations must be doubling stacks)."""
    unknown = set(params) - set(TF_WAVENET_DEFAULTS) - {"use_biases", "scalar_input", "initial_filter_width"}
    if unknown:
        raise ConfigError(f"wavenet_params: unknown key(s) {sorted(unknown)}")
    if params.get("scalar_input"):
        raise ConfigError(
            "wavenet_params: scalar_input=true is not supported; soundsmith uses one-hot mu-law input"
        )
    p = {**TF_WAVENET_DEFAULTS, **params}
    dilations = list(p["dilations"])
    if not dilations or dilations[0] != 1:
        raise ConfigError(f"wavenet_params.dilations must start at 1, got {dilations[:4]}...")
    per_stack = dilations.index(1, 1) if 1 in dilations[1:] else len(dilations)
    stacks = len(dilations) // per_stack
    if dilations != [2**i for i in range(per_stack)] * stacks:
        raise ConfigError(
            "wavenet_params.dilations must be repeated doubling stacks (1, 2, ..., 2^(L-1)) x S; "
            f"got {dilations}"
        )
    return {
        "kernel_size": int(p["filter_width"]),
        "sample_rate": int(p["sample_rate"]),
        "stacks": stacks,
        "layers_per_stack": per_stack,
        "residual_channels": int(p["residual_channels"]),
        "dilation_channels": int(p["dilation_channels"]),
        "quantization_channels": int(p["quantization_channels"]),
        "skip_channels": int(p["skip_channels"]),
    }


def run_train(args: argparse.Namespace) -> int:
    from soundsmith.config import run_config_from_dict
    from soundsmith.data.importers import import_folder
    from soundsmith.train.run import resolve_run_config, train_run

    resume = args.restore_from is not None
    out = Path(
        args.restore_from
        or args.logdir
        or Path(args.logdir_root) / "train" / time.strftime("%Y-%m-%dT%H-%M-%S")
    )
    if args.logdir and args.restore_from and Path(args.logdir) != Path(args.restore_from):
        raise ConfigError("--logdir and --restore_from name different directories; give one")
    manifest = out / "manifest.jsonl"
    if not manifest.is_file():
        import_folder(args.data_dir, manifest)
    params = {}
    if args.wavenet_params:
        try:
            params = json.loads(Path(args.wavenet_params).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{args.wavenet_params}: cannot read wavenet params ({e})") from e
    model = wavenet_params_to_model(params)
    model.update({"gc_channels": args.gc_channels, "gc_cardinality": 0})
    sr = model["sample_rate"]
    checkpoint_every = max(1, args.checkpoint_every)
    data = {
        "family": "wavenet",
        "model": model,
        "data": {
            "sample_rate": sr,
            "clip_seconds": args.sample_size / sr,
            "trim_silence": args.silence_threshold > 0,
        },
        "train": {
            "batch_size": args.batch_size,
            "max_steps": args.num_steps,
            "lr": args.learning_rate,
            "weight_decay": args.l2_regularization_strength,
            "checkpoint_every": checkpoint_every,
            "keep_last": args.max_checkpoints,
            "valid_every": checkpoint_every,
            "sample_every": 0,
        },
    }
    if resume and (out / "config.yaml").is_file():
        run_cfg = resolve_run_config(None, out, [f"train.max_steps={args.num_steps}"], resume=True)
    else:
        run_cfg = run_config_from_dict(data, where="tensorflow-wavenet flags")
    result = train_run(run_cfg, manifest, out, resume=resume)
    print(f"trained to step {result['step']}; run directory {out}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from soundsmith.pipelines import load_pipeline

    pipe = load_pipeline(args.checkpoint)
    c = pipe.model.config
    if args.gc_channels is not None and args.gc_channels != c.gc_channels:
        raise ConfigError(f"--gc_channels {args.gc_channels} does not match the model's {c.gc_channels}")
    if args.gc_cardinality is not None and args.gc_cardinality != c.gc_cardinality:
        raise ConfigError(
            f"--gc_cardinality {args.gc_cardinality} does not match the model's {c.gc_cardinality}"
        )
    if args.samples <= 0:
        raise ConfigError(f"--samples {args.samples} must be positive")
    gc_id: int | str | None = None
    if args.gc_id is not None:
        gc_id = int(args.gc_id) if args.gc_id.lstrip("-").isdigit() else args.gc_id
    prime = None
    if args.wav_seed:
        from soundsmith.audio import load_audio

        prime, _ = load_audio(args.wav_seed, sample_rate=c.sample_rate)
    result = pipe(
        args.prompt or "",
        duration=args.samples / c.sample_rate,
        seed=args.seed,
        temperature=args.temperature,
        gc_id=gc_id,
        prime=prime,
        save_every=args.save_every / c.sample_rate if args.save_every else None,
        save_path=args.wav_out_path if args.save_every else None,
        method="auto" if args.fast_generation else "naive",
    )
    for path in result.save(args.wav_out_path):
        print(path)
    return 0
