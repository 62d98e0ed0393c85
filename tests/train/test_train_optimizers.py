"""Several optimizers (a GAN-like toy): cadence, delayed start, per-optimizer clipping and schedule, exact resume."""

import json

import pytest
import torch
from train_fixtures import (
    SineSet,
    TinyGanObjective,
    assert_same,
    make_gan_objective,
    make_objective,
    objective_weights,
    small_config,
)

from soundsmith.errors import ConfigError
from soundsmith.train import Trainer
from soundsmith.train.checkpoint import load_checkpoint
from soundsmith.train.optimizers import OptimizerSpec, as_specs
from soundsmith.train.schedules import ScheduleConfig

D = TinyGanObjective


def gan_run(out_dir, cfg, resume=False, stop_at=None):
    objective = make_gan_objective()
    result = Trainer(objective, SineSet(24), SineSet(6), cfg, out_dir).fit(resume=resume, stop_at=stop_at)
    return objective, result


def disc_weights(objective_or_dir):
    return {k: v for k, v in objective_weights(objective_or_dir).items() if k.startswith("disc.")}


def test_spec_cadence_and_bad_values():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    spec = OptimizerSpec(opt, every=2, start_step=3)
    assert [s for s in range(10) if spec.active(s)] == [3, 5, 7, 9]
    assert [s for s in range(3) if OptimizerSpec(opt).active(s)] == [0, 1, 2]
    for bad in ({"every": 0}, {"start_step": -1}, {"clip_grad_norm": -1.0}, {"every": 1.5}):
        with pytest.raises(ConfigError, match=f"OptimizerSpec.{next(iter(bad))}"):
            OptimizerSpec(opt, **bad)
    with pytest.raises(ConfigError, match="ScheduleConfig.kind"):
        ScheduleConfig(kind="linear")
    with pytest.raises(ConfigError, match="item 1 is a str"):
        as_specs([opt, "adam"], "Toy")
    with pytest.raises(ConfigError, match="Toy.configure_optimizers returned no optimizer"):
        as_specs([], "Toy")
    assert as_specs(opt, "Toy")[0].optimizer is opt  # a bare optimizer, not in a list, is accepted too


def test_delayed_discriminator_with_its_own_cadence_clipping_and_schedule(tmp_path, one_thread):
    cfg = small_config(max_steps=12, log_every=1, checkpoint_every=0, valid_every=6)
    initial = disc_weights(make_gan_objective())
    gan_run(tmp_path / "early", cfg, stop_at=D.D_START)  # steps 0..2: generator only
    assert_same(disc_weights(tmp_path / "early"), initial)

    gan_run(tmp_path / "one", cfg, stop_at=D.D_START + 1)  # one discriminator update, at step 3
    one = disc_weights(tmp_path / "one")
    delta = torch.cat([(one[k] - initial[k]).flatten() for k in initial]).norm()
    rows = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    norm = [r["train/grad_norm_1"] for r in rows if "train/grad_norm_1" in r]
    assert len(norm) == 1 and norm[0] > D.D_CLIP  # the clipping binds ...
    lr0 = D.D_LR * 0.5  # first update: warmup step 1 of 2
    assert float(delta) == pytest.approx(lr0 * D.D_CLIP, rel=1e-4)  # ... so SGD moves by lr * clip exactly
    last = [r for r in rows if "lr_1" in r][-1]  # after the update: warmup over, the cosine's top
    assert last["step"] == 4 and last["lr_1"] == pytest.approx(D.D_LR) and last["train/grad_norm"] > 0

    _, result = gan_run(tmp_path / "full", cfg)
    rows = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/loss_1" in r] == [
        4,
        6,
        8,
        10,
        12,
    ]  # 0-based steps 3, 5, ..., 11
    assert [r["step"] for r in rows if "train/loss" in r] == list(range(1, 13))
    final = load_checkpoint(tmp_path / "full" / "checkpoints" / "step-0000012.ckpt")
    assert final["schedulers"][1]["last_epoch"] == 5 and final["schedulers"][0]["last_epoch"] == 12
    # cosine over global steps 3..12 (9 steps, 2 of warmup), stride 2: after 5 updates it is at its floor
    assert final["schedulers"][1]["_last_lr"][0] == pytest.approx(D.D_LR * 0.1)
    assert result["step"] == 12 and any("valid/loss_1" in r for r in rows)


def test_two_optimizer_resume_is_bit_identical(tmp_path, one_thread):
    # stop after step 4 (0-based): between two discriminator updates; EMA, accumulation and both schedules on
    cfg = small_config(max_steps=12, grad_accum=2, ema_decay=0.9, checkpoint_every=5)
    straight, _ = gan_run(tmp_path / "a", cfg)
    gan_run(tmp_path / "b", cfg, stop_at=5)
    resumed, _ = gan_run(tmp_path / "b", cfg, resume=True)
    assert_same(objective_weights(straight), objective_weights(resumed))
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step-0000012.ckpt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step-0000012.ckpt")
    for i in (0, 1):
        assert a["schedulers"][i] == b["schedulers"][i]
        for key, state in a["optimizers"][i]["state"].items():
            for name, value in state.items():
                assert torch.equal(value, b["optimizers"][i]["state"][key][name]), (i, key, name)
    momentum = a["optimizers"][1]["state"][0]["momentum_buffer"]
    assert momentum.abs().sum() > 0  # the discriminator did train


def test_single_optimizer_objective_unchanged_by_specs(tmp_path, one_thread):
    # The old interface (a list of bare optimizers) and the same optimizer in a default OptimizerSpec train alike.
    class Wrapped(type(make_objective())):
        def configure_optimizers(self, cfg):
            return [OptimizerSpec(opt) for opt in super().configure_optimizers(cfg)]

    cfg = small_config(max_steps=4)
    plain = make_objective()
    Trainer(plain, SineSet(24), None, cfg, tmp_path / "plain").fit()
    torch.manual_seed(0)
    wrapped = Wrapped(plain.model.__class__(plain.model.config))
    Trainer(wrapped, SineSet(24), None, cfg, tmp_path / "wrapped").fit()
    assert_same(objective_weights(plain), objective_weights(wrapped))
