"""scripts/gpu_ld: pack a corpus (prepare.py), train in memory (train.py, here on the CPU) and import the weights
(import_run.py). The GPU run that trained the default model went through exactly these three scripts, so a
silent change in the packed latents, the recomputed text features or the weight names would ship a broken model."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from soundsmith.models.registry import load_model, shipped_models
from soundsmith.sampling.diffusion import NoiseSchedule

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "gpu_ld"
CAPTIONS = ["a dog barks twice", "three beeps over steady rain", "a violin plays a slow rising scale in C4"]


def _run(script: str, *argv: str) -> None:
    sys.argv = [script, *argv]
    try:
        runpy.run_path(str(SCRIPTS / script), run_name="__main__")
    except SystemExit as exc:  # argparse-style exits
        assert exc.code in (0, None), f"{script} exited with {exc.code}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_ld")
    (root / "audio").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i, split in enumerate(["train"] * 5 + ["valid"] * 2 + ["test"]):
        t = np.arange(64000) / 16000
        audio = 0.2 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 0.01 * rng.standard_normal(64000)
        sf.write(root / "audio" / f"{i}.wav", audio.astype(np.float32), 16000)
        caps = [f"{c} number {i}" for c in CAPTIONS[: 1 + i % 3]]
        rows.append({"audio": f"audio/{i}.wav", "captions": caps, "labels": [], "duration": 4.0,
                     "sample_rate": 16000, "split": split})  # fmt: skip
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_pack_train_import_round_trip(corpus, tmp_path):
    like = shipped_models()["default"]
    pack, out, model_dir = tmp_path / "pack", tmp_path / "out", tmp_path / "model"
    _run("prepare.py", "--model", str(like), "--manifest", str(corpus / "manifest.jsonl"), "--out", str(pack),
         "--valid", "2", "--first-part", "2", "--per-part", "2")  # fmt: skip
    assert sorted(p.name for p in pack.iterdir()) == ["part0", "part1", "part2"]  # 5 train clips: 2 + 2 + 1
    packed = np.load(pack / "part0" / "latents.npz")
    assert packed["captions"].shape == (2, 3)
    assert packed["captions"][0, 1] == -1  # clip 0 has one caption

    # the packed latents are the model's own, to int8 precision
    import lzma

    model = load_model(like)
    audio = torch.from_numpy(sf.read(corpus / "audio" / "0.wav", dtype="float32")[0])[None]
    z = model.audio_to_latents(audio)[0, :, 0]  # [C, T']
    assert list(packed["q_shape"]) == [2, *z.shape]
    q = np.frombuffer(lzma.decompress(packed["q_xz"].tobytes()), np.int8).reshape(packed["q_shape"])
    back = q[0].astype(np.float32) * packed["scale"][0].astype(np.float32)[:, None]
    # int8 over each channel's own range: at most half a step of max|z| / 127 per channel (+ float16 scale rounding)
    step = np.abs(z.numpy()).max(axis=1, keepdims=True) / 127.0
    assert (np.abs(back - z.numpy()) <= 0.5 * step * 1.002 + 1e-7).all()

    _run("train.py", "--data", str(pack), "--out", str(out), "--max-steps", "4", "--batch", "2",
         "--valid-every", "2", "--warmup", "2", "--no-bf16")  # fmt: skip
    log = json.loads((out / "log.json").read_text())
    assert log["train_clips"] == 5 and [v["step"] for v in log["valid"]] == [2, 4]
    assert all(np.isfinite(v["loss"]) for v in log["valid"])
    best = min(log["valid"], key=lambda v: v["loss"])["step"]
    assert log["saved"] == {"last": 4, "best": best}

    # training timesteps are drawn as soundsmith train draws them (config's sampling and shift; seed + 1)
    assert log["timestep_sampling"] == "uniform"
    schedule = NoiseSchedule(**model.config.schedule_kwargs())
    expect = schedule.sample_timesteps(2, torch.Generator().manual_seed(1)).float()
    assert log["first_timesteps"] == pytest.approx(expect.tolist())
    _run("train.py", "--data", str(pack), "--out", str(tmp_path / "ln"), "--max-steps", "1", "--batch", "2",
         "--valid-every", "1", "--no-bf16", "--timestep-sampling", "logit_normal", "--seed", "3")  # fmt: skip
    ln = json.loads((tmp_path / "ln" / "log.json").read_text())
    logit = NoiseSchedule(**{**model.config.schedule_kwargs(), "timestep_sampling": "logit_normal"})
    expect = logit.sample_timesteps(2, torch.Generator().manual_seed(4)).float()
    assert ln["timestep_sampling"] == "logit_normal" and ln["first_timesteps"] == pytest.approx(
        expect.tolist()
    )

    _run("import_run.py", "--weights", str(out / "last"), "--like", str(like), "--out", str(model_dir))
    new = load_model(model_dir)
    saved = {**load_file(str(out / "last_0.safetensors")), **load_file(str(out / "last_1.safetensors"))}
    state = new.state_dict()
    for k, v in saved.items():
        torch.testing.assert_close(state[k], v.float())
    assert json.loads((model_dir / "config.json").read_text())["extra"]["step"] == 4
    old = model.state_dict()
    assert any(not torch.equal(old[k], state[k]) for k in saved)  # the training moved the weights


def test_init_starts_from_a_model_directorys_denoiser(corpus, tmp_path):
    like = shipped_models()["default"]
    pack, out = tmp_path / "pack", tmp_path / "out"
    _run("prepare.py", "--model", str(like), "--manifest", str(corpus / "manifest.jsonl"), "--out", str(pack),
         "--valid", "2", "--first-part", "5")  # fmt: skip
    _run("train.py", "--data", str(pack), "--out", str(out), "--max-steps", "1", "--batch", "2", "--valid-every",
         "1", "--lr", "0", "--no-bf16", "--init", str(like))  # fmt: skip
    saved = {**load_file(str(out / "last_0.safetensors")), **load_file(str(out / "last_1.safetensors"))}
    base = load_file(str(like / "model.safetensors"))
    for k, v in saved.items():  # lr 0: the EMA of the initial weights is those weights (stored as float16)
        torch.testing.assert_close(v.float(), base[k].float(), atol=1e-3, rtol=1e-3)
    log = json.loads((out / "log.json").read_text())
    assert [v["step"] for v in log["valid"]] == [0, 1]  # the starting weights are measured first
    # lr 0: the same weights, the same loss
    assert log["valid"][0]["loss"] == pytest.approx(log["valid"][1]["loss"], rel=1e-3)


def test_several_corpora_pack_their_train_splits_together(corpus, tmp_path):
    import lzma
    import shutil

    like = shipped_models()["default"]
    second = tmp_path / "second"
    shutil.copytree(corpus, second)
    rows = [json.loads(line) for line in (second / "manifest.jsonl").read_text().splitlines()]
    for r in rows:
        r["captions"] = [c.replace("number", "second corpus") for c in r["captions"]]
    (second / "audio" / "0.wav").unlink()  # its clip 0 is another sound than the first corpus' clip 0
    sf.write(second / "audio" / "0.wav", np.zeros(64000, np.float32), 16000)
    (second / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pack = tmp_path / "pack"
    _run("prepare.py", "--model", str(like), "--manifest", str(corpus / "manifest.jsonl"),
         str(second / "manifest.jsonl"), "--out", str(pack), "--valid", "8", "--first-part", "10")  # fmt: skip
    packed, valid = np.load(pack / "part0" / "latents.npz"), np.load(pack / "part0" / "valid.npz")
    assert list(packed["q_shape"])[0] == 10 and list(valid["q_shape"])[0] == 2  # valid: the first corpus only
    q = np.frombuffer(lzma.decompress(packed["q_xz"].tobytes()), np.int8).reshape(packed["q_shape"])
    assert np.abs(q[0]).max() > 0 and not np.array_equal(q[0], q[5])  # each row read from its own corpus
    first = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    captions = {c for r in first if r["split"] in ("train", "valid") for c in r["captions"]}
    captions |= {c for r in rows if r["split"] == "train" for c in r["captions"]}
    assert np.load(pack / "part0" / "text.npz")["pieces"].shape[0] == len(captions) == 22


def test_packed_caption_features_are_the_encoders_in_pack_order(corpus, tmp_path):
    """text_features batches captions by length; every row must still be its own caption's features."""
    from soundsmith.text import MiniLMEncoder

    like = shipped_models()["default"]
    pack = tmp_path / "pack"
    _run("prepare.py", "--model", str(like), "--manifest", str(corpus / "manifest.jsonl"), "--out", str(pack),
         "--valid", "2", "--first-part", "5")  # fmt: skip
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    captions = list(dict.fromkeys(c for r in rows if r["split"] in ("train", "valid") for c in r["captions"]))
    # lengths differ, so the length-sorted order is not the pack's
    assert len({len(c.split()) for c in captions}) > 1
    tokens, mask, pooled = runpy.run_path(str(SCRIPTS / "train.py"))["text_features"](
        pack / "part0" / "text.npz", torch.device("cpu")
    )
    ref = MiniLMEncoder().encode(captions)
    width = ref.tokens.shape[1]
    assert mask.shape[1] == width and torch.equal(mask, ref.mask.bool())
    torch.testing.assert_close(tokens.float(), ref.tokens, atol=5e-3, rtol=1e-2)  # float16 storage
    torch.testing.assert_close(pooled, ref.pooled, atol=1e-3, rtol=1e-3)


