"""The one loader: a model directory, run directory or shipped name -> its pipeline (or bare model).

``config.json`` is read once; the family's declaration says which model class and which pipeline to build.
``soundsmith.load`` and ``soundsmith.pipelines.load_pipeline`` are this loader.

A LoRA fine-tune run (or adapter folder: ``adapter.json`` + ``adapter.safetensors``, docs/finetune.md) loads as its
base model's pipeline with the adapter attached; ``adapters=[path, (path, scale), ...]`` attaches more.
"""

from __future__ import annotations

from collections.abc import Sequence
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


AdapterSpec = str | Path | tuple[str | Path, float]


def _base_of_adapter(directory: Path) -> str:
    """The base model an adapter names: its ``base`` (shipped name or path) if that resolves, else ``base_dir``."""
    from soundsmith.nn.lora import read_adapter_info

    info = read_adapter_info(directory)
    for ref in (info.get("base"), info.get("base_dir")):
        if ref:
            try:
                resolve_model_dir(ref)
            except ModelError:
                continue
            return str(ref)
    raise ModelError(
        f"{directory}: its base model {info.get('base')!r} ({info.get('base_dir')}) cannot be found; "
        "load the base yourself and attach the adapter with pipe.load_adapter(...)"
    )


def load(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    require_pipeline: bool = False,
    adapters: Sequence[AdapterSpec] | None = None,
    lora_scale: float | None = None,
) -> Any:
    """Load a model by shipped name, model directory or run directory.

    Families that generate audio come back wrapped in their pipeline (``soundsmith.load(run_dir)("a bell")``);
    the others (evaluators, autoencoders) come back as the bare ``nn.Module`` unless ``require_pipeline``.

    LoRA: a LoRA fine-tune run or adapter folder loads its base with the adapter attached; ``adapters`` attaches
    more (each a path, or ``(path, scale)``); ``lora_scale`` (0..1, default 1) is the scale of every adapter
    given without its own.
    """
    from soundsmith.nn.lora import find_adapter_dir

    adapter_dir = find_adapter_dir(name_or_path)
    specs: list[AdapterSpec] = list(adapters or [])
    if adapter_dir is not None:
        specs.insert(0, adapter_dir)
        name_or_path = _base_of_adapter(adapter_dir)
    elif lora_scale is not None and not specs:
        raise ModelError(
            f"a LoRA scale was given but {name_or_path} is not a LoRA fine-tune; give the run of a LoRA "
            "fine-tune or adapters to attach"
        )
    if specs:
        pipe = load(name_or_path, device=device, require_pipeline=True)
        if not hasattr(pipe, "load_adapter"):
            raise ModelError(f"model family {pipe.family!r} takes no LoRA adapters (latent_diffusion does)")
        for spec in specs:
            path, scale = (
                spec if isinstance(spec, tuple) else (spec, 1.0 if lora_scale is None else lora_scale)
            )
            pipe.load_adapter(path, scale=scale)
        return pipe
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


def load_pipeline(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    adapters: Sequence[AdapterSpec] | None = None,
    lora_scale: float | None = None,
) -> Pipeline:
    """Load a model directory / run directory / shipped name and return its pipeline (LoRA adapters as
    :func:`load`)."""
    return load(name_or_path, device=device, require_pipeline=True, adapters=adapters, lora_scale=lora_scale)
