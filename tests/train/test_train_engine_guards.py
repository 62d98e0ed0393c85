"""The engine's guards and side jobs, pinned to exact counts (written for the survivors of `scripts/mutation.sh
train/engine`): how the NaN guard counts restores and compounds the LR factor, which validation loss is "best",
and that sampling during training listens to the EMA weights of the right data without moving the weights."""

import math

import pytest
import torch
from train_fixtures import SineSet, assert_same, make_objective, small_config, weights

import soundsmith.train.engine as engine
from soundsmith.errors import TrainingError
from soundsmith.train import Trainer
from soundsmith.train.checkpoint import load_checkpoint


def test_each_restore_compounds_the_lr_factor_and_the_cap_counts_restores(tmp_path, one_thread):
    # patience 1: each NaN step is a restore. Two NaN events with a cap of 2: the run finishes at LR x 0.25
    cfg = small_config(
        max_steps=10, checkpoint_every=1, nan_patience=1, max_nan_restores=2, nan_lr_factor=0.5
    )
    result = Trainer(make_objective(nan_calls={3, 7}), SineSet(24), None, cfg, tmp_path / "two").fit()
    assert result["nan_restores"] == 2 and result["nan_skipped"] == 2
    final = load_checkpoint(tmp_path / "two" / "checkpoints" / "step-0000010.ckpt")
    assert final["lr_scale"] == pytest.approx(0.25)
    # a third event is one restore too many
    with pytest.raises(TrainingError, match=r"again after 2 restore\(s\) with the LR lowered to x0\.25"):
        Trainer(make_objective(nan_calls={3, 7, 11}), SineSet(24), None, cfg, tmp_path / "three").fit()


def test_a_restore_starts_the_count_of_bad_steps_again(tmp_path, one_thread):
    # patience 2: calls 3, 4 are NaN -> one restore; call 5 alone is one bad step after it, not a second restore
    cfg = small_config(max_steps=8, checkpoint_every=1, nan_patience=2, max_nan_restores=5)
    result = Trainer(make_objective(nan_calls={3, 4, 5}), SineSet(24), None, cfg, tmp_path).fit()
    assert result["nan_restores"] == 1 and result["nan_skipped"] == 3


def test_best_is_the_first_lowest_finite_valid_loss_and_validation_runs_once_per_step(
    tmp_path, one_thread, monkeypatch
):
    script = iter([math.nan, 3.0, 1.0, 1.0, 2.0, math.inf])
    calls = []

    def scripted(fabric, module, dataset, micro, collate_fn, num_workers):
        calls.append(collate_fn)
        return {"loss": next(script)}

    monkeypatch.setattr(engine, "validation_means", scripted)
    cfg = small_config(max_steps=6, valid_every=1, checkpoint_every=6)
    result = Trainer(make_objective(), SineSet(24), SineSet(6), cfg, tmp_path).fit()
    assert len(calls) == 6  # once per step; none again at the end (step 6 was validated)
    assert all(callable(c) for c in calls)  # the run's collate function reaches validation
    best = load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    assert (
        best["step"] == 3 and best["best"] == 1.0
    )  # NaN never best; an equal later loss does not replace it
    assert result["valid_loss"] == math.inf  # the last validation, reported as it was


class OffsetSet(SineSet):
    """A validation set whose indices start at 100, so a batch says where it came from."""

    def __getitem__(self, i):
        item = super().__getitem__(i)
        return {**item, "index": 100 + i}


@pytest.mark.parametrize(("batch", "valid_items", "expected"), [(2, 6, 2), (8, 3, 3), (8, 6, 4)])
def test_sampling_listens_to_the_ema_weights_on_valid_items_and_leaves_training_alone(
    tmp_path, one_thread, batch, valid_items, expected
):
    cfg = small_config(max_steps=4, batch_size=batch, ema_decay=0.9, sample_every=2, checkpoint_every=2)
    objective = make_objective()
    original = objective.sample
    seen = []

    def spy(prepared):
        seen.append((prepared["index"].tolist(), weights(objective)))
        return original(prepared)

    objective.sample = spy
    Trainer(objective, SineSet(24), OffsetSet(valid_items), cfg, tmp_path / "sampled").fit()
    assert [indices for indices, _ in seen] == [list(range(100, 100 + expected))] * 2  # steps 2 and 4
    for (_, listened), step in zip(seen, (2, 4)):
        state = load_checkpoint(tmp_path / "sampled" / "checkpoints" / f"step-{step:07d}.ckpt")
        assert_same(listened, {k: v.to(listened[k].dtype) for k, v in state["ema"]["shadow"].items()})
        assert not torch.equal(listened["inp.weight"], weights(tmp_path / "sampled")["inp.weight"])
    # the same run without sampling ends on the same raw weights: sampling swapped the EMA in and back out
    quiet = small_config(max_steps=4, batch_size=batch, ema_decay=0.9, sample_every=0, checkpoint_every=2)
    Trainer(make_objective(), SineSet(24), OffsetSet(valid_items), quiet, tmp_path / "quiet").fit()
    assert_same(weights(tmp_path / "sampled"), weights(tmp_path / "quiet"))
    assert list((tmp_path / "sampled" / "samples").glob("step-0000002-*.wav"))