def _plain_base(tmp_path: Path) -> Path:
    """The shipped default's denoiser without its guidance input: a base that guidance can be distilled from."""
    from soundsmith.models.registry import save_model

    model = load_model(shipped_models()["default"])
    model.denoiser.guidance_mlp = None
    model.denoiser.config.guidance_embed = False
    save_model(model, tmp_path / "plain")
    assert not json.loads((tmp_path / "plain" / "config.json").read_text())["config"]["denoiser"][
        "guidance_embed"
    ]
    return tmp_path / "plain"


def test_distill_phase_trains_a_one_pass_student_that_imports(corpus, tmp_path):
    base = _plain_base(tmp_path)
    pack, out, model_dir = tmp_path / "pack", tmp_path / "out", tmp_path / "student"
    _run("prepare.py", "--model", str(base), "--manifest", str(corpus / "manifest.jsonl"), "--out", str(pack),
         "--valid", "2", "--first-part", "5")  # fmt: skip
    _run("train.py", "--data", str(pack), "--out", str(out), "--max-steps", "3", "--batch", "2", "--valid-every",
         "2", "--no-bf16", "--init", str(base), "--distill-s", "1", "--distill-warmup", "1")  # fmt: skip
    log = json.loads((out / "log.json").read_text())
    assert log["steps"] == 3 and log["distill_steps"] == 3
    assert [v["step"] for v in log["distill_valid"]] == [0, 2, 3]
    assert log["saved"]["last"] == 3 and log["saved"]["glast"] == 3
    assert log["distill"] == {"sample_shift": 8.0, "guidance_range": [1.0, 4.0]}
    student = {**load_file(str(out / "glast_0.safetensors")), **load_file(str(out / "glast_1.safetensors"))}
    assert any(k.startswith("denoiser.guidance_mlp.") for k in student)
    teacher = {**load_file(str(out / "last_0.safetensors")), **load_file(str(out / "last_1.safetensors"))}
    assert not any(k.startswith("denoiser.guidance_mlp.") for k in teacher)

    _run("import_run.py", "--weights", str(out / "glast"), "--like", str(base), "--out", str(model_dir),
         "--guidance-embed")  # fmt: skip
    new = load_model(model_dir)
    assert new.config.denoiser.guidance_embed
    state = new.state_dict()
    for k, v in student.items():
        torch.testing.assert_close(state[k], v.float())
    assert json.loads((model_dir / "config.json").read_text())["extra"]["gpu_log"]["distill_steps"] == 3


