"""The engine's bookkeeping, pinned exactly (written for the survivors of `scripts/mutation.sh train/engine`): the
training log row and progress bar (and the cross-process mean of a multi-process run, with a stand-in Fabric),
what `train_config.json` records, the first checkpoint of a one-step run, no validation when no step ran, the NaN
counter's start, resuming a checkpoint that lacks RNG states for this rank or an LR scale, and which optimizer
settings a resume reports as changed."""

import json
import logging

import pytest
import torch
from train_fixtures import SineSet, make_objective, small_config

import soundsmith.train.engine as engine
from soundsmith.errors import ConfigError
from soundsmith.train import Trainer
from soundsmith.train.checkpoint import atomic_save, load_checkpoint


class Recorder:
    def __init__(self):
        self.calls = []

    def log(self, step, row):
        self.calls.append((step, row))

    def set_postfix(self, **kwargs):
        self.calls.append(kwargs)


class Window:
    def __init__(self, means):
        self._means, self.resets = means, 0

    def means(self):
        return dict(self._means)

    def rates(self):
        return 12.345, 67.89

    def reset(self):
        self.resets += 1


class Sched:
    def __init__(self, lr):
        self.lr = lr

    def get_last_lr(self):
        return [self.lr]


class TwoRanks:
    """A stand-in Fabric of a two-process run: the other rank's means are fixed numbers."""

    device = torch.device("cpu")

    def __init__(self, other):
        self.other, self.ops = other, []

    def all_reduce(self, t, reduce_op=None):
        self.ops.append(reduce_op)
        assert reduce_op == "mean" and t.device == self.device
        return (t + torch.tensor(self.other, dtype=t.dtype)) / 2


class NoReduce:
    device = torch.device("cpu")

    def all_reduce(self, *args, **kwargs):
        raise AssertionError("a one-process run has nothing to reduce")


def fake_trainer(world, fabric, means, bad_files=0):
    t = type("T", (), {})()
    t.window, t.world, t.fabric = Window(means), world, fabric
    t.schedulers = [Sched(1e-3), Sched(5e-4)]
    t.step, t.steps_per_epoch = 9, 4
    t.nan = {"consecutive": 0, "skipped": 2, "restores": 1}
    t._bad_files = lambda: bad_files
    t.monitor, t._pbar = Recorder(), Recorder()
    return t


def test_the_log_row_and_the_progress_bar_of_one_process():
    t = fake_trainer(1, NoReduce(), {"loss": 0.123456, "acc": 0.5}, bad_files=3)
    engine.Trainer._log_train(t)
    ((step, row),) = t.monitor.calls
    assert step == 9
    assert row == {
        "train/loss": 0.123456,
        "train/acc": 0.5,
        "lr_1": 5e-4,
        "lr": 1e-3,
        "epoch": 2,
        "samples_per_s": 12.345,
        "x_realtime": 67.89,
        "nan_skipped": 2,
        "nan_restores": 1,
        "bad_files": 3,
    }
    assert t.last_train == {"loss": 0.123456, "acc": 0.5}
    assert t._pbar.calls == [{"loss": "0.1235", "lr": "1.00e-03", "sps": "12.3", "xRT": "67.9"}]
    assert t.window.resets == 1


def test_a_multi_process_run_logs_the_mean_over_processes():
    fabric = TwoRanks([0.5, 0.3])  # sorted keys: acc, loss
    t = fake_trainer(2, fabric, {"loss": 0.1, "acc": 0.7})
    engine.Trainer._log_train(t)
    assert fabric.ops == ["mean"]
    row = t.monitor.calls[0][1]
    assert row["train/acc"] == pytest.approx(0.6) and row["train/loss"] == pytest.approx(0.2)
    assert t.last_train == pytest.approx({"acc": 0.6, "loss": 0.2})
    assert t._pbar.calls == [{"loss": "0.2", "lr": "1.00e-03", "sps": "12.3", "xRT": "67.9"}]


def test_nothing_to_reduce_or_show_without_losses():
    t = fake_trainer(2, NoReduce(), {})
    engine.Trainer._log_train(t)
    assert t.monitor.calls[0][1]["lr"] == 1e-3 and "train/loss" not in t.monitor.calls[0][1]
    assert t._pbar.calls == [] and t.window.resets == 1


def test_train_config_json_records_the_run_config(tmp_path, one_thread):
    cfg = small_config(max_steps=1, checkpoint_every=5)
    Trainer(make_objective(), SineSet(16), None, cfg, tmp_path / "a", run_config={"family": "x"}).fit()
    Trainer(make_objective(), SineSet(16), None, cfg, tmp_path / "b").fit()
    a = json.loads((tmp_path / "a" / "train_config.json").read_text())
    b = json.loads((tmp_path / "b" / "train_config.json").read_text())
    assert a["run"] == {"family": "x"} and b["run"] == {} and a["world_size"] == 1
    assert a["train"]["max_steps"] == 1
    # a one-step run whose checkpoint interval is never reached still leaves its checkpoint
    assert [p.name for p in sorted((tmp_path / "b" / "checkpoints").glob("step-*.ckpt"))] == [
        "step-0000001.ckpt"
    ]


def test_no_validation_when_no_step_ran(tmp_path, one_thread, monkeypatch):
    calls = []
    monkeypatch.setattr(engine, "validation_means", lambda *a: calls.append(1) or {"loss": 1.0})
    cfg = small_config(max_steps=4, valid_every=0, checkpoint_every=2)
    result = Trainer(make_objective(), SineSet(16), SineSet(4), cfg, tmp_path).fit(stop_at=0)
    assert result["step"] == 0 and calls == []


