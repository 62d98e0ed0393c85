import json

import pytest
import torch
from train_fixtures import SineSet, assert_same, make_objective, small_config, weights

from soundsmith.errors import ConfigError, TrainingError
from soundsmith.train import Trainer
from soundsmith.train.checkpoint import list_checkpoints, load_checkpoint


def run(out_dir, cfg, resume=False, stop_at=None, objective=None, valid=False):
    objective = objective or make_objective()
    trainer = Trainer(objective, SineSet(24), SineSet(6) if valid else None, cfg, out_dir)
    return objective, trainer.fit(resume=resume, stop_at=stop_at)


def test_resume_is_bit_identical(tmp_path, one_thread, monkeypatch):
    # 3 steps per epoch (24 items, batch 8): the interruption falls mid-epoch; EMA, accumulation, cosine and the
    # spike guard (judging from the 2nd update) on
    monkeypatch.setattr(Trainer, "SPIKE_WARMUP", 2)
    cfg = small_config(max_steps=10, grad_accum=2, ema_decay=0.9, checkpoint_every=5, spike_factor=3.0)
    straight, result = run(tmp_path / "a", cfg)
    assert result["step"] == 10 and result["epoch"] == 3
    _, partial = run(tmp_path / "b", cfg, stop_at=5)
    assert partial["step"] == 5
    resumed, _ = run(tmp_path / "b", cfg, resume=True)
    assert_same(weights(straight), weights(resumed))
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step-0000010.ckpt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step-0000010.ckpt")
    for k in a["ema"]["shadow"]:
        assert torch.equal(a["ema"]["shadow"][k], b["ema"]["shadow"][k])
    assert a["optimizers"][0]["state"][0]["exp_avg"].equal(b["optimizers"][0]["state"][0]["exp_avg"])
    assert a["schedulers"][0]["_last_lr"] == b["schedulers"][0]["_last_lr"]
    assert a["loss_mean"] == b["loss_mean"] and a["loss_mean"]["0"][1] == 10


def test_grad_accumulation_matches_big_batch(tmp_path, one_thread):
    # noise and dropout masks are drawn per micro-batch, so switch both off: then only the sums differ
    trained = {}
    for name, accum in (("big", 1), ("acc", 2)):
        objective = make_objective()
        objective.model.drop.p = 0.0
        objective.noise = 0.0
        Trainer(
            objective, SineSet(24), None, small_config(max_steps=4, grad_accum=accum), tmp_path / name
        ).fit()
        trained[name] = weights(objective)
    assert_same(trained["big"], trained["acc"], atol=1e-6)
    assert not torch.equal(trained["big"]["inp.weight"], weights(make_objective())["inp.weight"])


def test_outputs_logs_and_best(tmp_path, one_thread):
    cfg = small_config(
        max_steps=6, valid_every=3, sample_every=3, checkpoint_every=3, keep_last=1, log_every=1
    )
    _, result = run(tmp_path, cfg, valid=True)
    assert result["step"] == 6 and result["valid_loss"] is not None and result["best_valid_loss"] is not None
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train/loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["samples_per_s"] > 0 and r["x_realtime"] > 0 and r["bad_files"] == 0 for r in train_rows)
    assert any("valid/loss" in r for r in rows)
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.wav"))[0] == "step-0000003-0.wav"
    assert list((tmp_path / "samples").glob("*.png"))
    assert list((tmp_path / "tb").iterdir())
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == [
        "step-0000006.ckpt"
    ]  # keep_last=1
    best = load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    assert best["best"] == pytest.approx(result["best_valid_loss"])
    assert json.loads((tmp_path / "train_config.json").read_text())["train"]["max_steps"] == 6