def test_sampling_without_a_valid_set_uses_the_train_set(tmp_path, one_thread):
    cfg = small_config(max_steps=2, sample_every=2, checkpoint_every=2)
    objective = make_objective()
    original, seen = objective.sample, []
    objective.sample = lambda prepared: (seen.append(prepared["index"].tolist()), original(prepared))[1]
    Trainer(objective, SineSet(24), None, cfg, tmp_path).fit()
    assert seen == [[0, 1, 2, 3]]


def test_ema_switched_on_at_a_resume_starts_from_the_restored_weights(tmp_path, one_thread):
    from train_fixtures import TinyConfig, TinyNet, model_state

    from soundsmith.train.ema import EMA

    run_dir = tmp_path / "r"
    Trainer(make_objective(), SineSet(24), None, small_config(max_steps=4, checkpoint_every=1), run_dir).fit()
    on = small_config(max_steps=6, checkpoint_every=1, ema_decay=0.9)
    Trainer(make_objective(seed=5), SineSet(24), None, on, run_dir).fit(resume=True)
    raw = {s: load_checkpoint(run_dir / "checkpoints" / f"step-{s:07d}.ckpt") for s in (4, 5, 6)}
    net = TinyNet(TinyConfig())

    def load(step):
        net.load_state_dict(model_state(raw[step]))
        return net

    expected = EMA(load(4), 0.9)  # the average starts at the weights the run resumed from
    expected.update(load(5))
    expected.update(load(6))
    got = raw[6]["ema"]["shadow"]
    assert_same(got, expected.shadow)


def test_resume_with_another_number_of_optimizers_is_refused(tmp_path, one_thread):
    class TwoOptimizers(type(make_objective())):  # the same weights, split over two optimizers
        def configure_optimizers(self, cfg):
            return [torch.optim.AdamW(self.model.inp.parameters(), lr=cfg.lr),
                    torch.optim.AdamW(self.model.out.parameters(), lr=cfg.lr)]  # fmt: skip

    cfg = small_config(max_steps=2, checkpoint_every=2)
    Trainer(make_objective(), SineSet(24), None, cfg, tmp_path).fit()
    two = TwoOptimizers(make_objective().model)
    with pytest.raises(
        TrainingError,
        match=r"checkpoint has 1 optimizer\(s\), the objective 2; resume with "
        "the same model family and objective",
    ):
        Trainer(two, SineSet(24), None, small_config(max_steps=4), tmp_path).fit(resume=True)


def test_a_checkpoint_without_this_ranks_rng_state_is_reseeded_not_a_crash(tmp_path, one_thread, caplog):
    from soundsmith.train.checkpoint import atomic_save

    cfg = small_config(max_steps=2, checkpoint_every=2)
    Trainer(make_objective(), SineSet(24), None, cfg, tmp_path).fit()
    path = tmp_path / "checkpoints" / "step-0000002.ckpt"
    state = load_checkpoint(path)
    state["rng"] = []  # as if written by a run with fewer ranks than this one
    atomic_save(state, path)
    result = Trainer(make_objective(), SineSet(24), None, small_config(max_steps=4), tmp_path).fit(
        resume=True
    )
    assert result["step"] == 4
    assert "RNG states for 0 ranks; rank 0 is reseeded" in caplog.text


