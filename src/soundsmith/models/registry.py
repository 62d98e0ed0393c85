"""Model directories: find, save and load models of every declared family (``soundsmith.families``).

A model directory holds ``config.json`` (family, the family's config dataclass as a dict, schema version,
soundsmith version, free ``extra``) and ``model.safetensors``. Loading never unpickles anything.

A **composite** directory (the diffusers ``model_index.json`` idea) also lists named ``components`` in its
``config.json``; each is one of

- ``{"path": "<name>"}``: a sub-folder ``<name>/`` that is itself a model directory (trainable, saved with it);
- ``{"shipped": "<model>"}``: a shipped model by name (:class:`ShippedRef`), frozen, its weights not copied;
- ``{"text_encoder": "<spec>"}``: a frozen text encoder (:class:`TextEncoderSpec`), e.g. ``"minilm"``.

Frozen components are built once per process and device by :func:`frozen_component` and shared by everything
that asks for the same reference (pipeline, objective, evaluator); they are never submodules of a model, so no
optimizer, EMA or training checkpoint sees them. See ``models/composite.py`` and docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from soundsmith import families
from soundsmith._version import __version__
from soundsmith.config import dataclass_from_dict
from soundsmith.errors import ConfigError, ModelError
from soundsmith.fileio import write_bytes_atomic
from soundsmith.models.storage import STORAGES, dequantize_int8, quantize_int8

SCHEMA_VERSION = 2

# The shipped models of the source tree (``<repo>/models/<name>/``). Installed from a wheel, shipped models are
# found in the package data folder ``soundsmith/shipped/`` instead; :func:`shipped_dirs` gives the full search path.
SHIPPED_DIR = Path(__file__).resolve().parents[3] / "models"
SHIPPED_ENV = "SOUNDSMITH_MODELS"  # extra folders of shipped models, os.pathsep-separated, searched first

# One migration function per old schema version: config dict of version v -> config dict of version v + 1.
MIGRATIONS: dict[int, Any] = {}

# The mel front-end fields that schema 1 kept flat in the tagger's and CLAP's configs (frozen: this is history).
_V1_MEL_FIELDS = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax")


def _nest_v1_mel(config: dict[str, Any]) -> dict[str, Any]:
    if "mel" in config or not all(k in config for k in _V1_MEL_FIELDS):
        return config
    flat = {k: v for k, v in config.items() if k not in _V1_MEL_FIELDS}
    return {**flat, "mel": {k: config[k] for k in _V1_MEL_FIELDS}}


def _migrate_v1(meta: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: a config holding all the mel fields flat (tagger, clap) nests them as ``mel`` (a
    ``MelConfig``); the training run config kept in ``extra.run`` gets the same, and its ``train.num_workers``
    moves to ``data.num_workers`` (the unused ``train.extra`` goes)."""
    meta = {**meta, "config": _nest_v1_mel(dict(meta["config"]))}
    run = (meta.get("extra") or {}).get("run")
    if isinstance(run, dict):
        run = dict(run)
        if isinstance(run.get("model"), dict):
            run["model"] = _nest_v1_mel(dict(run["model"]))
        train, data = dict(run.get("train") or {}), dict(run.get("data") or {})
        train.pop("extra", None)
        if "num_workers" in train:
            data["num_workers"] = train.pop("num_workers")
        run["train"], run["data"] = train, data
        meta["extra"] = {**meta["extra"], "run": run}
    return meta


MIGRATIONS[1] = _migrate_v1


# --- families -------------------------------------------------------------------------------------------------


def family_names() -> list[str]:
    return families.family_names()


def get_family(name: str) -> tuple[type, type]:
    """Return ``(ConfigCls, ModelCls)`` of a declared family; an unknown name lists the valid ones."""
    family = families.get(name)
    return family.config_class(), family.model_class()


def family_of(model: torch.nn.Module) -> str:
    """The declared family name of a model instance."""
    for name, family in families.all_families().items():
        if family.defines(type(model)):
            return name
    raise ModelError(f"{type(model).__name__} is not a declared model family ({', '.join(family_names())})")


# --- shipped models -------------------------------------------------------------------------------------------


def shipped_dirs() -> list[Path]:
    """Where shipped model names are looked up, first match wins: ``$SOUNDSMITH_MODELS``, the installed package
    data (``soundsmith/shipped/``, present in a wheel), then the source tree's ``models/``."""
    from importlib.resources import files

    dirs = [Path(p) for p in os.environ.get(SHIPPED_ENV, "").split(os.pathsep) if p]
    package_data = files("soundsmith") / "shipped"
    dirs.append(Path(str(package_data)))
    dirs.append(SHIPPED_DIR)
    return dirs


