"""Configuration: YAML files fill dataclasses; unknown keys and wrong types are errors naming the key.

A run configuration (``configs/<family>/{tiny,base}.yaml``) has four sections::

    family: wavenet
    model: {...}   # the family's config dataclass (e.g. WaveNetConfig)
    data:  {...}   # soundsmith.data.dataset.DataConfig
    train: {...}   # soundsmith.train.config.TrainConfig

``--set section.key=value`` overrides any field; the value is parsed as YAML (``1e-3``, ``[1, 2]``, ``true``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from soundsmith.errors import ConfigError


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Coerce/check ``value`` against the annotation ``tp``; return the (possibly converted) value."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return dataclass_from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def dataclass_from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}; valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """``["train.lr=1e-3"]`` -> ``[(["train", "lr"], 0.001)]``."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=3e-4")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: cannot parse value ({e})") from e
        out.append((parts, value))
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a nested dict (returns a new dict)."""
    import copy

    data = copy.deepcopy(data)
    for parts, value in parse_overrides(overrides):
        node = data
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(parts)}: {p!r} is not a section")
            node = child
        node[parts[-1]] = value
    return data


@dataclass
class RunConfig:
    """A whole training run: family, model, data and train sections, each a dataclass."""

    family: str
    model: Any
    data: Any
    train: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
        }


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: config file not found; presets live in configs/<family>/{{tiny,base}}.yaml"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with family/model/data/train sections")
    return data


def run_config_from_dict(data: dict[str, Any], where: str = "config") -> RunConfig:
    from soundsmith.data.dataset import DataConfig
    from soundsmith.models.registry import get_family
    from soundsmith.train.config import TrainConfig

    unknown = sorted(set(data) - {"family", "model", "data", "train"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {', '.join(unknown)}; valid: family, model, data, train"
        )
    family = data.get("family")
    if not isinstance(family, str):
        raise ConfigError(f"{where}: missing 'family' (e.g. family: wavenet)")
    try:
        config_cls, _ = get_family(family)
    except Exception as e:
        raise ConfigError(f"{where}: {e}") from e
    return RunConfig(
        family=family,
        model=dataclass_from_dict(config_cls, data.get("model") or {}, f"{where}: model"),
        data=dataclass_from_dict(DataConfig, data.get("data") or {}, f"{where}: data"),
        train=dataclass_from_dict(TrainConfig, data.get("train") or {}, f"{where}: train"),
    )


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a run config YAML, apply ``--set`` overrides and validate every section."""
    data = apply_overrides(read_yaml(path), overrides or [])
    return run_config_from_dict(data, where=str(path))
