"""Accumulating metric base: `update()` adds to a state of sums and concatenations, `compute()` reads it.

Because the state is only sums and lists of rows, two metrics merge exactly (`merge(other)`) and a
distributed run reduces with one all-reduce per sum and one all-gather per list (`sync(fabric)`).
Metrics never load data themselves: callers pass tensors.
"""

from __future__ import annotations

from typing import Any

import torch


class Metric:
    """Subclasses list their state names in `sum_states` (tensors, summed) and `cat_states` (row lists)."""

    sum_states: tuple[str, ...] = ()
    cat_states: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        for name in self.sum_states:
            setattr(self, name, torch.zeros((), dtype=torch.float64))
        for name in self.cat_states:
            setattr(self, name, [])

    def update(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _cat(self, name: str) -> torch.Tensor | None:
        parts = getattr(self, name)
        return torch.cat(parts, dim=0) if parts else None

    def merge(self, other: Metric) -> Metric:
        """Add another metric's state to this one (same class). Returns self."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for name in self.sum_states:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in self.cat_states:
            getattr(self, name).extend(getattr(other, name))
        return self

    def sync(self, fabric: Any) -> Metric:
        """Reduce the state across processes with a Lightning Fabric (or anything with all_reduce/all_gather).

        Lists may differ in length per process: they are padded to the longest before the gather and trimmed
        after, so every process ends up with the concatenation of all rows (process order).
        """
        if getattr(fabric, "world_size", 1) <= 1:
            return self
        for name in self.sum_states:
            setattr(self, name, fabric.all_reduce(getattr(self, name), reduce_op="sum"))
        for name in self.cat_states:
            local = self._cat(name)
            if local is None:
                raise RuntimeError(
                    f"{type(self).__name__}.{name} is empty on one process; update before sync"
                )
            n = torch.tensor([local.shape[0]], device=local.device)
            sizes = fabric.all_gather(n).reshape(-1).tolist()
            pad = torch.zeros((max(sizes) - local.shape[0], *local.shape[1:]), dtype=local.dtype)
            gathered = fabric.all_gather(torch.cat([local, pad.to(local.device)]))  # [world, max, ...]
            setattr(self, name, [gathered[r, : sizes[r]].cpu() for r in range(len(sizes))])
        return self
