"""One optimizer step of the engine, pinned (written for the survivors of a full `scripts/mutation.sh train/engine`
run): the objective sees its step and active optimizers before `losses`, logged metrics are the mean over
micro-batches, a parameter without a gradient is left alone by its optimizer, a good step resets the NaN guard's
count of consecutive bad steps, the skipped-step warning, and an objective without a `loss` key."""

import dataclasses
import json
import logging
import time

import pytest
import torch
from torch import nn
from train_fixtures import SineSet, TinyConfig, TinyGanObjective, TinyNet, TinyObjective, small_config

from soundsmith.errors import TrainingError
from soundsmith.train import Trainer
from soundsmith.train.checkpoint import CHECKPOINT_VERSION, load_checkpoint


class Recording(TinyObjective):
    """Records ``(global_step, active_optimizers, mean index of the micro-batch)`` at every ``losses`` call and
    logs that mean as the metric ``probe``."""

    def __init__(self, model):
        super().__init__(model)
        self.seen = []

    def losses(self, batch, opt_index):
        out = super().losses(batch, opt_index)
        probe = batch["index"].float().mean()
        self.seen.append((self.global_step, tuple(self.active_optimizers), float(probe)))
        return {**out, "probe": probe}


def test_the_objective_sees_its_step_before_losses_and_metrics_are_micro_batch_means(tmp_path):
    torch.manual_seed(0)
    objective = Recording(TinyNet(TinyConfig()))
    cfg = small_config(max_steps=3, batch_size=8, grad_accum=2, log_every=1, checkpoint_every=0)
    Trainer(objective, SineSet(24), None, cfg, tmp_path).fit()
    assert [(s, a) for s, a, _ in objective.seen] == [(0, (0,)), (0, (0,)), (1, (0,)), (1, (0,)), (2, (0,)), (2, (0,))]
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [r["train/probe"] for r in rows if "train/probe" in r]
    probes = [p for _, _, p in objective.seen]
    expected = [(probes[2 * k] + probes[2 * k + 1]) / 2 for k in range(3)]  # the two micro-batches of each step
    assert logged == pytest.approx(expected, abs=1e-5)
    assert len(set(probes)) > 1  # micro-batches differ, so a sum or a last value would not pass


class OnceNet(TinyNet):
    """TinyNet plus a parameter that only the first ``losses`` call uses."""

    def __init__(self, config):
        super().__init__(config)
        self.extra = nn.Parameter(torch.ones(3))


class OnceObjective(TinyObjective):
    def __init__(self, model):
        super().__init__(model)
        self.extra_after_first_step = None

    def losses(self, batch, opt_index):
        out = super().losses(batch, opt_index)
        if self.n_calls == 1:
            out["loss"] = out["loss"] + self.model.extra.pow(2).sum()
        elif self.extra_after_first_step is None:
            self.extra_after_first_step = self.model.extra.detach().clone()
        return out


def test_a_parameter_without_a_gradient_is_not_moved_by_its_optimizer(tmp_path):
    """Gradients are reset to None, not zero: Adam would keep moving a zero-gradient parameter on its momentum."""
    torch.manual_seed(0)
    objective = OnceObjective(OnceNet(TinyConfig()))
    cfg = small_config(max_steps=4, checkpoint_every=0, schedule="constant", warmup_steps=0)
    Trainer(objective, SineSet(24), None, cfg, tmp_path).fit()
    moved_once = objective.extra_after_first_step
    assert not torch.equal(moved_once, torch.ones(3))  # step 1 trained it
    assert torch.equal(objective.model.extra.detach(), moved_once)  # steps 2-4 left it where step 1 put it


def test_a_good_step_resets_the_count_of_consecutive_bad_steps(tmp_path, caplog):
    """Bad steps 1, 3 and 5 are never two in a row: with nan_patience 2 nothing is restored."""
    torch.manual_seed(0)
    cfg = small_config(max_steps=6, nan_patience=2, checkpoint_every=0)
    objective = TinyObjective(TinyNet(TinyConfig()), nan_calls={1, 3, 5})
    with caplog.at_level(logging.WARNING, logger="soundsmith.train"):
        result = Trainer(objective, SineSet(24), None, cfg, tmp_path).fit()
    assert result["nan_skipped"] == 3 and result["nan_restores"] == 0 and result["step"] == 6
    warnings = [r.getMessage() for r in caplog.records if "update skipped" in r.getMessage()]
    assert warnings == [
        f"step {s}: non-finite loss or gradient, or a loss spike (train.spike_factor); update skipped"
        for s in (1, 3, 5)
    ]


