"""tensorflow-wavenet compatibility: its ``train.py`` / ``generate.py`` settings mapped onto soundsmith.

``soundsmith wavenet train`` only parses flags and calls :func:`train_tf_wavenet` (``generate`` calls
``soundsmith.pipelines.wavenet.generate_tf_wavenet``); a Python user reaches the same behaviour here. Differences from
tensorflow-wavenet are in docs/wavenet.md: a checkpoint is a soundsmith run or model directory, ``data_dir`` is
imported with the folder importer (a file's parent folder names its category), and ``prompt`` drives a
caption-conditioned model. Without ``gc_channels`` the model is unconditional, as in tensorflow-wavenet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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
_ACCEPTED_EXTRA = {"use_biases", "scalar_input", "initial_filter_width"}


def wavenet_params_to_model(params: dict[str, Any]) -> dict[str, Any]:
    """Map tensorflow-wavenet's wavenet_params.json to WaveNetConfig fields (dilations must be doubling stacks)."""
    unknown = set(params) - set(TF_WAVENET_DEFAULTS) - _ACCEPTED_EXTRA
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


def read_wavenet_params(path: str | Path | None) -> dict[str, Any]:
    """A wavenet_params.json file as a dict (``{}`` for None: tensorflow-wavenet's defaults)."""
    if path is None:
        return {}
    try:
        params = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read wavenet params ({e})") from e
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: wavenet params must be a JSON object")
    return params


@dataclass
class TfWaveNetTraining:
    """tensorflow-wavenet ``train.py`` settings (same names, same defaults)."""

    data_dir: str | Path
    logdir: str | Path | None = None
    logdir_root: str | Path = "./logdir"
    restore_from: str | Path | None = None
    batch_size: int = 1
    num_steps: int = int(1e5)
    learning_rate: float = 1e-3
    wavenet_params: dict[str, Any] | None = None
    sample_size: int = 100000
    l2_regularization_strength: float = 0.0
    silence_threshold: float = 0.0
    checkpoint_every: int = 50
    max_checkpoints: int = 5
    gc_channels: int = 0

    def run_directory(self) -> Path:
        """``restore_from``, else ``logdir``, else ``logdir_root/train/<timestamp>``."""
        if self.logdir and self.restore_from and Path(self.logdir) != Path(self.restore_from):
            raise ConfigError("--logdir and --restore_from name different directories; give one")
        if self.restore_from or self.logdir:
            return Path(self.restore_from or self.logdir)  # type: ignore[arg-type]
        return Path(self.logdir_root) / "train" / time.strftime("%Y-%m-%dT%H-%M-%S")

    def run_config_dict(self) -> dict[str, Any]:
        """The soundsmith run config (family/model/data/train) these settings mean."""
        if self.gc_channels < 0:
            raise ConfigError(f"--gc_channels {self.gc_channels} must be >= 0 (0: unconditional)")
        model = wavenet_params_to_model(self.wavenet_params or {})
        # gc_channels 0 (the default): an unconditional model, whatever the folder layout.
        model.update({"gc_channels": self.gc_channels, "gc_cardinality": 0})
        sr = model["sample_rate"]
        checkpoint_every = max(1, self.checkpoint_every)
        return {
            "family": "wavenet",
            "model": model,
            "data": {
                "sample_rate": sr,
                "clip_seconds": self.sample_size / sr,
                "trim_silence": self.silence_threshold > 0,
            },
            "train": {
                "batch_size": self.batch_size,
                "max_steps": self.num_steps,
                "lr": self.learning_rate,
                "weight_decay": self.l2_regularization_strength,
                "checkpoint_every": checkpoint_every,
                "keep_last": self.max_checkpoints,
                "valid_every": checkpoint_every,
                "sample_every": 0,
            },
        }


def train_tf_wavenet(settings: TfWaveNetTraining) -> tuple[Path, dict[str, Any]]:
    """Import ``data_dir`` (once per run directory) and train; returns the run directory and final metrics."""
    from soundsmith.data.importers import import_folder
    from soundsmith.train.run import resolve_run_config, train_run
    from soundsmith.train.runconfig import run_config_from_dict

    resume = settings.restore_from is not None
    out = settings.run_directory()
    manifest = out / "manifest.jsonl"
    if not manifest.is_file():
        import_folder(settings.data_dir, manifest)
    if resume and (out / "config.yaml").is_file():
        run_cfg = resolve_run_config(None, out, {"train.max_steps": settings.num_steps}, resume=True)
    else:
        run_cfg = run_config_from_dict(settings.run_config_dict(), where="tensorflow-wavenet flags")
    return out, train_run(run_cfg, manifest, out, resume=resume)