def shipped_models() -> dict[str, Path]:
    """Every shipped model name -> its directory (earlier search-path entries shadow later ones)."""
    found: dict[str, Path] = {}
    for root in shipped_dirs():
        if root.is_dir():
            for path in sorted(root.iterdir()):
                if (path / "config.json").is_file():
                    found.setdefault(path.name, path)
    return found


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """A model directory from a path, a run directory (its ``model/``) or the name of a shipped model."""
    path = Path(name_or_path)
    for candidate in (path, path / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    shipped = shipped_models()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise ModelError(
        f"{name_or_path}: not a model directory, a run directory with model/, or a shipped model name"
        + (f"; shipped models: {', '.join(shipped)}" if shipped else "")
    )


# --- frozen components ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedRef:
    """A component that is the shipped model ``name`` (frozen; recorded by name, its weights not copied)."""

    name: str


@dataclass(frozen=True)
class TextEncoderSpec:
    """A frozen text encoder component, by spec string (``soundsmith.text.build_text_encoder``)."""

    spec: str


_FROZEN: dict[tuple[Any, str, str], torch.nn.Module] = {}
_FROZEN_LOCK = threading.RLock()  # re-entrant: building a shipped model may ask for its own parts


def frozen_component(
    ref: ShippedRef | TextEncoderSpec, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """The one frozen module for ``ref`` on ``device`` in this process, built on first use.

    Everything that needs the same frozen part (a pipeline and an objective both wanting MiniLM, two pipelines
    sharing a shipped VAE) gets the same instance: in eval mode, no gradients. Ask again for another device
    instead of calling ``.to()`` on the shared module.
    """
    if not isinstance(ref, (ShippedRef, TextEncoderSpec)):
        raise ModelError(f"{ref!r} is not a frozen component reference (ShippedRef or TextEncoderSpec)")
    # A shipped name is keyed by the directory it resolves to, so a changed search path is honoured.
    where = resolve_model_dir(ref.name) if isinstance(ref, ShippedRef) else None
    key = (ref, str(where), str(torch.device(device)))
    with _FROZEN_LOCK:
        module = _FROZEN.get(key)
        if module is None:
            if isinstance(ref, TextEncoderSpec):
                from soundsmith.text import build_text_encoder

                module = build_text_encoder(ref.spec)
            else:
                module = load_model(where)
            module = module.to(device).eval().requires_grad_(False)
            _FROZEN[key] = module
        return module


def text_encoder(spec: str, device: str | torch.device = "cpu") -> Any:
    """The shared frozen text encoder for ``spec`` (the one place soundsmith builds text encoders from specs)."""
    return frozen_component(TextEncoderSpec(spec), device)


def clear_frozen_components() -> None:
    """Forget every shared frozen component (frees memory; the next request builds it again)."""
    with _FROZEN_LOCK:
        _FROZEN.clear()


def _component_to_json(value: Any, name: str) -> dict[str, str]:
    if isinstance(value, ShippedRef):
        return {"shipped": value.name}
    if isinstance(value, TextEncoderSpec):
        return {"text_encoder": value.spec}
    if isinstance(value, torch.nn.Module):
        return {"path": name}
    raise ModelError(
        f"component {name!r}: {type(value).__name__} is not an nn.Module, ShippedRef or TextEncoderSpec"
    )


def _component_from_json(entry: Any, name: str, directory: Path, device: str | torch.device) -> Any:
    if isinstance(entry, dict) and len(entry) == 1:
        ((kind, value),) = entry.items()
        if kind == "shipped" and isinstance(value, str):
            return ShippedRef(value)
        if kind == "text_encoder" and isinstance(value, str):
            return TextEncoderSpec(value)
        if kind == "path" and isinstance(value, str) and value == Path(value).name:
            return load_model(directory / value, device=device)
    raise ModelError(
        f"{directory / 'config.json'}: component {name!r} is {entry!r}; expected one of "
        '{"path": "<sub-folder>"}, {"shipped": "<model name>"}, {"text_encoder": "<spec>"}'
    )


# --- model directories ----------------------------------------------------------------------------------------


def _is_own(key: str, component_names: list[str]) -> bool:
    """Whether a state-dict key is the model's own, not a component submodule's (saved in its own folder)."""
    return not any(key.startswith(f"components.{name}.") for name in component_names)


def _own_state(model: torch.nn.Module, component_names: list[str]) -> dict[str, torch.Tensor]:
    """The model's own tensors, on the CPU, ready for safetensors."""
    state = {
        k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if _is_own(k, component_names)
    }
    # safetensors refuses tensors sharing memory; clone the duplicates.
    seen: dict[int, str] = {}
    for k, v in state.items():
        ptr = v.data_ptr()
        if ptr in seen and v.numel() > 0:
            state[k] = v.clone()
        seen[ptr] = k
    return state


def save_model(
    model: torch.nn.Module,
    directory: str | Path,
    extra: dict[str, Any] | None = None,
    family: str | None = None,
    storage: str = "as_saved",
) -> Path:
    """Write ``config.json`` + ``model.safetensors`` for ``model`` (which holds its config dataclass as ``.config``).

    A composite model (one with ``component_refs()``, see ``models/composite.py``) also gets a sub-folder per
    trainable component, and its frozen components are recorded by reference. ``storage``: ``"as_saved"`` (the
    tensors' own dtypes) or ``"int8"`` (weight matrices as int8 with a scale per row, :mod:`.storage`; loading
    gives float32), for the model's own tensors and its trainable components'.
    """
    if storage not in STORAGES:
        raise ConfigError(f"storage={storage!r} is not a weight storage; valid: {', '.join(STORAGES)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise ModelError(f"{type(model).__name__} has no config dataclass in `.config`; cannot save it")
    family = family or family_of(model)
    refs: dict[str, Any] = model.component_refs() if hasattr(model, "component_refs") else {}
    for name, value in refs.items():
        if isinstance(value, torch.nn.Module):
            save_model(value, directory / name, storage=storage)
    state = _own_state(model, list(refs))
    write_bytes_atomic(
        directory / "model.safetensors",
        save_safetensors(quantize_int8(state) if storage == "int8" else state),
    )
    meta: dict[str, Any] = {
        "family": family,
        "schema_version": SCHEMA_VERSION,
        "soundsmith_version": __version__,
        "config": dataclasses.asdict(config),
    }
    if refs:
        meta["components"] = {name: _component_to_json(value, name) for name, value in refs.items()}
    meta["extra"] = extra or {}
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
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: expected a JSON object; not a soundsmith model directory")
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


def weights_sha256(directory: str | Path) -> str:
    """SHA-256 of a model directory's ``model.safetensors`` (provenance of generated audio); a composite hashes its
    ``{"path": ...}`` and ``{"shipped": ...}`` components' weights too (name and hash of each, in name order), so
    a retrained or swapped part changes it. Without such components it is the file's plain SHA-256."""
    directory = Path(directory)
    digest = hashlib.sha256()
    with open(directory / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    has_config = (directory / "config.json").is_file()
    components = (read_model_config(directory).get("components") or {}) if has_config else {}
    for name in sorted(components):
        entry = components[name]
        if isinstance(entry, dict) and ("path" in entry or "shipped" in entry):
            part = directory / entry["path"] if "path" in entry else resolve_model_dir(entry["shipped"])
            digest.update(f"\0{name}\0{weights_sha256(part)}".encode())
    return digest.hexdigest()


def build_model(directory: Path, meta: dict[str, Any], device: str | torch.device = "cpu") -> torch.nn.Module:
    """The model that ``directory`` (whose config.json was read into ``meta``) holds, weights loaded, in eval mode."""
    config_cls, model_cls = get_family(meta["family"])
    try:
        config = dataclass_from_dict(config_cls, meta["config"], where=str(directory / "config.json"))
    except ConfigError as e:
        raise ModelError(str(e)) from e
    components = meta.get("components")
    if components:
        if not isinstance(components, dict):
            raise ModelError(f"{directory / 'config.json'}: 'components' must map names to references")
        parts = {n: _component_from_json(e, n, directory, device) for n, e in components.items()}
        model = model_cls(config, components=parts)
    else:
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
    state = dequantize_int8(state, where=str(weights))  # int8 storage back to float32 (a no-op otherwise)
    expected = {k for k in model.state_dict() if _is_own(k, list(components or {}))}
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelError(
            f"{weights}: weights do not match the {meta['family']} config "
            f"(missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )
    model.load_state_dict(state, strict=False)
    model.eval()
    return model.to(device)


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a model directory (or run directory, or shipped name) into the right family's class."""
    directory = resolve_model_dir(name_or_path)
    return build_model(directory, read_model_config(directory), device=device)
