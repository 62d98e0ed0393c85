"""Metric.sync across processes holding different numbers of clips, through the real pad-and-trim path.

``ThreadFabric`` runs one thread per fake rank; its ``all_gather``/``all_reduce`` are real collectives (every rank
blocks until all have contributed, and ``all_gather`` stacks equal-shaped tensors like
``torch.distributed.all_gather`` does, so unpadded uneven rows fail as they would under DDP). Each rank syncs its
own metric; every rank must end with exactly the state of one metric that saw all the rows, in rank order.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from soundsmith.eval.frechet import FrechetDistance
from soundsmith.eval.metrics import InceptionScore, PosteriorKL


class ThreadFabric:
    """The collectives of one rank out of ``world_size`` threads that share a ``_Hub``."""

    def __init__(self, hub: _Hub, rank: int) -> None:
        self.hub, self.global_rank, self.world_size = hub, rank, hub.world_size

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        parts = self.hub.exchange(self.global_rank, t)
        shapes = {tuple(p.shape) for p in parts}
        if len(shapes) != 1:
            raise RuntimeError(f"all_gather needs equal shapes on every rank, got {sorted(shapes)}")
        return torch.stack(parts)  # [world, ...]

    def all_reduce(self, t: torch.Tensor, reduce_op: str = "sum") -> torch.Tensor:
        assert reduce_op == "sum"
        return torch.stack(self.hub.exchange(self.global_rank, t)).sum(0)


class _Hub:
    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=30)
        self.slots: list[torch.Tensor | None] = [None] * world_size

    def exchange(self, rank: int, t: torch.Tensor) -> list[torch.Tensor]:
        self.slots[rank] = t.clone()
        self.barrier.wait()
        parts = list(self.slots)
        self.barrier.wait()  # everyone has read before the next collective overwrites
        return parts


def run_ranks(metrics: list, world_size: int, check: bool = True) -> list[BaseException]:
    """``metrics[r].sync(fabric_r)`` on ``world_size`` threads at once; re-raises the first failure (``check``)
    or returns the failures."""
    hub = _Hub(world_size)
    errors: list[BaseException] = []

    def work(r: int) -> None:
        try:
            metrics[r].sync(ThreadFabric(hub, r))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
            hub.barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors and check:
        raise errors[0]
    return errors


COUNTS = [(3, 1), (1, 4, 2), (5, 5, 1, 2)]  # rows per rank: the longest rank is first, last, in the middle


@pytest.mark.parametrize("counts", COUNTS)
def test_frechet_sync_with_uneven_counts_equals_one_metric_over_all_rows(counts):
    rng = np.random.default_rng(sum(counts))
    world = len(counts)
    gen = [torch.tensor(rng.normal(size=(n, 3))) for n in counts]
    ref = [torch.tensor(rng.normal(loc=0.5, size=(n + 2, 3))) for n in counts]  # other counts again
    single = FrechetDistance()
    for r in range(world):
        single.update(generated=gen[r], reference=ref[r])
    per_rank = [FrechetDistance() for _ in range(world)]
    for r in range(world):
        per_rank[r].update(generated=gen[r], reference=ref[r])
    run_ranks(per_rank, world)
    want_g, want_r = torch.cat(gen), torch.cat(ref)
    for m in per_rank:
        assert torch.equal(m._cat("generated"), want_g)  # all rows, in rank order, no padding rows
        assert torch.equal(m._cat("reference"), want_r)
        assert m.compute() == pytest.approx(single.compute(), rel=1e-12)


def test_sum_states_sync_with_uneven_counts():
    rng = np.random.default_rng(0)
    counts = (4, 1, 2)
    probs = [torch.tensor(rng.dirichlet(np.ones(5), n)) for n in counts]
    refs = [torch.tensor(rng.dirichlet(np.ones(5), n)) for n in counts]
    single_is, single_kl = InceptionScore(), PosteriorKL()
    ranks_is, ranks_kl = [InceptionScore() for _ in counts], [PosteriorKL() for _ in counts]
    for r in range(len(counts)):
        single_is.update(probs[r])
        single_kl.update(probs[r], refs[r])
        ranks_is[r].update(probs[r])
        ranks_kl[r].update(probs[r], refs[r])
    run_ranks(ranks_is, len(counts))
    run_ranks(ranks_kl, len(counts))
    for m in ranks_is:
        assert int(m.count) == sum(counts)
        assert m.compute() == pytest.approx(single_is.compute(), rel=1e-12)
    for m in ranks_kl:
        assert m.compute() == pytest.approx(single_kl.compute(), rel=1e-12)


def test_unpadded_uneven_gather_is_refused_by_the_fake_collective():
    """The fake all_gather refuses unequal shapes, as torch.distributed does: the padding is needed."""
    hub = _Hub(2)
    out: list = []

    def work(r: int) -> None:
        try:
            ThreadFabric(hub, r).all_gather(torch.zeros(r + 1, 2))
        except RuntimeError as e:
            out.append(str(e))

    threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 2 and "equal shapes" in out[0]


def test_empty_rank_is_a_named_error():
    metrics = [FrechetDistance(), FrechetDistance()]
    metrics[0].update(generated=torch.zeros(2, 3))
    metrics[1].update(generated=torch.zeros(2, 3), reference=torch.zeros(1, 3))
    errors = run_ranks(metrics, 2, check=False)
    named = [
        e for e in errors if isinstance(e, RuntimeError) and "reference is empty on one process" in str(e)
    ]
    assert len(named) == 1, errors  # the other rank sees its collective aborted
