"""The models a server offers: described without loading, loaded once on first use, one job at a time each."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

from soundsmith import families
from soundsmith.errors import ModelError
from soundsmith.pipelines.base import DEFAULT_DURATION_S, Pipeline
from soundsmith.server.schemas import FAMILY_OPTIONS


def accepted_options(pipeline_cls: type) -> list[str]:
    """The family options (``FAMILY_OPTIONS``) that a pipeline class's ``generate`` names as keyword arguments."""
    params = inspect.signature(pipeline_cls.generate).parameters
    return [name for name in FAMILY_OPTIONS if name in params]


class ModelCatalog:
    """``name -> pipeline``, each built once per process and shared by every request.

    ``sources`` maps the names clients use to model/run directories, shipped names or built pipelines; a
    client can only pick among these names. :meth:`describe` reads ``config.json`` without building the model, so
    a bad directory fails at start-up rather than on the first request.
    """

    def __init__(self, sources: dict[str, Any], device: str = "cpu") -> None:
        self.device = device
        self._sources = dict(sources)
        self._pipes: dict[str, Pipeline] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._load_lock = threading.Lock()
        self._run_locks = {name: threading.Lock() for name in self._sources}
        for name, source in self._sources.items():
            if isinstance(source, Pipeline):
                self._pipes[name] = source
            self._info[name] = self._read_info(name, source)

    def _read_info(self, name: str, source: Any) -> dict[str, Any]:
        if isinstance(source, Pipeline):
            family, cls = source.family, type(source)
            sample_rate = source.sample_rate
            where = source.source.directory if source.source is not None else "(built in process)"
        else:
            from soundsmith.models.registry import read_model_config, resolve_model_dir

            directory = resolve_model_dir(source)
            meta = read_model_config(directory)
            family = meta["family"]
            cls = families.get(family).pipeline_class()
            if cls is None:
                raise ModelError(
                    f"{source}: model family {family!r} does not generate audio; give a generator's directory"
                )
            sample_rate = int(meta["config"].get("sample_rate", 0)) or None
            where = str(Path(directory).resolve())
        return {
            "name": name,
            "family": family,
            "sample_rate": sample_rate,
            "default_duration": float(getattr(cls, "default_duration", DEFAULT_DURATION_S)),
            "options": accepted_options(cls),
            "source": where,
        }

    def names(self) -> list[str]:
        return list(self._sources)

    def __contains__(self, name: str) -> bool:
        return name in self._sources

    def describe(self, name: str) -> dict[str, Any]:
        return {**self._info[name], "loaded": name in self._pipes}

    def loaded(self) -> list[str]:
        return [name for name in self._sources if name in self._pipes]

    def get(self, name: str) -> Pipeline:
        """The shared pipeline for ``name``, loaded on first use."""
        pipe = self._pipes.get(name)
        if pipe is not None:
            return pipe
        with self._load_lock:
            if name not in self._pipes:
                from soundsmith.pipelines.loader import load_pipeline

                self._pipes[name] = load_pipeline(self._sources[name], device=self.device)
            return self._pipes[name]

    def run_lock(self, name: str) -> threading.Lock:
        """Held while the model generates: a model's pipeline serves one job at a time."""
        return self._run_locks[name]