def test_a_first_step_nan_is_one_bad_step_not_a_restore(tmp_path, one_thread):
    cfg = small_config(max_steps=4, checkpoint_every=1, nan_patience=2, max_nan_restores=1)
    result = Trainer(make_objective(nan_calls={1}), SineSet(24), None, cfg, tmp_path).fit()
    assert result["nan_skipped"] == 1 and result["nan_restores"] == 0


def test_the_nan_guard_says_what_it_restored(tmp_path, one_thread, caplog):
    caplog.set_level(logging.WARNING, logger=engine.log.name)
    cfg = small_config(max_steps=4, checkpoint_every=2, nan_patience=1, max_nan_restores=3, nan_lr_factor=0.5)
    Trainer(make_objective(nan_calls={1, 4}), SineSet(24), None, cfg, tmp_path).fit()
    guard = [m for m in caplog.messages if m.startswith("NaN guard")]
    assert guard == [
        "NaN guard: no checkpoint yet; keeping the weights, LR x0.5",
        "NaN guard: restored step-0000002.ckpt, LR x0.25",
    ]


def test_a_run_stopped_early_saves_where_it_stopped(tmp_path, one_thread):
    cfg = small_config(max_steps=8, checkpoint_every=5)
    result = Trainer(make_objective(), SineSet(24), None, cfg, tmp_path).fit(stop_at=1)
    assert result["step"] == 1
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*.ckpt")] == ["step-0000001.ckpt"]


def test_a_batch_that_does_not_split_into_accumulation_steps_is_refused(tmp_path):
    cfg = small_config(batch_size=3, grad_accum=2)
    with pytest.raises(
        ConfigError, match=r"batch_size 3 must be a multiple of grad_accum x processes \(2 x 1\)"
    ):
        Trainer(make_objective(), SineSet(16), None, cfg, tmp_path).fit()


def test_a_bad_optimizer_list_names_the_objective(tmp_path):
    objective = make_objective()
    objective.configure_optimizers = lambda cfg: []
    with pytest.raises(ConfigError, match=r"TinyObjective\.configure_optimizers returned no optimizer"):
        Trainer(objective, SineSet(16), None, small_config(), tmp_path).fit()


def test_resuming_without_this_ranks_rng_reseeds_it_and_a_missing_lr_scale_is_one(
    tmp_path, one_thread, monkeypatch, caplog
):
    cfg = small_config(max_steps=2, checkpoint_every=2, seed=3)
    Trainer(make_objective(), SineSet(24), None, cfg, tmp_path).fit()
    path = tmp_path / "checkpoints" / "step-0000002.ckpt"
    state = load_checkpoint(path)
    state["rng"] = []
    del state["lr_scale"]  # a checkpoint written before the NaN guard's LR scale existed
    atomic_save(state, path)
    seeds = []
    original = engine.ckpt.seed_process
    monkeypatch.setattr(engine.ckpt, "seed_process", lambda s, r: seeds.append((s, r)) or original(s, r))
    caplog.set_level(logging.WARNING, logger=engine.log.name)
    cfg4 = small_config(max_steps=4, checkpoint_every=2, seed=3)
    Trainer(make_objective(), SineSet(24), None, cfg4, tmp_path).fit(resume=True)
    assert seeds == [(3, 0), (3 + 2, 0)]  # setup, then the resumed step's own seed
    assert caplog.messages == ["checkpoint holds RNG states for 0 ranks; rank 0 is reseeded"]
    assert load_checkpoint(tmp_path / "checkpoints" / "step-0000004.ckpt")["lr_scale"] == 1.0


def test_hyperparameters_leave_out_the_parameters_and_the_scheduled_lr(caplog):
    group = {"params": [torch.zeros(1)], "lr": 0.1, "betas": (0.9, 0.99), "weight_decay": 0.0}
    assert engine._hyperparameters(group) == {"betas": (0.9, 0.99), "weight_decay": 0.0}
    caplog.set_level(logging.INFO, logger=engine.log.name)
    engine._log_changed(
        {"betas": (0.9, 0.99), "weight_decay": 0.0}, {"betas": (0.0, 0.99), "weight_decay": 0.0}
    )
    assert caplog.messages == ["resumed with betas = (0.0, 0.99) (the checkpoint had (0.9, 0.99))"]


@pytest.mark.parametrize("unused", [True, False])
def test_fabric_is_built_from_the_config_and_ddp_hears_the_objectives_unused_parameters(
    tmp_path, monkeypatch, unused
):
    from lightning_fabric.strategies import DDPStrategy

    built = []
    monkeypatch.setattr(engine, "Fabric", lambda **kwargs: built.append(kwargs))
    objective = make_objective()
    objective.find_unused_parameters = unused
    cfg = small_config(strategy="ddp", precision="bf16-mixed", accelerator="cuda", devices=4, num_nodes=2)
    Trainer(objective, SineSet(16), None, cfg, tmp_path)
    (kw,) = built
    assert {k: kw[k] for k in ("accelerator", "devices", "num_nodes", "precision")} == {
        "accelerator": "cuda",
        "devices": 4,
        "num_nodes": 2,
        "precision": "bf16-mixed",
    }
    assert isinstance(kw["strategy"], DDPStrategy)
    assert kw["strategy"]._ddp_kwargs == {"find_unused_parameters": unused}
    # any other strategy is passed by name; FSDP without EMA is accepted (only FSDP with EMA is refused)
    Trainer(objective, SineSet(16), None, small_config(strategy="fsdp", ema_decay=0.0), tmp_path)
    assert built[-1]["strategy"] == "fsdp"
