"""Contract tests, written once and run on every model family's tiny preset.

Each family must: build from its preset in well under a second; give outputs of the documented shape;
round-trip through save -> load with identical outputs; give a batch of N equal to N single runs; lower its
loss on a fixed batch within a few optimizer steps; and (families that generate) give the same audio for
the same seed.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from soundsmith.config import load_run_config
from soundsmith.models.registry import get_family, load_model, save_model
from soundsmith.pipelines import has_pipeline, pipeline_for
from soundsmith.train.objectives import get_objective

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAMILIES = sorted(p.name for p in CONFIGS.iterdir() if (p / "tiny.yaml").is_file())


def _forward(family: str, model: torch.nn.Module, b: dict) -> torch.Tensor:
    """The family's network output for a prepared batch, as one tensor with the batch first."""
    if family == "wavenet":
        return model(b["codes"], gc_ids=b.get("gc_ids"), text_emb=b.get("text_emb"), mel=b.get("wavenet_mel"))
    if family == "tagger":
        return model(b["mel"])
    if family == "clap":
        audio, text, _ = model(b["mel"], b["text_pooled"])
        return torch.cat([audio, text], dim=-1)
    raise AssertionError(f"no contract adapter for family {family!r}: add one when adding a family")


EXPECTED_SHAPE = {
    "wavenet": lambda cfg, B, T: (B, cfg.quantization_channels, T),
    "tagger": lambda cfg, B, T: (B, len(cfg.labels)),
    "clap": lambda cfg, B, T: (B, 2 * cfg.proj_dim),
}


def _build(family: str, seed: int = 0):
    run = load_run_config(CONFIGS / family / "tiny.yaml")
    cfg = run.model
    if getattr(cfg, "text_encoder", ""):  # keep contract tests weight-free and fast
        cfg = dataclasses.replace(cfg, text_encoder="hashed:32", text_dim=32)
    if family == "wavenet":
        cfg = dataclasses.replace(cfg, labels=["bell", "rain"], gc_cardinality=2)
    torch.manual_seed(seed)
    model = get_family(family)[1](cfg)
    return run, model


def _batch(run, model, n: int = 4) -> dict:
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


def _slice(batch: dict, i: int) -> dict:
    return {k: (v[i : i + 1] if torch.is_tensor(v) else v[i : i + 1]) for k, v in batch.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_shape_and_batch_equals_singles(family):
    run, model = _build(family)
    model.eval()
    obj = get_objective(family)(model)
    batch = _batch(run, model)
    with torch.no_grad():
        out = _forward(family, model, obj.prepare_batch(batch))
        T = batch["audio"].shape[-1]
        assert tuple(out.shape) == EXPECTED_SHAPE[family](model.config, 4, T)
        assert torch.isfinite(out).all()
        singles = torch.cat([_forward(family, model, obj.prepare_batch(_slice(batch, i))) for i in range(4)])
    torch.testing.assert_close(out, singles, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_identical(family, tmp_path):
    run, model = _build(family)
    model.eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    batch = get_objective(family)(model).prepare_batch(_batch(run, model))
    with torch.no_grad():
        torch.testing.assert_close(
            _forward(family, loaded, batch), _forward(family, model, batch), rtol=0, atol=0
        )


@pytest.mark.parametrize("family", FAMILIES)
def test_few_steps_lower_the_loss(family):
    run, model = _build(family)
    obj = get_objective(family)(model)
    batch = obj.prepare_batch(_batch(run, model))
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


@pytest.mark.parametrize("family", [f for f in FAMILIES if has_pipeline(f)])
def test_same_seed_same_audio(family):
    _, model = _build(family)
    model.eval()
    pipe = pipeline_for(model, family)
    kwargs = {"duration": 0.01, "progress": False}
    a = pipe("a tone", seed=3, **kwargs).audio
    b = pipe("a tone", seed=3, **kwargs).audio
    c = pipe("a tone", seed=4, **kwargs).audio
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (1, int(round(0.01 * model.config.sample_rate)))
