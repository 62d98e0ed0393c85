"""Model families: one declaration each, read by everything that needs to know a family.

A family is its own files (``models/<name>.py``, ``train/objectives/<name>.py``, optionally
``pipelines/<name>.py``, ``configs/<name>/{tiny,base}.yaml``) plus **one declaration**: a module
``soundsmith/families/<name>.py`` that defines ``FAMILY = Family(...)``. The registry (config and model
classes), the objective lookup, the pipeline loader, the contract tests and the CLI all read the
declarations found here; none of them lists families by name.

Declarations name their classes as ``"module:Attribute"`` strings, so reading every declaration imports no
model code (loading one family never imports the others), and this package imports nothing of soundsmith but
``errors``: it sits below ``models``, ``train``, ``pipelines`` and ``cli``. Tests and plugins can add a family
at run time with :func:`register` (classes may then be given directly instead of strings).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soundsmith.errors import ModelError

KINDS = ("generator", "evaluator", "autoencoder", "vocoder")

# The presets of the source tree (configs/<family>/{tiny,base}.yaml); absent in an installed wheel.
CONFIGS_DIR = Path(__file__).resolve().parents[3] / "configs"


@dataclass(frozen=True)
class ConditioningProbe:
    """One conditioning input for the contract tests: how to change it, and which output indices (last axis,
    i.e. time) must change.

    Attributes:
        name: the input's name (for messages), e.g. ``"mel"``.
        vary: ``prepared batch -> the batch with this input changed``.
        expect: ``(config, T) -> (first, last)``: the first and last output index that must change (``last``
            None = through the end); every index outside ``[first, last]`` must stay exactly the same.
        overrides: config fields the probe needs in the tiny preset (e.g. ``lc_channels``).
    """

    name: str
    vary: Callable[[dict[str, Any]], dict[str, Any]]
    expect: Callable[[Any, int], tuple[int, int | None]]
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """Everything soundsmith needs to know about one model family.

    Attributes:
        name: the family's name, as written in ``config.json`` and run configs (``family: wavenet``).
        config: the config dataclass, ``"module:Class"`` or the class.
        model: the ``nn.Module``, built as ``Model(config)`` (a ``models.composite.CompositeModel`` as
            ``Model(config, components=...)``) and holding ``.config``; ``"module:Class"`` or the class.
        objective: the training objective (``train.objectives.base.Objective`` subclass), or None if untrainable.
        pipeline: the inference pipeline, a ``pipelines.base.Pipeline`` subclass, or None for families that do not
            generate audio from a prompt (evaluators, autoencoders, vocoders); ``soundsmith.load`` returns it.
        kind: one of :data:`KINDS`; says what the family is for (``soundsmith models list`` groups by it).
        description: one line for listings.
        contract_forward: ``(model, prepared_batch) -> Tensor`` with the batch first: the network's output that
            the contract tests compare (shape, batch == singles, save/load identity).
        contract_shape: ``(config, B, T) -> tuple``: the expected shape of ``contract_forward`` for ``B`` clips of
            ``T`` samples.
        contract_overrides: config fields replaced in the tiny preset for the contract tests (e.g. a weight-free
            text encoder).
        contract_build: ``(config) -> model`` for the contract tests (default ``Model(config)``); a composite family
            builds its tiny components here.
        tiny_config: the tiny preset, relative to the repository's ``configs/`` (default ``<name>/tiny.yaml``),
            or an absolute path (families declared in tests write theirs to a temporary folder).
        contract_reference_loss: ``(model, prepared_batch) -> float``: the training loss computed by hand (slowly,
            obviously right) that the contract tests hold the objective's loss against; None skips that check.
        contract_conditioning: :class:`ConditioningProbe` s: each conditioning input, and where in time a change
            of it must (and must not) change the output.
    """

    name: str
    config: str | type
    model: str | type
    objective: str | type | None = None
    pipeline: str | type | None = None
    kind: str = "generator"
    description: str = ""
    contract_forward: Callable[[Any, dict[str, Any]], Any] | None = None
    contract_shape: Callable[[Any, int, int], tuple[int, ...]] | None = None
    contract_overrides: dict[str, Any] = field(default_factory=dict)
    tiny_config: str = ""
    contract_build: Callable[[Any], Any] | None = None
    contract_reference_loss: Callable[[Any, dict[str, Any]], float] | None = None
    contract_conditioning: tuple[ConditioningProbe, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelError(f"family {self.name!r}: kind={self.kind!r} must be one of {', '.join(KINDS)}")
        if not self.tiny_config:
            object.__setattr__(self, "tiny_config", f"{self.name}/tiny.yaml")

    def config_class(self) -> type:
        return _resolve(self.config, self.name, "config")

    def model_class(self) -> type:
        return _resolve(self.model, self.name, "model")

    def objective_class(self) -> type | None:
        return None if self.objective is None else _resolve(self.objective, self.name, "objective")

    def pipeline_class(self) -> type | None:
        return None if self.pipeline is None else _resolve(self.pipeline, self.name, "pipeline")

    def tiny_config_path(self) -> Path:
        """The tiny preset's path (``configs/<tiny_config>`` of the source tree unless absolute)."""
        path = Path(self.tiny_config)
        return path if path.is_absolute() else CONFIGS_DIR / path

    def defines(self, cls: type, what: str = "model") -> bool:
        """Whether ``cls`` is this family's ``what`` class, checked without importing the family's modules."""
        ref = getattr(self, what)
        if isinstance(ref, str):
            return ref == f"{cls.__module__}:{cls.__qualname__}"
        return ref is cls


def _resolve(ref: str | type, family: str, what: str) -> Any:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ModelError(f"family {family!r}: cannot import its {what} {ref!r} ({e})") from e


_DISCOVERED: dict[str, Family] | None = None
_RUNTIME: dict[str, Family] = {}


def _discover() -> dict[str, Family]:
    global _DISCOVERED
    if _DISCOVERED is None:
        found: dict[str, Family] = {}
        for info in pkgutil.iter_modules(__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            family = getattr(module, "FAMILY", None)
            if not isinstance(family, Family):
                raise ModelError(f"{module.__name__} defines no FAMILY = Family(...)")
            found[family.name] = family
        _DISCOVERED = found
    return _DISCOVERED


def register(family: Family) -> Family:
    """Add a family at run time (tests, plugins); replaces a run-time family of the same name."""
    _RUNTIME[family.name] = family
    return family


def unregister(name: str) -> None:
    """Remove a family added with :func:`register` (tests clean up with it)."""
    _RUNTIME.pop(name, None)


def all_families() -> dict[str, Family]:
    """Every declared family by name (declarations here, then run-time registrations)."""
    return {**_discover(), **_RUNTIME}


def family_names(kind: str | None = None) -> list[str]:
    return sorted(n for n, f in all_families().items() if kind is None or f.kind == kind)


def get(name: str) -> Family:
    """The declaration of family ``name``; an unknown name lists the valid ones."""
    families = all_families()
    if name not in families:
        raise ModelError(f"unknown model family {name!r}; valid families: {', '.join(sorted(families))}")
    return families[name]


__all__ = ["CONFIGS_DIR", "KINDS", "Family", "all_families", "family_names", "get", "register", "unregister"]
