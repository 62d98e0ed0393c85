"""The one loader: a model directory, run directory or shipped name -> its pipeline (or bare model).

``config.json`` is read once; the family's declaration says which model class and which pipeline to build.
``soundsmith.load`` and ``soundsmith.pipelines.load_pipeline`` are this loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from soundsmith import families
from soundsmith.errors import ModelError
from soundsmith.models.registry import (
    build_model,
    family_of,
    read_model_config,
    resolve_model_dir,
    weights_sha256,
)
from soundsmith.pipelines.base import ModelSource, Pipeline


def generator_families() -> list[str]:
    """The declared families that have a pipeline (generate audio from a prompt)."""
    return sorted(name for name, fam in families.all_families().items() if fam.pipeline is not None)


def has_pipeline(family: str) -> bool:
    return families.get(family).pipeline is not None


def pipeline_for(
    model: torch.nn.Module, family: str | None = None, source: ModelSource | None = None
) -> Pipeline:
    """Wrap a model (already on its device) in its family's pipeline; its frozen text encoder comes shared."""
    family = family or family_of(model)
    cls = families.get(family).pipeline_class()
    if cls is None:
        raise ModelError(
            f"model family {family!r} does not generate audio; families that generate: {generator_families()}"
        )
    return cls(model, source=source)


def load(name_or_path: str | Path, device: str | torch.device = "cpu", require_pipeline: bool = False) -> Any:
    """Load a model by shipped name, model directory or run directory.

    Families that generate audio come back wrapped in their pipeline (``soundsmith.load(run_dir)("a bell")``);
    the others (evaluators, autoencoders) come back as the bare ``nn.Module`` unless ``require_pipeline``.
    """
    directory = resolve_model_dir(name_or_path)
    meta = read_model_config(directory)
    family = families.get(meta["family"])
    if family.pipeline is None and require_pipeline:
        raise ModelError(
            f"{directory}: model family {family.name!r} does not generate audio; "
            f"families that generate: {generator_families()}"
        )
    model = build_model(directory, meta, device=device)
    if family.pipeline is None:
        return model
    source = ModelSource(
        name=str(name_or_path), directory=str(directory), weights_sha256=weights_sha256(directory)
    )
    return pipeline_for(model, family.name, source=source)


def load_pipeline(name_or_path: str | Path, device: str | torch.device = "cpu") -> Pipeline:
    """Load a model directory / run directory / shipped name and return its pipeline."""
    return load(name_or_path, device=device, require_pipeline=True)
