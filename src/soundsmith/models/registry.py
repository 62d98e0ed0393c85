"""Model families, model directories and loading.

A model directory holds ``config.json`` (family, the family's config dataclass as a dict, schema version,
soundsmith version, free ``extra``) and ``model.safetensors``. Loading never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from soundsmith.config import dataclass_from_dict
from soundsmith.errors import ConfigError, ModelError
from soundsmith.fileio import write_bytes_atomic

SCHEMA_VERSION = 1

# family -> "module:ConfigClass:ModelClass", imported lazily so that loading one family never imports the others.
FAMILIES: dict[str, str] = {
    "wavenet": "soundsmith.models.wavenet:WaveNetConfig:WaveNet",
    "tagger": "soundsmith.models.tagger:TaggerConfig:AudioTagger",
    "clap": "soundsmith.models.clap:ClapConfig:AudioTextContrastive",
}
_REGISTERED: dict[str, tuple[type, type]] = {}

# Names of models shipped inside the repository, resolved relative to the repository's `models/` folder.
SHIPPED_DIR = Path(__file__).resolve().parents[3] / "models"

# One migration function per old schema version: config dict of version v -> config dict of version v + 1.
MIGRATIONS: dict[int, Any] = {}


def register_family(name: str, config_cls: type, model_cls: type) -> None:
    """Register a family at run time (plugins, tests)."""
    _REGISTERED[name] = (config_cls, model_cls)


def family_names() -> list[str]:
    return sorted(set(FAMILIES) | set(_REGISTERED))


def get_family(name: str) -> tuple[type, type]:
    """Return ``(ConfigCls, ModelCls)`` of a family; an unknown name lists the valid ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in FAMILIES:
        raise ModelError(f"unknown model family {name!r}; valid families: {', '.join(family_names())}")
    module, config_name, model_name = FAMILIES[name].split(":")
    mod = importlib.import_module(module)
    return getattr(mod, config_name), getattr(mod, model_name)


def family_of(model: torch.nn.Module) -> str:
    """The registered family name of a model instance."""
    for name in family_names():
        try:
            _, model_cls = get_family(name)
        except (ImportError, AttributeError):
            continue
        if type(model) is model_cls:
            return name
    raise ModelError(f"{type(model).__name__} is not a registered model family ({', '.join(family_names())})")


def save_model(model: torch.nn.Module, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` for ``model`` (which holds its config dataclass as ``.config``)."""
    from soundsmith import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise ModelError(f"{type(model).__name__} has no config dataclass in `.config`; cannot save it")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # safetensors refuses tensors sharing memory; clone the duplicates.
    seen: dict[int, str] = {}
    for k, v in state.items():
        ptr = v.data_ptr()
        if ptr in seen and v.numel() > 0:
            state[k] = v.clone()
        seen[ptr] = k
    tmp = directory / ".model.safetensors.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, directory / "model.safetensors")
    meta = {
        "family": family_of(model),
        "schema_version": SCHEMA_VERSION,
        "soundsmith_version": __version__,
        "config": dataclasses.asdict(config),
        "extra": extra or {},
    }
    write_bytes_atomic(directory / "config.json", (json.dumps(meta, indent=2) + "\n").encode())
    return directory


def read_model_config(directory: str | Path) -> dict[str, Any]:
    """Read and migrate a model directory's ``config.json``."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise ModelError(
            f"{directory}: no config.json; a model directory holds config.json + model.safetensors"
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e}); the model directory is damaged") from e
    for key in ("family", "schema_version", "config"):
        if key not in meta:
            raise ModelError(f"{path}: missing key {key!r}; not a soundsmith model directory")
    version = meta["schema_version"]
    if version > SCHEMA_VERSION:
        raise ModelError(
            f"{path}: schema version {version} is newer than this soundsmith understands ({SCHEMA_VERSION}); "
            "upgrade soundsmith"
        )
    while version < SCHEMA_VERSION:
        meta = MIGRATIONS[version](meta)
        version += 1
        meta["schema_version"] = version
    return meta


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """A model directory from a path, a run directory (its ``model/``) or the name of a shipped model."""
    path = Path(name_or_path)
    for candidate in (path, path / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    shipped = SHIPPED_DIR / str(name_or_path)
    if (shipped / "config.json").is_file():
        return shipped
    names = (
        sorted(p.name for p in SHIPPED_DIR.glob("*") if (p / "config.json").is_file())
        if SHIPPED_DIR.is_dir()
        else []
    )
    raise ModelError(
        f"{name_or_path}: not a model directory, a run directory with model/, or a shipped model name"
        + (f"; shipped models: {', '.join(names)}" if names else "")
    )


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model directory (or run directory, or shipped name) into the right family's class."""
    directory = resolve_model_dir(name_or_path)
    meta = read_model_config(directory)
    config_cls, model_cls = get_family(meta["family"])
    try:
        config = dataclass_from_dict(config_cls, meta["config"], where=str(directory / "config.json"))
    except ConfigError as e:
        raise ModelError(str(e)) from e
    model = model_cls(config)
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{directory}: no model.safetensors; the model directory is incomplete")
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise ModelError(
            f"{weights}: cannot read weights ({e}); the file is damaged, re-export the model"
        ) from e
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"{weights}: weights do not match the {meta['family']} config "
            f"(missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )
    model.eval()
    return model.to(device)
