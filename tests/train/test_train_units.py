import math
import os

import pytest
import torch
from torch import nn
from train_fixtures import TinyConfig, TinyNet, make_objective, small_config

from soundsmith.errors import ConfigError, TrainingError
from soundsmith.train import EMA, TrainConfig, get_objective
from soundsmith.train.checkpoint import (
    atomic_save,
    capture_rng_state,
    checkpoint_name,
    export_model,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
)
from soundsmith.train.engine import ShardSampler, StepBatchSampler
from soundsmith.train.objectives import available_objectives
from soundsmith.train.schedules import LRMultiplier, build_scheduler, set_lr_scale

# --- config -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_steps", 0), ("lr", -1.0), ("schedule", "linear"), ("precision", "16"), ("strategy", "deepspeed"),
     ("ema_decay", 1.0), ("betas", (0.9,)), ("grad_accum", 1.5), ("devices", 0), ("nan_lr_factor", 0.0)],
)  # fmt: skip
def test_config_rejects_bad_values_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=f"train.{key}"):
        TrainConfig(**{key: value})


def test_config_from_dict_lists_unknown_keys_and_casts_betas():
    with pytest.raises(ConfigError, match="unknown train key.*lr_rate.*valid keys"):
        TrainConfig.from_dict({"lr_rate": 1e-3})
    assert TrainConfig.from_dict({"betas": [0.8, 0.99]}).betas == (0.8, 0.99)
    with pytest.raises(ConfigError, match="train.num_workers is not a train key.*data.num_workers"):
        TrainConfig.from_dict({"num_workers": 2})
    with pytest.raises(ConfigError, match="unknown train key.*extra"):
        TrainConfig.from_dict({"extra": {}})


def test_schedule_stride_reads_global_steps():
    # an optimizer stepping every 2 steps: its update u reads the factor of global step 2u
    every_step = LRMultiplier("cosine", max_steps=10, warmup_steps=2)
    strided = LRMultiplier("cosine", max_steps=10, warmup_steps=2, stride=2)
    assert [strided(u) for u in range(6)] == [every_step(2 * u) for u in range(6)]
    assert strided(5) == pytest.approx(0.0)


# --- schedules ----------------------------------------------------------------------------------------------


def test_cosine_schedule_with_warmup():
    f = LRMultiplier("cosine", max_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert f(0) == pytest.approx(0.1)  # warmup (step + 1) / 10
    assert f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the cosine
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)


def test_step_schedule_every_k_epochs_and_state_round_trip():
    cfg = small_config(schedule="step", warmup_steps=0, step_every_epochs=10, step_gamma=0.5, lr=1.0)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, steps_per_epoch=3)
    lrs = []
    for _ in range(61):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[29] == 1.0 and lrs[30] == 0.5 and lrs[59] == 0.5 and lrs[60] == 0.25  # epochs 10 and 20
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched2 = build_scheduler(opt2, small_config(lr=1.0), steps_per_epoch=99)  # different settings, restored
    sched2.load_state_dict(sched.state_dict())
    assert sched2.lr_lambdas[0].kind == "step" and sched2.lr_lambdas[0].steps_per_epoch == 3
    set_lr_scale(sched2, 0.5)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.125) and sched2.get_last_lr() == [
        pytest.approx(0.125)
    ]


# --- EMA ----------------------------------------------------------------------------------------------------


def test_ema_math_and_state():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.fill_(0.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)  # 0.9 * 1 + 0.1 * 3
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 1.2))
    ema.update(model)  # 0.9 * 1.2 + 0.1 * 3
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 1.38))
    averaged = ema.averaged_model(model)
    assert torch.allclose(averaged.weight, torch.full((1, 2), 1.38)) and model.weight[0, 0] == 3.0
    other = EMA(nn.Linear(2, 1), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert (
        other.decay == 0.9
        and other.num_updates == 2
        and torch.equal(other.shadow["weight"], ema.shadow["weight"])
    )


# --- checkpoints --------------------------------------------------------------------------------------------


def test_atomic_save_leaves_no_temp_file_and_loads_weights_only(tmp_path):
    path = atomic_save({"step": 3, "w": torch.arange(4)}, tmp_path / "c" / checkpoint_name(3))
    assert path.name == "step-0000003.ckpt"
    assert sorted(os.listdir(tmp_path / "c")) == ["step-0000003.ckpt"]
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(4))


def test_truncated_checkpoint_is_detected_and_previous_one_used(tmp_path):
    for step in (1, 2):
        atomic_save({"step": step, "w": torch.randn(1000)}, tmp_path / checkpoint_name(step))
    newest = tmp_path / checkpoint_name(2)
    newest.write_bytes(newest.read_bytes()[:500])
    with pytest.raises(TrainingError, match="step-0000002.ckpt.*truncated or corrupt.*delete it"):
        load_checkpoint(newest)
    path, state = latest_checkpoint(tmp_path)
    assert path.name == "step-0000001.ckpt" and state["step"] == 1
    with pytest.raises(TrainingError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_prune_keeps_last_k_and_best(tmp_path):
    for step in (5, 10, 15, 20):
        atomic_save({"step": step}, tmp_path / checkpoint_name(step))
    atomic_save({"step": 5}, tmp_path / "best.ckpt")
    prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-0000015.ckpt", "step-0000020.ckpt"]
    assert (tmp_path / "best.ckpt").exists()


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    atomic_save({"step": 0, "rng": capture_rng_state()}, tmp_path / "r.ckpt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(load_checkpoint(tmp_path / "r.ckpt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_export_skips_unregistered_model(tmp_path):
    assert export_model(TinyNet(TinyConfig()), tmp_path / "model") is False
    assert not (tmp_path / "model" / "model.safetensors").exists()


# --- samplers -----------------------------------------------------------------------------------------------


def test_step_batch_sampler_shards_and_resumes():
    def batches(rank, world, accum, start=0, epoch=0):
        return list(StepBatchSampler(20, 8, accum, world, rank, seed=1, epoch=epoch, start_step=start))

    single = batches(0, 1, 1)
    assert len(single) == 2 and all(len(b) == 8 for b in single)
    ranks = [batches(r, 2, 2) for r in (0, 1)]  # micro-batches of 2: rank 0 [a, b], rank 1 [c, d] per step
    for s in range(2):
        together = ranks[0][2 * s] + ranks[0][2 * s + 1] + ranks[1][2 * s] + ranks[1][2 * s + 1]
        assert together == single[s]
    assert batches(0, 1, 1, start=1) == single[1:]
    assert batches(0, 1, 1, epoch=1) != single


def test_shard_sampler_pads_to_equal_shards():
    shards = [list(ShardSampler(5, 2, 2, r)) for r in (0, 1)]
    assert shards[0] == [[0, 2], [4]] and shards[1] == [[1, 3], [0]]


# --- objectives ---------------------------------------------------------------------------------------------


def test_get_objective_unknown_family_lists_the_known_ones():
    with pytest.raises(ConfigError, match="no training objective for model family 'nope'; families with one"):
        get_objective("nope")
    for family in available_objectives():
        assert get_objective(family).__name__.endswith("Objective")


def test_base_objective_defaults():
    objective = make_objective()
    (opt,) = objective.configure_optimizers(small_config(weight_decay=0.1))
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert sum(len(g["params"]) for g in opt.param_groups) == 4
    assert objective.sample_rate == TinyConfig().sample_rate
    batch = {"audio": torch.zeros(2, TinyConfig().length), "index": torch.tensor([0, 1])}
    metrics = objective.validate(batch)
    assert set(metrics) == {"loss", "mae"} and all(math.isfinite(v) for v in metrics.values())