def test_distill_target_is_the_teachers_two_pass_guidance(corpus, tmp_path):
    """train.py batches the teacher's conditional and unconditional rows together; each half must be its own."""
    base = _plain_base(tmp_path)
    teacher = load_model(base).denoiser.eval()
    ns = runpy.run_path(str(SCRIPTS / "train.py"))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 128, 1, 16, generator=gen)
    now = torch.tensor([0.9, 0.5, 0.2])
    tt, mm = torch.randn(3, 5, 384, generator=gen), torch.ones(3, 5, dtype=torch.bool)
    pp = torch.nn.functional.normalize(torch.randn(3, 384, generator=gen), dim=-1)
    w = torch.tensor([1.0, 2.5, 4.0])
    with torch.no_grad():
        got = ns["guided_target"](teacher, x, now, tt, mm, pp, w, torch.autocast("cpu", enabled=False))
        cond = teacher(x, now, tt, mm, pp, torch.zeros(3, dtype=torch.bool))
        uncond = teacher(x, now, tt, mm, pp, torch.ones(3, dtype=torch.bool))
    assert not torch.allclose(cond, uncond)  # the two branches differ, so a swapped half would show
    torch.testing.assert_close(got, uncond + w.view(-1, 1, 1, 1) * (cond - uncond), atol=3e-4, rtol=1e-3)