def test_nan_guard_skips_restores_and_recovers(tmp_path, one_thread):
    # losses() calls 6, 7 are NaN (steps 6, 7); patience 2 -> restore step-4 checkpoint, LR halved
    objective = make_objective(nan_calls={6, 7})
    cfg = small_config(max_steps=8, checkpoint_every=4, nan_patience=2, nan_lr_factor=0.5)
    before = weights(objective)
    result = Trainer(objective, SineSet(24), None, cfg, tmp_path).fit()
    assert result["step"] == 8
    assert result["nan_skipped"] == 2 and result["nan_restores"] == 1
    final = load_checkpoint(tmp_path / "checkpoints" / "step-0000008.ckpt")
    assert final["lr_scale"] == 0.5 and final["nan"]["restores"] == 1
    assert all(torch.isfinite(v).all() for v in weights(objective).values())
    assert not torch.equal(before["inp.weight"], weights(objective)["inp.weight"])


def test_nan_guard_gives_up_with_training_error(tmp_path, one_thread):
    objective = make_objective(nan_index=5)  # item 5 always gives NaN: every restore replays it
    cfg = small_config(max_steps=30, checkpoint_every=1, nan_patience=1, max_nan_restores=2)
    with pytest.raises(TrainingError, match="NaN/Inf.*lower train.lr"):
        Trainer(objective, SineSet(24), None, cfg, tmp_path).fit()
    assert all(torch.isfinite(v).all() for v in weights(objective).values())  # no NaN update was applied


def test_spike_guard_skips_a_finite_loss_spike_and_restores(tmp_path, one_thread, monkeypatch):
    # losses() calls 9, 10 are x1000 (finite): with spike_factor 10 they count as bad steps like NaN ones
    monkeypatch.setattr(Trainer, "SPIKE_WARMUP", 3)
    cfg = small_config(max_steps=12, checkpoint_every=4, nan_patience=2, spike_factor=10.0)
    objective = make_objective(spike_calls={9, 10})
    result = Trainer(objective, SineSet(24), None, cfg, tmp_path / "on").fit()
    assert result["step"] == 12
    assert result["nan_skipped"] == 2 and result["nan_restores"] == 1
    final = load_checkpoint(tmp_path / "on" / "checkpoints" / "step-0000012.ckpt")
    mean, seen = final["loss_mean"]["0"]
    assert 0 < mean < 1.0 and seen == 12  # restored at step 8, steps 9-12 replayed (the spikes came once)
    # off (the default): the same spikes are applied as updates
    off = make_objective(spike_calls={9, 10})
    assert (
        Trainer(off, SineSet(24), None, small_config(max_steps=12), tmp_path / "off").fit()["nan_skipped"]
        == 0
    )
    assert not torch.equal(weights(off)["inp.weight"], weights(objective)["inp.weight"])


def test_resume_uses_previous_checkpoint_when_newest_is_truncated(tmp_path, one_thread):
    cfg = small_config(max_steps=8, checkpoint_every=2)
    straight, _ = run(tmp_path / "a", cfg)
    run(tmp_path / "b", cfg, stop_at=6)
    newest = tmp_path / "b" / "checkpoints" / "step-0000006.ckpt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a torn write (e.g. copied by a careless tool)
    with pytest.raises(TrainingError, match="step-0000006.ckpt.*truncated or corrupt"):
        load_checkpoint(newest)
    resumed, result = run(tmp_path / "b", cfg, resume=True)
    assert result["step"] == 8
    assert_same(weights(straight), weights(resumed))


def test_resume_without_checkpoint_starts_fresh_and_fresh_run_refuses_old_dir(tmp_path, one_thread):
    cfg = small_config(max_steps=2, checkpoint_every=0)
    _, result = run(tmp_path, cfg, resume=True)
    assert result["step"] == 2 and (tmp_path / "checkpoints" / "step-0000002.ckpt").exists()
    with pytest.raises(ConfigError, match="already holds checkpoints.*--resume"):
        run(tmp_path, cfg)


