"""Model families (one file each: config dataclass + nn.Module), the registry, model directories, composites."""

from soundsmith.models.registry import (
    ShippedRef,
    TextEncoderSpec,
    clear_frozen_components,
    family_names,
    frozen_component,
    get_family,
    load_model,
    read_model_config,
    resolve_model_dir,
    save_model,
    shipped_models,
    text_encoder,
)

__all__ = [
    "ShippedRef",
    "TextEncoderSpec",
    "clear_frozen_components",
    "family_names",
    "frozen_component",
    "get_family",
    "load_model",
    "read_model_config",
    "resolve_model_dir",
    "save_model",
    "shipped_models",
    "text_encoder",
]