def test_distill_refuses_a_denoiser_that_already_guides_in_one_pass(corpus, tmp_path):
    like = shipped_models()["default"]  # guidance-distilled
    pack = tmp_path / "pack"
    _run("prepare.py", "--model", str(like), "--manifest", str(corpus / "manifest.jsonl"), "--out", str(pack),
         "--valid", "2", "--first-part", "5")  # fmt: skip
    sys.argv = [
        "train.py",
        "--data",
        str(pack),
        "--out",
        str(tmp_path / "o"),
        "--distill-s",
        "5",
        "--no-bf16",
    ]
    with pytest.raises(SystemExit, match="already guides in one pass"):
        runpy.run_path(str(SCRIPTS / "train.py"), run_name="__main__")


def test_parts_renamed_into_place_join_the_pool(corpus, tmp_path):
    like = shipped_models()["default"]
    pack = tmp_path / "pack"
    _run("prepare.py", "--model", str(like), "--manifest", str(corpus / "manifest.jsonl"), "--out", str(pack),
         "--valid", "2", "--first-part", "2", "--per-part", "2")  # fmt: skip
    (pack / "part2").rename(pack / "part2.tmp")  # a copy still in flight
    ns = runpy.run_path(str(SCRIPTS / "train.py"))
    pool = ns["Pool"](pack, torch.device("cpu"))
    assert pool.loaded == ["part0", "part1"] and len(pool.x0) == len(pool.caps) == len(pool.n_caps) == 4
    assert pool.refresh() == []
    (pack / "part2.tmp").rename(pack / "part2")
    assert pool.refresh() == ["part2"] and len(pool.x0) == 5 and pool.refresh() == []
    last = np.load(pack / "part2" / "latents.npz")["captions"]
    assert torch.equal(pool.caps[4:].cpu(), torch.from_numpy(last.astype(np.int64)))


def test_deadline_file_moves_the_deadline(tmp_path):
    ns = runpy.run_path(str(SCRIPTS / "train.py"))
    path = tmp_path / "deadline"
    d = ns["Deadline"](100.0, path)
    assert not d.poll() and d.s == 100.0  # no file yet
    path.write_text(f"{ns['START'] + 250.0}\n")
    assert d.poll() and d.s == pytest.approx(250.0)
    assert not d.poll()  # unchanged
