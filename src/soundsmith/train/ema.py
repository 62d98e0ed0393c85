"""Exponential moving average of a model's weights: ``shadow = decay * shadow + (1 - decay) * param``."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Shadow copies (float32, on the parameters' device) of every parameter and buffer of ``model``.

    Floating parameters are averaged with a constant ``decay``; buffers (and integer tensors) are copied.
    No bias correction or decay warmup: the average starts from the initial weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: t.detach().clone().float() if t.is_floating_point() else t.detach().clone()
            for name, t in model.state_dict().items()
        }
        self._param_names = {name for name, _ in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` (same architecture) into the average."""
        for name, value in model.state_dict().items():
            shadow = self.shadow[name]
            if name in self._param_names and value.is_floating_point():
                shadow.mul_(self.decay).add_(value.detach().float(), alpha=1.0 - self.decay)
            else:
                shadow.copy_(value.detach())
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> nn.Module:
        """Load the averaged weights into ``model`` (cast to its dtypes); returns it."""
        state = model.state_dict()
        model.load_state_dict({k: v.to(state[k].dtype) for k, v in self.shadow.items()})
        return model

    def averaged_model(self, model: nn.Module) -> nn.Module:
        """A deep copy of ``model`` holding the averaged weights (``model`` is left as it is)."""
        return self.copy_to(copy.deepcopy(model))

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:5]}")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)