class NoLoss(TinyObjective):
    def losses(self, batch, opt_index):
        out = super().losses(batch, opt_index)
        return {"total": out["loss"], "mae": out["mae"]}


def test_an_objective_without_a_loss_key_is_refused_by_name(tmp_path):
    torch.manual_seed(0)
    cfg = small_config(max_steps=2, checkpoint_every=0)
    with pytest.raises(TrainingError) as e:
        Trainer(NoLoss(TinyNet(TinyConfig())), SineSet(24), None, cfg, tmp_path).fit()
    assert str(e.value) == "NoLoss.losses returned no 'loss' key: ['total', 'mae']"


def test_clip_grad_norm_zero_means_no_clipping(tmp_path):
    """``train.clip_grad_norm: 0`` trains exactly as an unreachable clip threshold does (and trains at all)."""
    final = {}
    for clip in (0.0, 1e9):
        torch.manual_seed(0)
        objective = TinyObjective(TinyNet(TinyConfig()))
        start = {k: v.clone() for k, v in objective.model.state_dict().items()}
        cfg = small_config(max_steps=3, clip_grad_norm=clip, checkpoint_every=0)
        Trainer(objective, SineSet(24), None, cfg, tmp_path / str(clip)).fit()
        final[clip] = objective.model.state_dict()
    assert all(torch.equal(final[0.0][k], final[1e9][k]) for k in final[0.0])
    assert not torch.equal(final[0.0]["inp.weight"], start["inp.weight"])


class NanGradient(TinyObjective):
    """Call 2's loss is finite but its gradient is NaN (sqrt at 0, times 0)."""

    def losses(self, batch, opt_index):
        out = super().losses(batch, opt_index)
        if self.n_calls == 2:
            out["loss"] = out["loss"] + (self.model.inp.weight[0, 0] * 0.0).abs().sqrt()
        return out


def test_a_non_finite_gradient_under_a_finite_loss_skips_the_update(tmp_path):
    torch.manual_seed(0)
    objective = NanGradient(TinyNet(TinyConfig()))
    result = Trainer(objective, SineSet(24), None, small_config(max_steps=4, checkpoint_every=0), tmp_path).fit()
    assert result["nan_skipped"] == 1 and result["nan_restores"] == 0
    assert all(bool(torch.isfinite(v).all()) for v in objective.model.state_dict().values())


class OtherRankBad:
    """A stand-in Fabric of a two-process run around the real one: the other rank's step ``k`` (1-based) was
    bad for ``k`` in ``bad_steps``; means are of equal values; gathers hold two copies."""

    world_size, global_rank = 2, 0

    def __init__(self, fabric, bad_steps):
        self._fabric, self.bad_steps, self.votes = fabric, bad_steps, []

    def __getattr__(self, name):
        return getattr(self._fabric, name)

    def all_reduce(self, t, reduce_op=None, group=None):
        if str(reduce_op).lower() == "sum":  # the skip vote
            self.votes.append(float(t))
            return t + float(len(self.votes) in self.bad_steps)
        assert str(reduce_op).lower() == "mean"
        return t

    def all_gather(self, data):
        return {k: torch.stack([v, v]) for k, v in data.items()}


def test_a_step_another_rank_found_bad_is_skipped_on_every_rank(tmp_path):
    torch.manual_seed(0)
    objective = TinyObjective(TinyNet(TinyConfig()))
    trainer = Trainer(objective, SineSet(24), None, small_config(max_steps=4, checkpoint_every=0), tmp_path)
    trainer.fabric = OtherRankBad(trainer.fabric, bad_steps={2})
    result = trainer.fit()
    assert trainer.fabric.votes == [0.0, 0.0, 0.0, 0.0]  # this rank's own flags: every step was fine here
    assert result["nan_skipped"] == 1 and result["step"] == 4
    state = load_checkpoint(tmp_path / "checkpoints" / "step-0000004.ckpt")
    assert len(state["rng"]) == 2 and state["world_size"] == 2  # one RNG state per rank, gathered
    assert torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])


