"""Composite models: one model directory holding named components (text encoder, VAE, vocoder, denoiser...).

A family whose model is made of parts subclasses :class:`CompositeModel` and is built as
``Model(config, components={"vae": ShippedRef("vae"), "text_encoder": TextEncoderSpec("minilm"),
"denoiser": Denoiser(...)})``:

- trainable components (``nn.Module`` values) become submodules under ``self.components``: the optimizer, EMA
  and training checkpoints see them, and ``save_model`` writes each to its own sub-folder;
- frozen components (:class:`ShippedRef`, :class:`TextEncoderSpec`) are **not** submodules: ``self.part(name)``
  fetches the process-wide shared instance (built once, see ``registry.frozen_component``), on the model's
  device, so no optimizer, EMA or checkpoint ever holds them; ``save_model`` records them by reference.

``save_model(model, dir)`` / ``load_model(dir)`` round-trip a composite like any other model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from soundsmith.errors import ModelError
from soundsmith.models.registry import ShippedRef, TextEncoderSpec, frozen_component

Component = nn.Module | ShippedRef | TextEncoderSpec


class CompositeModel(nn.Module):
    """Base of models made of named components. Subclasses add their own layers and ``forward``.

    Attributes:
        config: the family's config dataclass.
        components: ``nn.ModuleDict`` of the trainable components.
    """

    def __init__(self, config: Any, components: Mapping[str, Component]) -> None:
        super().__init__()
        self.config = config
        trainable: dict[str, nn.Module] = {}
        frozen: dict[str, ShippedRef | TextEncoderSpec] = {}
        for name, value in components.items():
            if not name.isidentifier():
                raise ModelError(
                    f"component name {name!r} must be a Python identifier (it names a sub-folder)"
                )
            if isinstance(value, (ShippedRef, TextEncoderSpec)):
                frozen[name] = value
            elif isinstance(value, nn.Module):
                trainable[name] = value
            else:
                raise ModelError(
                    f"component {name!r}: {type(value).__name__} is not an nn.Module, ShippedRef or TextEncoderSpec"
                )
        self.components = nn.ModuleDict(trainable)
        self._frozen = frozen  # references only: the modules live in the shared per-process cache
        self._fetched: dict[tuple[str, torch.device], nn.Module] = {}  # plain dict: not submodules

    def __deepcopy__(self, memo: dict[int, Any]) -> CompositeModel:
        """A deep copy (e.g. EMA's averaged model) that shares the frozen parts instead of copying them."""
        import copy

        cls = type(self)
        clone = cls.__new__(cls)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            clone.__dict__[key] = {} if key == "_fetched" else copy.deepcopy(value, memo)
        return clone

    def _device(self) -> torch.device:
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def part(self, name: str) -> nn.Module:
        """The component ``name``: a trainable submodule, or the shared frozen module on this model's device."""
        if name in self.components:
            return self.components[name]
        if name in self._frozen:
            device = self._device()
            module = self._fetched.get((name, device))
            if module is None:
                module = self._fetched[(name, device)] = frozen_component(self._frozen[name], device)
            return module
        raise ModelError(f"no component {name!r}; components: {', '.join(self.component_refs())}")

    def component_refs(self) -> dict[str, Component]:
        """Every component by name: trainable modules and frozen references (what ``save_model`` records)."""
        return {**dict(self.components.items()), **self._frozen}

    def frozen_parts(self) -> dict[str, nn.Module]:
        """The frozen components, built (or fetched from the shared cache) on this model's device."""
        return {name: self.part(name) for name in self._frozen}