def test_train_log_rows_carry_the_lr_epoch_and_guard_counts_of_their_step(tmp_path, one_thread):
    import json

    from train_fixtures import make_gan_objective

    # 24 items, batch 8: 3 steps an epoch; constant LR after a 2-step warmup; call 2 is NaN (skipped, no restore)
    cfg = small_config(max_steps=7, log_every=1, schedule="constant", warmup_steps=2, nan_patience=5)
    objective = make_objective(nan_calls={2})
    result = Trainer(objective, SineSet(24), None, cfg, tmp_path / "one").fit()
    rows = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "lr" in r]
    assert [r["step"] for r in rows] == list(range(1, 8))
    for r in rows:
        assert r["epoch"] == r["step"] // 3
        assert r["lr"] == pytest.approx(cfg.lr * min(1.0, (r["step"] + 1) / 2))  # warmup, then constant
        assert r["nan_restores"] == 0 and r["bad_files"] == 0
        if r["step"] != 2:  # the skipped step adds nothing to the window: no loss, no rate
            assert "train/loss" in r and r["samples_per_s"] > 0 and r["x_realtime"] > 0
    assert rows[-1]["nan_skipped"] == result["nan_skipped"] == 1
    # a second optimizer's LR is logged as lr_1, on its own schedule
    Trainer(
        make_gan_objective(), SineSet(24), None, small_config(max_steps=6, log_every=1), tmp_path / "gan"
    ).fit()
    gan_rows = [json.loads(x) for x in (tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert any("lr_1" in r and r["lr_1"] != r["lr"] for r in gan_rows)


def test_resume_keeps_the_lr_scale_and_best_of_the_run(tmp_path, one_thread, monkeypatch):
    # a NaN restore halved the LR before the interruption: the resumed run keeps the half, and its best validation
    # loss, so a worse later loss does not replace best.ckpt
    script = iter([1.0, 2.0, 3.0, 1.5, 1.2])
    monkeypatch.setattr(engine, "validation_means", lambda *a: {"loss": next(script)})
    first = small_config(max_steps=3, valid_every=1, checkpoint_every=1, nan_patience=1, nan_lr_factor=0.5,
                         schedule="constant", warmup_steps=0)  # fmt: skip
    Trainer(make_objective(nan_calls={3}), SineSet(24), SineSet(6), first, tmp_path).fit()
    assert load_checkpoint(tmp_path / "checkpoints" / "step-0000003.ckpt")["lr_scale"] == 0.5
    more = small_config(max_steps=5, valid_every=1, checkpoint_every=1, schedule="constant", warmup_steps=0)
    Trainer(make_objective(), SineSet(24), SineSet(6), more, tmp_path).fit(resume=True)
    final = load_checkpoint(tmp_path / "checkpoints" / "step-0000005.ckpt")
    assert final["lr_scale"] == 0.5
    assert final["optimizers"][0]["param_groups"][0]["lr"] == pytest.approx(0.5 * more.lr)
    best = load_checkpoint(tmp_path / "checkpoints" / "best.ckpt")
    assert best["step"] == 1 and best["best"] == 1.0


def test_a_checkpoint_without_running_loss_means_resumes(tmp_path, one_thread):
    from soundsmith.train.checkpoint import atomic_save

    Trainer(
        make_objective(), SineSet(24), None, small_config(max_steps=2, checkpoint_every=2), tmp_path
    ).fit()
    path = tmp_path / "checkpoints" / "step-0000002.ckpt"
    state = load_checkpoint(path)
    del state["loss_mean"]  # written before the spike guard kept them
    atomic_save(state, path)
    result = Trainer(make_objective(), SineSet(24), None, small_config(max_steps=4), tmp_path).fit(
        resume=True
    )
    assert result["step"] == 4


def test_a_one_step_run_still_validates_at_its_end(tmp_path, one_thread, monkeypatch):
    calls = []

    def scripted(fabric, module, dataset, micro, collate_fn, num_workers):
        calls.append(1)
        return {"loss": 2.5}

    monkeypatch.setattr(engine, "validation_means", scripted)
    cfg = small_config(max_steps=1, valid_every=100, checkpoint_every=100)
    result = Trainer(make_objective(), SineSet(24), SineSet(6), cfg, tmp_path).fit()
    assert len(calls) == 1 and result["valid_loss"] == 2.5  # the end of the run is validated, even at step 1


def test_fsdp_with_ema_and_a_batch_that_does_not_split_are_refused_whole(tmp_path, one_thread):
    from soundsmith.errors import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"^train.ema_decay > 0 is not supported with strategy 'fsdp'; use 'ddp' or ema_decay: 0$",
    ):
        Trainer(make_objective(), SineSet(24), None, small_config(strategy="fsdp", ema_decay=0.5), tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"^train.batch_size 3 must be a multiple of grad_accum x processes \(2 x 1\); change batch_size "
        r"or grad_accum$",
    ):
        Trainer(make_objective(), SineSet(24), None, small_config(batch_size=3, grad_accum=2), tmp_path).fit()


def test_the_train_sets_own_collate_function_is_used(tmp_path, one_thread):
    seen = []

    class Collating(SineSet):
        @staticmethod
        def collate_fn(items):
            seen.append(len(items))
            return torch.utils.data.default_collate(items)

    Trainer(make_objective(), Collating(24), None, small_config(max_steps=2), tmp_path).fit()
    assert seen and set(seen) == {8}
