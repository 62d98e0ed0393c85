"""Data order for training and validation (which items each rank reads at each optimizer step), and the
validation pass over it.

The order is ours, not the DataLoader's: a deterministic permutation per ``(seed, epoch)`` cut into global
batches, each shared out by rank and micro-batch, so that a run resumed after any kill replays exactly the batches
it has not yet consumed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from lightning_fabric import Fabric
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from soundsmith.seeding import mix_seed


class StepBatchSampler(Sampler[list[int]]):
    """Micro-batches of one epoch for one rank, from optimizer step ``start_step`` of that epoch on.

    The epoch's order is ``randperm(n)`` from a generator seeded by ``mix_seed(seed, epoch, "batches")``; global
    batch ``s`` is ``perm[s*B:(s+1)*B]``; rank ``r`` takes its ``B / world`` slice, cut into ``grad_accum``
    micro-batches. The last ``n % B`` items of an epoch are dropped (they come first in another epoch's order).
    """

    def __init__(
        self, n: int, global_batch: int, grad_accum: int, world_size: int, rank: int, seed: int, epoch: int,
        start_step: int = 0,
    ) -> None:  # fmt: skip
        self.n, self.global_batch, self.grad_accum = n, global_batch, grad_accum
        self.world_size, self.rank, self.seed, self.epoch = world_size, rank, seed, epoch
        self.start_step = start_step
        self.steps_per_epoch = n // global_batch

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator()
        g.manual_seed(mix_seed(self.seed, self.epoch, "batches"))
        perm = torch.randperm(self.n, generator=g)
        per_rank = self.global_batch // self.world_size
        micro = per_rank // self.grad_accum
        for s in range(self.start_step, self.steps_per_epoch):
            mine = perm[s * self.global_batch + self.rank * per_rank :][:per_rank]  # [B / world]
            for k in range(self.grad_accum):
                yield mine[k * micro : (k + 1) * micro].tolist()

    def __len__(self) -> int:
        return max(0, self.steps_per_epoch - self.start_step) * self.grad_accum


class ShardSampler(Sampler[list[int]]):
    """Validation: ``0..n-1`` padded (by wrapping) to a multiple of ``world``, rank ``r`` takes ``r::world``."""

    def __init__(self, n: int, batch_size: int, world_size: int, rank: int) -> None:
        total = math.ceil(n / world_size) * world_size
        self.indices = [i % n for i in range(total)][rank::world_size]
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(0, len(self.indices), self.batch_size):
            yield self.indices[i : i + self.batch_size]

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)


def train_loader(
    fabric: Fabric,
    dataset: Dataset,
    batch_size: int,
    grad_accum: int,
    seed: int,
    epoch: int,
    position: int,
    collate_fn: Callable[[list[Any]], Any],
    num_workers: int = 0,
) -> DataLoader:
    """Micro-batches of ``epoch`` for this process from optimizer step ``position`` of the epoch on."""
    world, rank = fabric.world_size, fabric.global_rank
    sampler = StepBatchSampler(len(dataset), batch_size, grad_accum, world, rank, seed, epoch, position)
    g = torch.Generator()  # worker seeds come from here, not from the global RNG
    g.manual_seed(mix_seed(seed, epoch, rank, "workers"))
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=g,
        pin_memory=fabric.device.type == "cuda",
    )
    return fabric.setup_dataloaders(loader, use_distributed_sampler=False)


def valid_loader(
    fabric: Fabric,
    dataset: Dataset,
    batch_size: int,
    collate_fn: Callable[[list[Any]], Any],
    num_workers: int = 0,
) -> DataLoader:
    """Every item of ``dataset`` once (padded by wrapping to equal shards), in order, ``batch_size`` per batch."""
    sampler = ShardSampler(len(dataset), batch_size, fabric.world_size, fabric.global_rank)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=collate_fn)
    return fabric.setup_dataloaders(loader, use_distributed_sampler=False)


def validation_means(
    fabric: Fabric,
    module: nn.Module,
    dataset: Dataset,
    batch_size: int,
    collate_fn: Callable[[list[Any]], Any],
    num_workers: int = 0,
) -> dict[str, float]:
    """``module.validate`` over every item of ``dataset`` (sharded over ranks), item-weighted means of each key,
    summed over all ranks. ``module`` is the Fabric-wrapped objective; it is left in train mode."""
    loader = valid_loader(fabric, dataset, batch_size, collate_fn, num_workers)
    module.eval()
    sums: dict[str, float] = {}
    count = 0
    with torch.no_grad():
        for batch in loader:
            n = batch_len(batch)
            for key, value in module.validate(module.prepare_batch(batch)).items():
                sums[key] = sums.get(key, 0.0) + float(value) * n
            count += n
    module.train()
    keys = sorted(sums)
    totals = torch.tensor([count] + [sums[k] for k in keys], dtype=torch.float64, device=fabric.device)
    if fabric.world_size > 1:
        totals = fabric.all_reduce(totals, reduce_op="sum")
    totals = totals.cpu().tolist()
    return {k: totals[i + 1] / max(1.0, totals[0]) for i, k in enumerate(keys)}


def batch_len(batch: Any) -> int:
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                return int(value.shape[0])
            if isinstance(value, (list, tuple)):
                return len(value)
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    return 1
