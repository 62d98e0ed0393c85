"""Run configurations: one YAML file fills the family's model config, the data config and the train config.

A run configuration (``configs/<family>/{tiny,base}.yaml``) has four sections, and an optional fifth::

    family: wavenet
    model: {...}   # the family's config dataclass (e.g. WaveNetConfig), found through soundsmith.families
    data:  {...}   # soundsmith.data.dataset.DataConfig
    train: {...}   # soundsmith.train.config.TrainConfig
    objective: {...}   # optional: keyword arguments of the family's objective (e.g. the vocoder's
                       # disc_start_step, stft_weight), checked against its signature

Overrides replace any field by its dotted key. Python callers pass typed values
(``apply_overrides(data, {"train.lr": 1e-3})``); the CLI's ``--set section.key=value`` strings are parsed as YAML
(``1e-3``, ``[1, 2]``, ``true``) by :func:`parse_overrides` and then applied the same way.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from soundsmith.config import dataclass_from_dict
from soundsmith.errors import ConfigError, SoundsmithError

SECTIONS = ("family", "init", "model", "data", "train", "objective")

# Keys that moved out of a section: (section, key) -> where they live now. Saved run configs written before the
# move hold them with their old default value, which is dropped silently; any other value is an error.
MOVED: dict[tuple[str, str], tuple[str, Any]] = {
    ("train", "num_workers"): ("data.num_workers (DataLoader workers are a data-loading knob)", 0),
}
# Keys that were removed; saved run configs hold them with this (unused) default, dropped silently.
REMOVED: dict[tuple[str, str], Any] = {("train", "extra"): {}}

Overrides = Mapping[str, Any] | Iterable[str]


@dataclass
class RunConfig:
    """A whole training run: family, model, data and train sections, each a dataclass."""

    family: str
    model: Any
    data: Any
    train: Any
    objective: dict[str, Any] = dataclasses.field(default_factory=dict)  # the objective's keyword arguments
    # a model directory, run directory or shipped name whose weights start the run (fresh optimizer, step 0);
    # "" = random initialization. A checkpoint in the run directory (--resume) takes precedence.
    init: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "family": self.family,
            "model": dataclasses.asdict(self.model),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
        }
        if self.objective:
            out["objective"] = copy.deepcopy(self.objective)
        if self.init:
            out["init"] = self.init
        return out


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """CLI ``--set`` strings to typed values: ``["train.lr=1e-3"]`` -> ``{"train.lr": 0.001}`` (YAML values)."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.lr=3e-4")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not [p for p in key.split(".") if p]:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: cannot parse value ({e})") from e
    return out


def apply_typed_overrides(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Set already-typed values by dotted key (``{"train.lr": 1e-3, "model.channels": [8, 16]}``) in a copy of
    the nested dict ``data``; no parsing. A key through a non-mapping is a ConfigError naming it."""
    out = copy.deepcopy(dict(data))
    for key, value in values.items():
        parts = [p for p in str(key).strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {key!r}: empty key")
        node = out
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {'.'.join(parts)}: {p!r} is not a section")
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Overrides | None) -> dict[str, Any]:
    """Apply overrides to a copy of ``data``: a mapping of typed values (see :func:`apply_typed_overrides`) or
    CLI ``--set`` strings ``KEY=VALUE`` whose values are parsed as YAML (see :func:`parse_overrides`)."""
    if overrides is None:
        return copy.deepcopy(dict(data))
    if isinstance(overrides, str):
        raise ConfigError(f"overrides {overrides!r}: give a list of KEY=VALUE strings or a mapping")
    values = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    return apply_typed_overrides(data, values)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A run config file as a dict (not validated: see :func:`run_config_from_dict`)."""
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


def _section(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    """Section ``name`` as a new dict, with moved keys reported and removed keys of old saved configs dropped."""
    section = data.get(name) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: {name}: expected a mapping of fields, got {section!r}")
    section = dict(section)
    for (sec, key), (moved_to, old_default) in MOVED.items():
        if sec == name and key in section:
            if section[key] != old_default:
                raise ConfigError(f"{where}: {name}.{key} moved to {moved_to}; set it there instead")
            del section[key]
    for (sec, key), old_default in REMOVED.items():
        if sec == name and key in section and section[key] == old_default:
            del section[key]
    return section


def run_config_from_dict(data: Mapping[str, Any], where: str = "config") -> RunConfig:
    """Validate a run config dict into a :class:`RunConfig`; errors name ``where`` and the key."""
    from soundsmith import families
    from soundsmith.data.dataset import DataConfig
    from soundsmith.train.config import TrainConfig

    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    family = data.get("family")
    if not isinstance(family, str):
        raise ConfigError(f"{where}: missing 'family' (e.g. family: wavenet)")
    try:
        config_cls = families.get(family).config_class()
    except SoundsmithError as e:
        raise ConfigError(f"{where}: {e}") from e
    init = data.get("init") or ""
    if not isinstance(init, str):
        raise ConfigError(f"{where}: init: expected a model directory or shipped name, got {init!r}")
    return RunConfig(
        family=family,
        model=dataclass_from_dict(config_cls, _section(data, "model", where), f"{where}: model"),
        data=dataclass_from_dict(DataConfig, _section(data, "data", where), f"{where}: data"),
        train=dataclass_from_dict(TrainConfig, _section(data, "train", where), f"{where}: train"),
        objective=_objective_section(family, _section(data, "objective", where), where),
        init=init,
    )


def _objective_section(family: str, section: dict[str, Any], where: str) -> dict[str, Any]:
    """The ``objective`` section checked against the family objective's keyword parameters (not ``model`` and
    ``sample_rate``, which the run supplies)."""
    if not section:
        return {}
    import inspect

    from soundsmith.train.objectives import get_objective

    params = inspect.signature(get_objective(family).__init__).parameters
    valid = [
        n
        for n, p in params.items()
        if n not in ("self", "model", "sample_rate") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    unknown = sorted(set(section) - set(valid))
    if unknown:
        raise ConfigError(
            f"{where}: objective.{unknown[0]} is not a parameter of the {family} objective; "
            f"valid: {', '.join(valid) if valid else '(none)'}"
        )
    return section


def load_run_config(path: str | Path, overrides: Overrides | None = None) -> RunConfig:
    """Read a run config YAML, apply overrides (typed mapping or ``--set`` strings) and validate every section."""
    data = apply_overrides(read_yaml(path), overrides)
    return run_config_from_dict(data, where=str(path))


__all__ = [
    "RunConfig",
    "apply_overrides",
    "apply_typed_overrides",
    "load_run_config",
    "parse_overrides",
    "read_yaml",
    "run_config_from_dict",
]