def test_set_epoch_called_and_bad_config_rejected(tmp_path, one_thread):
    data = SineSet(16)
    Trainer(make_objective(), data, None, small_config(max_steps=5, checkpoint_every=0), tmp_path / "x").fit()
    assert data.epochs_seen == [0, 1, 2]
    with pytest.raises(ConfigError, match="fewer than train.batch_size"):
        Trainer(make_objective(), SineSet(4), None, small_config(), tmp_path / "y").fit()
    with pytest.raises(ConfigError, match="multiple of grad_accum"):
        Trainer(make_objective(), SineSet(16), None, small_config(grad_accum=3), tmp_path / "z").fit()


def test_resume_with_longer_max_steps_follows_the_new_schedule(tmp_path, one_thread):
    # A cosine run of 6 steps, resumed to 12: the restored schedule must stretch to 12, as a 12-step run's would.
    short = small_config(max_steps=6, checkpoint_every=3, schedule="cosine", min_lr_ratio=0.0)
    long = small_config(max_steps=12, checkpoint_every=3, schedule="cosine", min_lr_ratio=0.0)
    run(tmp_path / "r", short)
    run(tmp_path / "r", long, resume=True, stop_at=9)
    resumed = load_checkpoint(tmp_path / "r" / "checkpoints" / "step-0000009.ckpt")["schedulers"][0][
        "_last_lr"
    ]
    run(tmp_path / "ref", long, stop_at=9)
    reference = load_checkpoint(tmp_path / "ref" / "checkpoints" / "step-0000009.ckpt")["schedulers"][0][
        "_last_lr"
    ]
    assert resumed == pytest.approx(reference, rel=1e-12)
    assert resumed[0] > 0  # the 6-step schedule would have reached 0 here


def test_resume_with_a_new_lr_and_betas_uses_them(tmp_path, one_thread, caplog):
    # `soundsmith train --resume --set train.lr=...`: the checkpoint's optimizer state (moments) is kept, but its
    # hyperparameters are the current config's, for every optimizer (a GAN's second one keeps its own LR).
    from train_fixtures import make_gan_objective

    caplog.set_level("INFO", logger="soundsmith.train.engine")

    def cfg(max_steps, lr=1e-2, betas=(0.9, 0.999)):
        return small_config(max_steps=max_steps, checkpoint_every=3, schedule="constant", lr=lr, betas=betas)

    run(tmp_path / "r", cfg(6), objective=make_gan_objective())
    objective, _ = run(
        tmp_path / "r", cfg(9, lr=2e-3, betas=(0.8, 0.99)), resume=True, objective=make_gan_objective()
    )
    state = load_checkpoint(tmp_path / "r" / "checkpoints" / "step-0000009.ckpt")
    gen, disc = state["optimizers"]
    assert gen["param_groups"][0]["initial_lr"] == pytest.approx(2e-3)
    assert gen["param_groups"][0]["lr"] == pytest.approx(2e-3)  # constant schedule
    assert tuple(gen["param_groups"][0]["betas"]) == pytest.approx((0.8, 0.99))
    assert state["schedulers"][0]["base_lrs"] == pytest.approx([2e-3])
    assert state["schedulers"][1]["base_lrs"] == pytest.approx([objective.D_LR])
    assert gen["state"], "the moments must come back from the checkpoint"
    assert "resumed with initial_lr = 0.002 (the checkpoint had 0.01)" in caplog.text
    assert "resumed with betas = (0.8, 0.99) (the checkpoint had (0.9, 0.999))" in caplog.text
    caplog.clear()
    # with the old settings the resumed run continues the first one exactly
    run(tmp_path / "same", cfg(6), objective=make_gan_objective())
    run(tmp_path / "same", cfg(9), resume=True, objective=make_gan_objective())
    assert "resumed with" not in caplog.text  # nothing changed, nothing said
    run(tmp_path / "straight", cfg(9), objective=make_gan_objective())
    assert_same(weights(tmp_path / "same"), weights(tmp_path / "straight"))
