"""Fine-tuning (soundsmith.finetune) on a tiny latent-diffusion base: data checks, LoRA and full, exact resume,
adapters on the pipeline (scale 0 = base, two at once, a mismatched base refused)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import soundsmith
from soundsmith.audio import save_audio
from soundsmith.errors import ConfigError, ModelError
from soundsmith.finetune import FinetuneConfig, finetune, plan
from soundsmith.finetune.data import collect_clips
from soundsmith.models.registry import load_model, save_model
from soundsmith.nn import lora
from soundsmith.pipelines.loader import load
from soundsmith.train import checkpoint as ckpt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from contract_checks import tiny_model_dir  # noqa: E402

SR = 16000
BAD = {"short.wav": "too short", "quiet.wav": "silent", "loud.wav": "clipped", "broken.wav": "unreadable"}
BAD["notes.m4a"] = "not audio"


def make_data(folder: Path, n: int = 8) -> Path:
    """``n`` good clips (tones + noise, 0.6 s) named ``zap_NN.wav`` and one bad clip of each kind."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(0.6 * SR)) / SR
    for i in range(n):
        tone = 0.3 * np.sin(2 * np.pi * (300 + 40 * i) * t) + 0.02 * rng.standard_normal(len(t))
        save_audio(folder / f"zap_{i:02d}.wav", tone.astype(np.float32), SR)
    save_audio(folder / "short.wav", np.full(SR // 20, 0.2, np.float32), SR)
    save_audio(folder / "quiet.wav", np.zeros(SR, np.float32), SR)
    save_audio(folder / "loud.wav", np.sign(np.sin(2 * np.pi * 5 * t)).astype(np.float32), SR)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00not a wave file")
    (folder / "notes.m4a").write_bytes(b"\x00" * 64)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    return tiny_model_dir("latent_diffusion", root / "base"), make_data(root / "data"), root


def small(base: Path, **kw) -> FinetuneConfig:
    values = {"base": str(base), "steps": 6, "batch_size": 4, "prior_clips": 2, "valid_every": 3}
    return FinetuneConfig(**{**values, **kw})


@pytest.fixture(scope="module")
def lora_run(setup):
    base, data, root = setup
    result = finetune(data, root / "lora", small(base))
    return result


def test_bad_clips_are_named_and_skipped_with_a_summary(setup, tmp_path, caplog):
    _, data, _ = setup
    with caplog.at_level(logging.INFO, logger="soundsmith.finetune"):
        check = collect_clips(data, tmp_path)
    reasons = {s.path.name: s.reason for s in check.skipped}
    assert reasons == BAD
    assert sorted(c.path.name for c in check.clips) == [f"zap_{i:02d}.wav" for i in range(8)]
    for name in BAD:
        assert any(name in r.message and r.levelno == logging.WARNING for r in caplog.records)
    summary = check.summary()
    assert summary in caplog.text and "8 usable, 5 skipped" in summary and "1 clipped" in summary


def test_captions_come_from_caption_sidecar_csv_then_file_name(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    t = np.arange(SR // 2) / SR
    for name in ("door_slam-03.wav", "b.wav", "c.wav"):
        save_audio(folder / name, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    (folder / "captions.csv").write_text("file,caption\nb.wav,a bell from the csv\nc.wav,csv loses\n")
    (folder / "c.txt").write_text("the sidecar wins\n\nsecond caption\n")
    check = collect_clips(folder, tmp_path / "w", trigger="in the style of zapp")
    caps = {c.path.name: c.captions for c in check.clips}
    assert caps == {
        "door_slam-03.wav": ["door slam in the style of zapp"],
        "b.wav": ["a bell from the csv in the style of zapp"],
        "c.wav": ["the sidecar wins in the style of zapp", "second caption in the style of zapp"],
    }
    one = collect_clips(folder, tmp_path / "w2", caption="a zap")
    assert {tuple(c.captions) for c in one.clips} == {("a zap",)}


def test_plan_follows_the_data_size():
    few = plan(FinetuneConfig(), n_train=3, seconds=0.8, model_duration=4.0)
    many = plan(FinetuneConfig(), n_train=150, seconds=9.0, model_duration=4.0)
    assert few.batch_size == 3 + few.prior_clips and many.batch_size == 8
    assert few.prior_clips == 4 and many.prior_clips == 32
    assert 100 <= few.steps < many.steps <= 2000
    assert few.clip_seconds == 0.8 and many.clip_seconds == 4.0  # at most the base's duration
    assert few.ema_decay == 0.0 and few.lr > plan(FinetuneConfig(method="full"), 3, 0.8, 4.0).lr
    full = plan(FinetuneConfig(method="full", steps=500), 3, 0.8, 4.0)
    assert 0.9 <= full.ema_decay < 1 and plan(FinetuneConfig(prior=False), 3, 0.8, 4.0).prior_clips == 0


def test_lora_run_writes_a_small_adapter_naming_its_base(setup, lora_run):
    base, _, root = setup
    run = root / "lora"
    info = json.loads((run / "model" / "adapter.json").read_text())
    assert info["base"] == str(base.resolve()) and info["target"] == "denoiser" and info["rank"] == 8
    assert len(info["base_sha256"]) == 64 and lora_run.step == 6 and lora_run.best_step in (3, 6)
    assert lora_run.train_clips + lora_run.valid_clips == 8 and lora_run.valid_clips >= 1
    assert len(lora_run.skipped) == len(BAD)
    rows = [json.loads(line) for line in (run / "data" / "manifest.jsonl").read_text().splitlines()]
    assert (
        sum(r["meta"]["source"] == "prior" for r in rows) == 2
        and len(list((run / "prior").glob("*.wav"))) == 2
    )
    assert (
        not list(run.glob("model/*.ckpt"))
        and (run / "model" / "adapter.safetensors").stat().st_size < 200_000
    )
    # training checkpoints hold only the trained (LoRA) tensors
    state = ckpt.load_checkpoint(run / "checkpoints" / "step-0000006.ckpt")["objective"]
    assert state and all(".adapters.finetune." in k for k in state)


def test_lora_at_scale_0_generates_the_base_exactly(setup, lora_run):
    base, _, root = setup
    ref = soundsmith.load(base)("a zap", duration=0.5, seed=2, progress=False).audio
    tuned = load(root / "lora")
    assert tuned.adapters == {"lora": 1.0}
    at_one = tuned("a zap", duration=0.5, seed=2, progress=False)
    assert not np.array_equal(at_one.audio, ref) and "lora" in at_one.meta["adapters"]
    np.testing.assert_array_equal(
        load(root / "lora", lora_scale=0.0)("a zap", duration=0.5, seed=2).audio, ref
    )
    tuned.set_adapter_scale("lora", 0.0)
    np.testing.assert_array_equal(tuned("a zap", duration=0.5, seed=2, progress=False).audio, ref)


def test_two_adapters_at_once(setup, lora_run):
    base, data, root = setup
    finetune(data, root / "lora_b", small(base, rank=2, seed=1, caption="a different zap"))
    ref = soundsmith.load(base)("a zap", duration=0.5, seed=0, progress=False).audio
    a = load(base, adapters=[root / "lora"])("a zap", duration=0.5, seed=0, progress=False).audio
    both = load(base, adapters=[root / "lora", (root / "lora_b", 0.5)])
    assert both.adapters == {"lora": 1.0, "lora_b": 0.5}
    out = both("a zap", duration=0.5, seed=0, progress=False).audio
    assert not np.array_equal(out, a) and not np.array_equal(out, ref)
    both.set_adapter_scale("lora_b", 0.0)
    np.testing.assert_array_equal(both("a zap", duration=0.5, seed=0, progress=False).audio, a)
    both.remove_adapter("lora")
    both.remove_adapter("lora_b")
    np.testing.assert_array_equal(both("a zap", duration=0.5, seed=0, progress=False).audio, ref)


def test_an_adapter_on_another_base_is_refused(setup, lora_run, tmp_path):
    base, _, root = setup
    other = load_model(base)
    with torch.no_grad():
        other.denoiser.inp.weight.add_(0.01)
    save_model(other, tmp_path / "other")
    with pytest.raises(ModelError, match="trained on base") as err:
        load(tmp_path / "other", adapters=[root / "lora"])
    assert str(base.resolve()) in str(err.value) and "\n" not in str(err.value)
    pipe = soundsmith.load(tmp_path / "other")
    with pytest.raises(ModelError, match="trained on base"):
        pipe.load_adapter(root / "lora")
    assert pipe.adapters == {} and not lora.wrappers(pipe.model)


def _assert_same_checkpoint(a_run: Path, b_run: Path, step: int) -> None:
    """Two runs' checkpoints at ``step`` hold the same trained tensors, bit for bit (and some)."""
    a = ckpt.load_checkpoint(a_run / "checkpoints" / f"step-{step:07d}.ckpt")
    b = ckpt.load_checkpoint(b_run / "checkpoints" / f"step-{step:07d}.ckpt")
    assert set(a["objective"]) == set(b["objective"]) and a["objective"]
    for key, value in a["objective"].items():
        assert torch.equal(value, b["objective"][key]), key


def test_a_killed_run_resumes_to_the_same_weights(setup, tmp_path, one_thread):
    base, data, _ = setup
    for method in ("lora", "full", "guidance"):
        cfg = small(base, method=method, steps=8, valid_every=2)
        straight = finetune(data, tmp_path / f"{method}-straight", cfg)
        first = finetune(data, tmp_path / f"{method}-killed", cfg, stop_at=5)
        assert first.step == 5
        resumed = finetune(data, tmp_path / f"{method}-killed", FinetuneConfig(), resume=True)
        assert straight.step == resumed.step == 8
        _assert_same_checkpoint(tmp_path / f"{method}-straight", tmp_path / f"{method}-killed", 8)


def test_full_finetune_exports_a_model_directory_with_ema(setup, tmp_path):
    base, data, _ = setup
    result = finetune(data, tmp_path / "full", small(base, method="full", steps=6, ema_decay=0.5))
    meta = json.loads((tmp_path / "full" / "model" / "config.json").read_text())
    assert meta["family"] == "latent_diffusion" and meta["extra"]["finetune"]["method"] == "full"
    assert meta["extra"]["finetune"]["step"] == result.best_step
    before, after = load_model(base), load_model(tmp_path / "full")
    changed = [
        k
        for k, v in after.denoiser.state_dict().items()
        if not torch.equal(v, before.denoiser.state_dict()[k])
    ]
    assert changed
    state = ckpt.load_checkpoint(tmp_path / "full" / "checkpoints" / f"step-{6:07d}.ckpt")
    assert state["ema"] is not None and all(k.startswith("model.denoiser.") for k in state["objective"])
    pipe = soundsmith.load(tmp_path / "full")
    assert pipe("a zap", duration=0.5, progress=False).audio.shape == (1, SR // 2)


def test_guidance_distillation_exports_a_one_pass_model_at_twice_the_steps(setup, tmp_path):
    base, data, _ = setup
    result = finetune(data, tmp_path / "g", small(base, method="guidance", steps=6, ema_decay=0.5))
    meta = json.loads((tmp_path / "g" / "model" / "config.json").read_text())
    base_meta = json.loads((base / "config.json").read_text())
    assert meta["extra"]["finetune"]["method"] == "guidance" and result.best_step in (3, 6)
    assert (
        meta["config"]["denoiser"]["guidance_embed"] and not base_meta["config"]["denoiser"]["guidance_embed"]
    )
    assert meta["config"]["steps"] == 2 * base_meta["config"]["steps"]
    state = ckpt.load_checkpoint(tmp_path / "g" / "checkpoints" / f"step-{6:07d}.ckpt")
    assert any("guidance_mlp" in k for k in state["objective"])
    assert not any("teacher" in k for k in state["objective"])  # the frozen teacher is never saved
    with pytest.raises(ConfigError, match="already guides in one pass"):
        finetune(data, tmp_path / "gg", small(base=tmp_path / "g", method="guidance", steps=2))
    student = load_model(tmp_path / "g")
    assert student.denoiser.guidance_mlp is not None
    assert any(p.abs().max() > 0 for p in student.denoiser.guidance_mlp[2].parameters())  # it learned
    pipe = soundsmith.load(tmp_path / "g")
    assert pipe("a zap", duration=0.5, progress=False).audio.shape == (1, SR // 2)


def test_guidance_objective_regresses_on_the_teachers_guided_prediction(setup):
    import copy

    from soundsmith.finetune.run import GuidanceObjective

    base, _, _ = setup
    model = load_model(base)
    with torch.no_grad():  # the tiny base's output layers are zero: give them weights so branches differ
        for p in model.denoiser.parameters():
            p.normal_(0, 0.05)
    teacher = copy.deepcopy(model.denoiser)
    model.denoiser.add_guidance_input()
    tokens, mask, pooled = model.encode_text(["a zap", "a bell rings twice"])
    x0 = torch.randn(2, *model.latent_shape(8000), generator=torch.Generator().manual_seed(0))
    batch = {"latents": x0, "text_tokens": tokens, "text_mask": mask, "text_pooled": pooled}

    def loss(lo: float, hi: float) -> float:
        objective = GuidanceObjective(model, teacher, [lo, hi])
        assert not any("teacher" in name for name, _ in objective.named_parameters())
        return float(objective.denoising_loss(batch, torch.Generator().manual_seed(7))[0].detach())

    # the student starts as the teacher's conditional prediction: exact at scale 1, off by (w - 1)^2 |c - u|^2
    assert loss(1.0, 1.0 + 1e-9) < 1e-10
    at2, at4 = loss(2.0, 2.0 + 1e-9), loss(4.0, 4.0 + 1e-9)
    assert at2 > 1e-6 and at4 == pytest.approx(9 * at2, rel=1e-4)


def _one_pass(base: Path):
    """The tiny base, given random weights (its output layers start at zero) and a guidance input: a one-pass
    teacher whose steps differ."""
    model = load_model(base)
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.normal_(0, 0.05)
        model.denoiser.add_guidance_input()
        for p in model.denoiser.guidance_mlp.parameters():
            p.normal_(0, 0.05)
    return model


def test_step_objective_lands_where_two_dpmpp_steps_of_the_teacher_land(setup):
    import copy

    from soundsmith.finetune.run import StepObjective
    from soundsmith.sampling.diffusion import DiffusionSampler, NoiseSchedule

    base, _, _ = setup
    model = _one_pass(base)
    model.config.sample_shift = 4.0
    teacher = copy.deepcopy(model.denoiser)
    objective = StepObjective(model, teacher, 3, [2.5, 2.5 + 1e-9])
    tokens, mask, pooled = model.encode_text(["a zap", "a bell rings twice"])
    x = torch.randn(2, *model.latent_shape(8000), generator=torch.Generator().manual_seed(0))
    w = torch.full((2,), 2.5)
    got = objective.teacher_two_steps(x, torch.zeros(2, dtype=torch.long), (tokens, mask, pooled), w)
    # diffusers' DPM-Solver++ 2M over the grid of 6 steps, its first two steps from the same point
    sampler = DiffusionSampler("dpmpp", NoiseSchedule(**model.config.schedule_kwargs(sampling=True)))
    sampler.set_steps(6)
    ref = x.clone()
    with torch.no_grad():
        for t in sampler.timesteps[:2]:
            now = torch.full((2,), float(t) / model.config.num_train_timesteps)
            ref = sampler.step(teacher(ref, now, tokens, mask, pooled, None, w), t, ref)
    assert float((got - ref).abs().max()) < 1e-4 * float(ref.abs().max())
    assert float((got - x).abs().max()) > 1e-3  # the teacher moved
    # the student starts as the teacher: one first-order step is off from two steps, so the loss is > 0
    batch = {"latents": x, "text_tokens": tokens, "text_mask": mask, "text_pooled": pooled}
    assert float(objective.denoising_loss(batch, torch.Generator().manual_seed(1))[0].detach()) > 1e-8


def test_step_distillation_exports_a_model_at_half_the_steps(setup, tmp_path):
    base, data, _ = setup
    with pytest.raises(ConfigError, match="guides in two passes"):
        finetune(data, tmp_path / "s0", small(base, method="steps", steps=2))
    save_model(_one_pass(base), tmp_path / "teacher")
    base_steps = json.loads((tmp_path / "teacher" / "config.json").read_text())["config"]["steps"]
    result = finetune(
        data, tmp_path / "s", small(tmp_path / "teacher", method="steps", steps=4, valid_every=2)
    )
    meta = json.loads((tmp_path / "s" / "model" / "config.json").read_text())
    assert meta["extra"]["finetune"]["method"] == "steps" and result.best_step in (2, 4)
    assert meta["config"]["sampler"] == "dpmpp" and meta["config"]["steps"] == max(1, base_steps // 2)
    state = ckpt.load_checkpoint(tmp_path / "s" / "checkpoints" / f"step-{4:07d}.ckpt")
    assert not any("teacher" in k for k in state["objective"])
    before, after = load_model(tmp_path / "teacher"), load_model(tmp_path / "s")
    assert any(
        not torch.equal(v, before.denoiser.state_dict()[k]) for k, v in after.denoiser.state_dict().items()
    )
    pipe = soundsmith.load(tmp_path / "s")
    assert pipe("a zap", duration=0.5, progress=False).audio.shape == (1, SR // 2)
    chosen = finetune(
        data, tmp_path / "s3", small(tmp_path / "teacher", method="steps", steps=2, student_steps=3)
    )
    assert json.loads((chosen.model_dir / "config.json").read_text())["config"]["steps"] == 3


def test_a_killed_step_distillation_resumes_to_the_same_weights(setup, tmp_path, one_thread):
    base, data, _ = setup
    save_model(_one_pass(base), tmp_path / "teacher")
    cfg = small(tmp_path / "teacher", method="steps", steps=6, valid_every=2)
    finetune(data, tmp_path / "straight", cfg)
    assert finetune(data, tmp_path / "killed", cfg, stop_at=3).step == 3
    assert finetune(data, tmp_path / "killed", FinetuneConfig(), resume=True).step == 6
    _assert_same_checkpoint(tmp_path / "straight", tmp_path / "killed", 6)


def test_minutes_stop_with_a_checkpoint_and_resume_finishes(setup, tmp_path):
    base, data, _ = setup
    cfg = small(base, steps=6, valid_every=3)
    first = finetune(data, tmp_path / "r", cfg, minutes=1e-9)
    assert first.timed_out and 1 <= first.step < 6
    assert ckpt.list_checkpoints(tmp_path / "r" / "checkpoints")[-1].name == ckpt.checkpoint_name(first.step)
    assert (tmp_path / "r" / "model" / "adapter.json").is_file()
    done = finetune(data, tmp_path / "r", FinetuneConfig(), resume=True)
    assert done.step == 6 and not done.timed_out


def test_run_directory_misuse_is_refused(setup, lora_run, tmp_path):
    base, data, root = setup
    with pytest.raises(ConfigError, match="already holds a fine-tune"):
        finetune(data, root / "lora", small(base))
    with pytest.raises(ConfigError, match="rank=8"):
        finetune(data, root / "lora", FinetuneConfig(rank=4), resume=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.wav").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="no usable clip"):
        finetune(empty, tmp_path / "run", small(base))
    with pytest.raises(ConfigError, match="--method"):
        FinetuneConfig(method="dreambooth")
    for bad in ([3.0, 2.0], [1.0], [-1.0, 2.0], [1.0, float("nan")]):
        with pytest.raises(ConfigError, match="guidance_range"):
            FinetuneConfig(method="guidance", guidance_range=bad)


def test_an_attached_adapter_runs_in_float32_when_int8_is_asked(setup, lora_run):
    _, _, root = setup
    tuned = load(root / "lora")
    asked = tuned("a zap", duration=0.5, seed=2, progress=False, compute="int8")
    assert asked.meta["compute"] == "float32"  # the int8 twin has no adapters: it is not used
    np.testing.assert_array_equal(asked.audio, tuned("a zap", duration=0.5, seed=2, progress=False).audio)
