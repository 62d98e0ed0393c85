"""Model families (one file each: config dataclass + nn.Module), the registry and model directories."""

from soundsmith.models.registry import (
    family_names,
    get_family,
    load_model,
    read_model_config,
    register_family,
    save_model,
)

__all__ = ["family_names", "get_family", "load_model", "read_model_config", "register_family", "save_model"]