def test_the_spike_guard_judges_against_the_running_mean_exactly():
    t = type("T", (), {"SPIKE_WARMUP": Trainer.SPIKE_WARMUP, "SPIKE_DECAY": Trainer.SPIKE_DECAY})()
    t.cfg, t.loss_mean = small_config(spike_factor=2.0), {}
    Trainer._track_loss(t, 0, 2.0)
    assert t.loss_mean == {"0": [2.0, 1]}  # the first loss is the mean
    Trainer._track_loss(t, 0, 4.0)
    assert t.loss_mean["0"] == [pytest.approx(0.98 * 2.0 + 0.02 * 4.0), 2]

    def spiking(mean, seen, loss, index=0):
        t.loss_mean = {"0": [mean, seen]}
        return float(Trainer._spiking(t, index, torch.tensor(loss)))

    assert Trainer.SPIKE_WARMUP == 50
    assert spiking(1.0, 50, 2.0001) == 1.0 and spiking(1.0, 50, 2.0) == 0.0  # judged from 50 on; above, not at
    assert spiking(1.0, 49, 100.0) == 0.0  # still warming up
    assert spiking(0.0, 60, 5.0) == 0.0  # a zero mean judges nothing
    assert spiking(4.0, 60, 7.9) == 0.0 and spiking(4.0, 60, 8.1) == 1.0  # factor x mean
    assert spiking(1.0, 60, 100.0, index=1) == 0.0  # optimizer 1 has its own (empty) history


class GanNanAtStep3(TinyGanObjective):
    """The generator's loss is NaN at step 3 (0-based), where the discriminator also steps; records the
    discriminator's first weight at the start of steps 3 and 4."""

    def __init__(self, model):
        super().__init__(model)
        self.disc_at = {}

    def losses(self, batch, opt_index):
        if self.global_step in (3, 4) and self.global_step not in self.disc_at:
            self.disc_at[self.global_step] = self.disc[0].weight.detach().clone()
        out = super().losses(batch, opt_index)
        if opt_index == 0 and self.global_step == 3:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_a_bad_optimizer_does_not_stop_the_others_stepping(tmp_path):
    torch.manual_seed(0)
    objective = GanNanAtStep3(TinyNet(TinyConfig()))
    result = Trainer(objective, SineSet(24), None, small_config(max_steps=5, checkpoint_every=0), tmp_path).fit()
    assert result["nan_skipped"] == 1
    assert not torch.equal(objective.disc_at[3], objective.disc_at[4])  # the discriminator stepped at step 3


def test_validation_runs_every_valid_every_steps_and_at_the_end(tmp_path):
    torch.manual_seed(0)
    objective = TinyObjective(TinyNet(TinyConfig()))
    cfg = small_config(max_steps=7, valid_every=3, checkpoint_every=0)
    Trainer(objective, SineSet(24), SineSet(8), cfg, tmp_path).fit()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "valid/loss" in r] == [3, 6, 7]


def test_bad_files_are_the_datasets_count_or_the_workers_whichever_is_larger():
    t = type("T", (), {})()
    counted = type("Set", (), {"bad_files": 3})()
    t.train_set, t._bad_seen = counted, {7}
    assert Trainer._bad_files(t) == 3
    t._bad_seen = {1, 2, 5, 9}
    assert Trainer._bad_files(t) == 4
    t.train_set, t._bad_seen = object(), set()  # a dataset that does not count
    assert Trainer._bad_files(t) == 0
    t._bad_seen = {4}
    assert Trainer._bad_files(t) == 1


def test_window_rows_count_the_audio_seconds_of_every_micro_batch_on_every_rank():
    added = []
    t = type("T", (), {})()
    t.window = type("W", (), {"add": lambda self, *a: added.append(a)})()
    t.objective = type("O", (), {"sample_rate": 800})()
    t.world, t.cfg, t._bad_seen = 2, small_config(batch_size=8), set()
    metrics = {"loss": 1.0}
    micro = [{"audio": torch.zeros(4, 32)}, {"audio": torch.zeros(32)}, {"skipped": [3, 5]}, ("not", "a dict")]
    Trainer._window_add(t, metrics, micro)
    assert added == [(metrics, 8, pytest.approx((4 * 32 + 32) / 800 * 2))]
    assert t._bad_seen == {3, 5}


