"""scripts/reproduce_default.py: the one command that remakes the shipped default, run at toy size (``--smoke``)
end to end, and the pipeline settings it writes held to the shipped model's own config."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from soundsmith.models.latent_diffusion import LatentDiffusionConfig
from soundsmith.models.registry import load_model, read_model_config, shipped_models

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "reproduce_default.py"
SETTINGS = ROOT / "configs" / "latent_diffusion" / "pipeline" / "default.yaml"


def _reproduce(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    work, out = root / "work", root / "model"
    done = _reproduce("--out", str(out), "--work", str(work), "--smoke", "--teacher", "cpu")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return work, out, done.stdout


def test_the_shipped_default_is_what_the_settings_file_says():
    shipped = LatentDiffusionConfig(**read_model_config(shipped_models()["default"])["config"])
    settings = yaml.safe_load(SETTINGS.read_text())
    for name, value in settings.items():
        got = getattr(shipped, name)
        assert (list(got) if isinstance(got, tuple) else got) == value, name


def test_every_stage_runs_and_the_model_is_the_last_students_with_the_tuned_decoder(chain):
    work, out, stdout = chain
    timings = json.loads((work / "timings.json").read_text())
    assert list(timings) == ["corpus", "shift", "teacher", "guidance", "steps8", "steps12", "decoder", "export"]
    model = load_model(out)
    config = model.config
    for name, value in yaml.safe_load(SETTINGS.read_text()).items():
        got = getattr(config, name)
        assert (list(got) if isinstance(got, tuple) else got) == value, name
    assert config.denoiser.guidance_embed  # the guidance-distilled chain, not the two-pass teacher
    # the denoiser is the steps12 student's (fp16 storage), the VAE the tuned decoder's, the teacher's untouched
    student = load_model(work / "steps12_run" / "model").denoiser.state_dict()
    denoiser = model.denoiser.state_dict()
    assert all(torch.equal(denoiser[k], v.half().float()) for k, v in student.items())
    tuned = load_file(str(work / "decoder" / "vae" / "model.safetensors"))
    teacher_vae = load_model(work / "teacher").vae.state_dict()
    moved = [k for k in tuned if k.startswith("decoder.") and not torch.equal(tuned[k].float(), teacher_vae[k])]
    assert moved  # the decoder stage trained the decoder ...
    vae = model.vae.state_dict()
    assert all(torch.equal(vae[k], v.float()) for k, v in tuned.items())  # ... and the model carries it
    assert (out / "vae" / "config.json").is_file()  # a part of its own: the directory stands alone
    # the vocoder the shipped default decodes through, as the shipped default's own config names it
    shipped = read_model_config(shipped_models()["default"])["components"]["vocoder"]
    assert read_model_config(out)["components"]["vocoder"] == shipped == {"shipped": "vocoder_default"}


def test_the_reproduced_model_generates(chain):
    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    _, out, _ = chain
    pipe = LatentDiffusionPipeline(load_model(out).eval())
    audio = pipe("three beeps", duration=1.0, seed=0, progress=False).audio
    again = pipe("three beeps", duration=1.0, seed=0, progress=False).audio
    assert audio.shape == (1, 16000) and np.isfinite(audio).all() and np.abs(audio).max() > 0
    np.testing.assert_array_equal(audio, again)


def test_a_second_run_skips_what_is_done(chain):
    work, out, _ = chain
    before = (out / "model.safetensors").stat().st_mtime_ns
    again = _reproduce("--out", str(out), "--work", str(work), "--smoke", "--teacher", "cpu")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped") == 8 and "started" not in again.stdout
    assert (out / "model.safetensors").stat().st_mtime_ns == before


def test_it_refuses_to_overwrite_the_shipped_default_or_train_a_gpu_teacher_without_one(tmp_path):
    done = _reproduce("--out", str(ROOT / "models" / "default"), "--work", str(tmp_path))
    assert done.returncode != 0 and "would overwrite the shipped default" in done.stderr
    if not torch.cuda.is_available():
        done = _reproduce("--out", str(tmp_path / "m"), "--work", str(tmp_path), "--teacher", "gpu")
        assert done.returncode != 0 and "--teacher gpu needs a CUDA GPU" in done.stderr
    assert not any(tmp_path.iterdir())


def test_export_settings_refuse_what_is_not_a_setting(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 12\ndenoiser: {layers: 2}\nsteppes: 3\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export_default.py"), "--run", "default", "--out",
         str(tmp_path / "m"), "--settings", str(bad)], capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode != 0
    assert "['denoiser', 'steppes'] are not settings" in done.stderr and not (tmp_path / "m").exists()
    fields = {f.name for f in dataclasses.fields(LatentDiffusionConfig)}
    assert set(yaml.safe_load(SETTINGS.read_text())) <= fields
