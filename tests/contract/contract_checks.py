"""The contract checks, written once, taking a family declaration (``soundsmith.families.Family``) as input.

Everything particular to a family comes from its declaration: the tiny preset (``tiny_config_path()``), the
config overrides for the tests (``contract_overrides``), how to build it (``contract_build``), the output to
compare (``contract_forward``) and its shape (``contract_shape``), the objective and the pipeline. A family
declared inside a test file runs through these same functions (tests/contract/test_contract_toy_family.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

import soundsmith
from soundsmith.families import Family
from soundsmith.models.registry import load_model, save_model
from soundsmith.pipelines import Pipeline, pipeline_for
from soundsmith.train.objectives import get_objective
from soundsmith.train.runconfig import load_run_config


def build(family: Family, seed: int = 0) -> tuple[Any, torch.nn.Module]:
    """The family's tiny preset (run config) and its model, built with the declaration's test overrides."""
    run = load_run_config(family.tiny_config_path())
    assert run.family == family.name, f"{family.tiny_config_path()} declares family {run.family!r}"
    cfg = (
        dataclasses.replace(run.model, **family.contract_overrides)
        if family.contract_overrides
        else run.model
    )
    torch.manual_seed(seed)
    model = family.contract_build(cfg) if family.contract_build else family.model_class()(cfg)
    return run, model


def tiny_model_dir(name: str, directory: str | Path) -> Path:
    """Family ``name``'s tiny preset (with its contract overrides), untrained, saved as a model directory."""
    from soundsmith import families

    _, model = build(families.get(name))
    return save_model(model, directory, family=name)


def batch_of(run: Any, model: torch.nn.Module, n: int = 4) -> dict[str, Any]:
    """``n`` clips of the preset's length: tones plus noise, a caption and a label each."""
    labels = list(getattr(model.config, "labels", []) or ["bell", "rain"])
    rng = np.random.default_rng(0)
    T = int(round(run.data.clip_seconds * run.data.sample_rate))
    t = np.arange(T) / run.data.sample_rate
    audio = np.stack(
        [0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) + 0.05 * rng.standard_normal(T) for i in range(n)]
    )
    picks = [i % len(labels) for i in range(n)]
    return {
        "audio": torch.tensor(audio, dtype=torch.float32),
        "caption": [f"a tone number {i}" for i in range(n)],
        "labels": [[labels[p]] for p in picks],
        "label_ids": torch.eye(len(labels))[picks],
    }


def _slice(batch: dict[str, Any], i: int) -> dict[str, Any]:
    return {k: v[i : i + 1] for k, v in batch.items()}


def _forward(family: Family, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    assert family.contract_forward is not None, f"family {family.name!r} declares no contract_forward"
    return family.contract_forward(model, batch)


def check_shape_and_batch_equals_singles(family: Family) -> None:
    run, model = build(family)
    model.eval()
    obj = get_objective(family.name)(model)
    batch = batch_of(run, model)
    with torch.no_grad():
        out = _forward(family, model, obj.prepare_batch(batch))
        T = batch["audio"].shape[-1]
        assert family.contract_shape is not None, f"family {family.name!r} declares no contract_shape"
        assert tuple(out.shape) == tuple(family.contract_shape(model.config, 4, T))
        assert torch.isfinite(out).all()
        singles = torch.cat([_forward(family, model, obj.prepare_batch(_slice(batch, i))) for i in range(4)])
    torch.testing.assert_close(out, singles, rtol=1e-4, atol=1e-5)


def check_save_load_identical(family: Family, directory: Path) -> None:
    run, model = build(family)
    model.eval()
    save_model(model, directory)
    loaded = load_model(directory)
    assert type(loaded) is type(model) and loaded.config == model.config
    batch = get_objective(family.name)(model).prepare_batch(batch_of(run, model))
    with torch.no_grad():
        torch.testing.assert_close(
            _forward(family, loaded, batch), _forward(family, model, batch), rtol=0, atol=0
        )


def check_few_steps_lower_the_loss(family: Family) -> None:
    run, model = build(family)
    obj = get_objective(family.name)(model)
    batch = obj.prepare_batch(batch_of(run, model))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> float:  # in train mode: batch-norm layers use the batch's statistics, as during the steps
        model.train()
        with torch.no_grad():
            return float(obj.losses(batch, 0)["loss"])

    before = loss()
    for _ in range(15):
        opt.zero_grad()
        obj.losses(batch, 0)["loss"].backward()
        opt.step()
    assert loss() < before * 0.95


def check_same_seed_same_audio(family: Family) -> None:
    """Families with a pipeline: same seed, same audio; another seed, other audio; the requested length."""
    _, model = build(family)
    model.eval()
    pipe = pipeline_for(model, family.name)
    assert isinstance(pipe, Pipeline)
    a = pipe("a tone", duration=0.01, seed=3, progress=False).audio
    b = pipe("a tone", duration=0.01, seed=3, progress=False).audio
    c = pipe("a tone", duration=0.01, seed=4, progress=False).audio
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (1, int(round(0.01 * model.config.sample_rate)))
    both = pipe(["a tone", "a tone"], duration=0.01, seed=3, progress=False)
    assert [r.prompt for r in both] == ["a tone", "a tone"]
    np.testing.assert_array_equal(both[1].audio, a)


def check_loads_with_soundsmith_load(family: Family, directory: Path) -> None:
    """``soundsmith.load(dir)`` gives the pipeline (generators) or the bare model, of the declared classes."""
    _, model = build(family)
    save_model(model.eval(), directory)
    loaded = soundsmith.load(directory)
    if family.pipeline is None:
        assert type(loaded) is family.model_class()
    else:
        assert type(loaded) is family.pipeline_class() and type(loaded.model) is family.model_class()
        assert loaded.source is not None and len(loaded.source.weights_sha256) == 64


def check_all(family: Family, tmp_path: Path) -> None:
    """Every contract check in turn (for families declared inside a test)."""
    check_shape_and_batch_equals_singles(family)
    check_save_load_identical(family, tmp_path / "saved")
    check_few_steps_lower_the_loss(family)
    if family.pipeline is not None:
        check_same_seed_same_audio(family)
    check_loads_with_soundsmith_load(family, tmp_path / "loaded")