def test_the_training_loader_uses_the_configured_workers(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(
        TinyObjective(TinyNet(TinyConfig())), SineSet(24), None, small_config(), tmp_path, num_workers=1
    )
    trainer._setup()
    assert trainer._train_loader(0, 0).num_workers == 1


def test_a_checkpoint_describes_itself(tmp_path):
    torch.manual_seed(0)
    cfg = small_config(max_steps=5, checkpoint_every=0)
    run_config = {"family": "tiny", "note": "kept as given"}
    Trainer(TinyObjective(TinyNet(TinyConfig())), SineSet(24), None, cfg, tmp_path, run_config=run_config).fit()
    state = load_checkpoint(tmp_path / "checkpoints" / "step-0000005.ckpt")
    assert state["version"] == CHECKPOINT_VERSION and state["step"] == 5
    assert (state["epoch"], state["batch_in_epoch"], state["steps_per_epoch"]) == (1, 2, 3)  # 24 clips / batch 8
    assert state["world_size"] == 1 and len(state["rng"]) == 1
    assert state["train_config"] == dataclasses.asdict(cfg) and state["run_config"] == run_config


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_the_exported_model_records_its_step_weights_and_run(tmp_path, ema_decay, monkeypatch):
    import soundsmith.train.checkpoint as ckpt

    exported = []
    monkeypatch.setattr(ckpt, "export_model", lambda model, directory, extra=None: exported.append((directory, extra)))
    torch.manual_seed(0)
    cfg = small_config(max_steps=3, checkpoint_every=0, ema_decay=ema_decay)
    run_config = {"family": "tiny", "note": "kept as given"}
    Trainer(TinyObjective(TinyNet(TinyConfig())), SineSet(24), None, cfg, tmp_path, run_config=run_config).fit()
    assert exported == [(tmp_path / "model", {"step": 3, "ema": ema_decay > 0, "run": run_config})]


def test_resuming_says_where_from_and_clears_stale_temp_files(tmp_path, caplog):
    from soundsmith.errors import ConfigError
    from soundsmith.train.checkpoint import _TMP_MARK

    def run(max_steps, resume):
        torch.manual_seed(0)
        cfg = small_config(max_steps=max_steps, checkpoint_every=2)
        return Trainer(TinyObjective(TinyNet(TinyConfig())), SineSet(24), None, cfg, tmp_path).fit(resume=resume)

    ckpts = tmp_path / "checkpoints"
    with caplog.at_level(logging.INFO, logger="soundsmith.train"):
        run(2, resume=True)  # nothing to resume yet
        assert f"resume: no readable checkpoint in {ckpts}; starting a fresh run" in caplog.messages
        stale = ckpts / f".step-0000004.ckpt{_TMP_MARK}123"
        stale.write_bytes(b"half a checkpoint")
        run(4, resume=True)
        assert f"resuming from {ckpts / 'step-0000002.ckpt'} (step 2)" in caplog.messages
    assert not stale.exists()
    with pytest.raises(ConfigError) as e:
        run(6, resume=False)
    assert str(e.value) == (
        f"{tmp_path} already holds checkpoints (step-0000004.ckpt); resume with --resume "
        "or choose another output directory"
    )


def test_the_progress_bar_counts_one_per_step_from_the_resumed_step(tmp_path, monkeypatch):
    import soundsmith.train.engine as engine

    bars = []

    class Bar:
        def __init__(self, total, initial, **kwargs):
            self.total, self.n = total, initial
            bars.append(self)

        def update(self, k):
            self.n += k

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            pass

    monkeypatch.setattr(engine, "tqdm", Bar)
    for max_steps, resume in ((2, False), (5, True)):
        torch.manual_seed(0)
        cfg = small_config(max_steps=max_steps, checkpoint_every=2)
        Trainer(TinyObjective(TinyNet(TinyConfig())), SineSet(24), None, cfg, tmp_path).fit(resume=resume)
    assert [(b.total, b.n) for b in bars] == [(2, 2), (5, 5)]


def test_fit_returns_the_runs_summary(tmp_path):
    torch.manual_seed(0)
    cfg = small_config(max_steps=4, log_every=2, valid_every=2, checkpoint_every=0)
    trainer = Trainer(TinyObjective(TinyNet(TinyConfig())), SineSet(24), SineSet(8), cfg, tmp_path)
    t0 = time.perf_counter()
    result = trainer.fit()
    elapsed = time.perf_counter() - t0
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r["train/loss"] for r in rows if "train/loss" in r]
    valid = [r["valid/loss"] for r in rows if "valid/loss" in r]
    assert set(result) == {
        "step", "epoch", "train_loss", "valid_loss", "best_valid_loss", "nan_skipped", "nan_restores", "bad_files",
        "wall_seconds",
    }  # fmt: skip
    assert (result["step"], result["epoch"], result["nan_skipped"], result["bad_files"]) == (4, 1, 0, 0)
    assert result["train_loss"] == pytest.approx(train[-1]) and result["valid_loss"] == pytest.approx(valid[-1])
    assert result["best_valid_loss"] == pytest.approx(min(valid)) and 0 < result["wall_seconds"] <= elapsed
