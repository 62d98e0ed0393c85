"""Contract checks that look at answers, not only at shapes (issue 17), run on every declared family.

* **Loss by hand**: the objective's loss on a tiny batch equals the family's reference loss, computed another way
  (``Family.contract_reference_loss(model, prepared_batch) -> float``, e.g. one prefix forward per position).
* **EMA export**: a few training steps with ``ema_decay > 0``; ``RUN/model/`` holds the EMA shadow, not the raw
  weights (generic: every trainable family).
* **Seeds reach what they seed**: candidate ``i`` of a call uses ``seed + i``; the audio depends on the seed and
  on nothing else (not the global torch / numpy RNG state) (generic: every family with a pipeline).
* **Conditioning acts where it should**: each ``Family.contract_conditioning`` probe changes one conditioning
  input; the output (last axis of ``contract_forward``) must stay bit-identical before the probe's first
  affected index, change at it, and (when the probe gives a last index) stay identical after it.

The two family hooks are read with ``getattr`` so that this file runs before the declarations carry them; a
family without a hook is skipped with the reason (see docs/testing.md for the fields to declare).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from contract_checks import batch_of, build
from torch.utils.data import Dataset

from soundsmith import families
from soundsmith.families import Family
from soundsmith.models.registry import load_model
from soundsmith.pipelines import pipeline_for
from soundsmith.train import Trainer
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives import get_objective

DECLARED = sorted(families.all_families().values(), key=lambda f: f.name)
TRAINABLE = [pytest.param(f, id=f.name) for f in DECLARED if f.objective is not None]
GENERATORS = [pytest.param(f, id=f.name) for f in DECLARED if f.pipeline is not None]


def _hook(family: Family, name: str) -> Any:
    value = getattr(family, name, None)
    if not value:
        pytest.skip(f"family {family.name!r} declares no {name} (docs/testing.md: contract hooks)")
    return value


# --- 1. the loss equals a reference computed by hand ---------------------------------------------------------
@pytest.mark.parametrize("family", TRAINABLE)
def test_loss_equals_the_reference_by_hand(family):
    reference = _hook(family, "contract_reference_loss")
    run, model = build(family)
    model.eval()  # no dropout: the objective and the reference see the same network
    obj = get_objective(family.name)(model).eval()  # and the objective's eval path (no sampled noise)
    batch = obj.prepare_batch(batch_of(run, model, n=2))
    with torch.no_grad():
        got = float(obj.losses(batch, 0)["loss"])
        want = float(reference(model, batch))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6), f"{family.name}: loss {got} != reference {want}"


# --- 2. the exported model holds the EMA weights ---------------------------------------------------------------
class _Clips(Dataset):
    """The contract batch as a dataset of single items (tensors sliced, lists indexed)."""

    def __init__(self, batch: dict[str, Any]) -> None:
        self.batch = batch
        self.n = len(batch["audio"])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.batch.items()}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        k: torch.stack([it[k] for it in items])
        if isinstance(items[0][k], torch.Tensor)
        else [it[k] for it in items]
        for k in items[0]
    }


@pytest.mark.parametrize("family", TRAINABLE)
def test_exported_weights_are_the_ema_weights(family, tmp_path):
    run, model = build(family)
    obj = get_objective(family.name)(model)
    cfg = TrainConfig(
        max_steps=3, batch_size=2, lr=1e-2, ema_decay=0.5, checkpoint_every=0, valid_every=0, sample_every=0,
        log_every=1, accelerator="cpu", devices=1, seed=0,
    )  # fmt: skip
    trainer = Trainer(obj, _Clips(batch_of(run, model, n=4)), None, cfg, tmp_path, collate_fn=_collate)
    trainer.fit()
    assert (tmp_path / "model").is_dir(), f"{family.name}: the run exported no model directory"
    exported = load_model(tmp_path / "model").state_dict()
    shadow = trainer.ema.shadow
    raw = obj.model.state_dict()
    missing = sorted(set(exported) - set(shadow))
    assert not missing, f"{family.name}: exported tensors the EMA does not track: {missing[:5]}"
    moved = 0
    for key, value in exported.items():
        assert torch.equal(value.float(), shadow[key].float()), f"{family.name}: {key} is not the EMA shadow"
        moved += int(not torch.equal(value.float(), raw[key].float()))
    assert moved > 0, f"{family.name}: the exported weights equal the raw weights (EMA not exported?)"


# --- 3. each seed reaches what it seeds -------------------------------------------------------------------------
def _pipe(family: Family):
    _, model = build(family)
    return pipeline_for(model.eval(), family.name)


def _audio(pipe, **kw) -> np.ndarray:
    return np.asarray(pipe("a tone", duration=0.01, progress=False, **kw).audio)


@pytest.mark.parametrize("family", GENERATORS)
def test_candidate_i_is_the_run_with_seed_plus_i(family):
    pipe = _pipe(family)
    out = pipe("a tone", duration=0.01, progress=False, seed=5, num_candidates=2)
    both = np.asarray(out.audio)
    assert both.shape[0] == 2
    # candidates may come back ranked best first (CLAP): each carries its own seed
    seeds = list(out.meta.get("candidate_seeds") or [5, 6])
    assert sorted(seeds) == [5, 6], f"{family.name}: candidate seeds {seeds}"
    # a batch of 2 may round differently from a batch of 1 (float32 kernels), by far less than the seeds differ
    rounding = max(np.abs(both[i] - _audio(pipe, seed=s)[0]).max() for i, s in enumerate(seeds))
    assert rounding <= 1e-4, (
        f"{family.name}: candidate i is not the run with seed + i (max diff {rounding:.3g})"
    )
    seed_effect = np.abs(both[0] - both[1]).max()
    assert seed_effect > 10 * rounding and seed_effect > 0, (
        f"{family.name}: seeds 5 and 6 give the same audio (max diff {seed_effect:.3g})"
    )


@pytest.mark.parametrize("family", GENERATORS)
def test_the_seed_alone_decides_the_audio(family):
    """The global RNGs are scrambled between two calls: a sampler that draws from them instead of its own
    generator gives different audio for the same seed."""
    pipe = _pipe(family)
    torch.manual_seed(0)
    np.random.seed(0)
    a = _audio(pipe, seed=7)
    torch.manual_seed(12345)
    np.random.seed(12345)
    torch.rand(17)
    b = _audio(pipe, seed=7)
    np.testing.assert_array_equal(a, b)


# --- 4. each conditioning input changes the output where (in time) it should, and nowhere else ---------------
def _probes(family: Family) -> list[Any]:
    return list(getattr(family, "contract_conditioning", None) or [])


PROBES = [
    pytest.param(f, i, id=f"{f.name}-{getattr(p, 'name', i)}")
    for f in DECLARED
    for i, p in enumerate(_probes(f))
] or [pytest.param(None, None, id="no-family-declares-probes")]


@pytest.mark.parametrize("family,index", PROBES)
def test_conditioning_changes_the_output_only_where_it_should(family, index):
    if family is None:
        pytest.skip("no family declares contract_conditioning (docs/testing.md: contract hooks)")
    probe = _probes(family)[index]
    check_conditioning_probe(family, probe)


def check_conditioning_probe(family: Family, probe: Any) -> None:
    """``probe``: ``name``, ``overrides`` (config fields it needs), ``vary(prepared) -> prepared`` and
    ``expect(config, T) -> (first, last | None)``: output indices (last axis) that must change."""
    extra = dict(getattr(probe, "overrides", {}) or {})
    with_probe = dataclasses.replace(family, contract_overrides={**family.contract_overrides, **extra})
    run, model = build(with_probe)
    model.eval()
    obj = get_objective(family.name)(model)
    batch = obj.prepare_batch(batch_of(run, model, n=1))
    varied = probe.vary({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
    with torch.no_grad():
        a = family.contract_forward(model, batch)
        b = family.contract_forward(model, varied)
    diff = (a - b).abs().flatten(0, -2).amax(0)  # [T_out]: the largest change at each output index
    first, last = probe.expect(model.config, batch["audio"].shape[-1])
    where = f"{family.name}/{probe.name}"
    assert first == 0 or float(diff[:first].max()) == 0.0, (
        f"{where}: the output changed before index {first} (first change at {int(torch.nonzero(diff)[0, 0])})"
    )
    assert float(diff[first]) > 0.0, f"{where}: the output did not change at index {first}"
    if last is not None:
        assert last + 1 >= len(diff) or float(diff[last + 1 :].max()) == 0.0, (
            f"{where}: the output changed after index {last}"
        )
