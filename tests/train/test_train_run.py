"""train_from_files: data-dependent model fields, resume config, and bad files counted across workers."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundsmith.errors import ConfigError
from soundsmith.models.wavenet import WaveNetConfig
from soundsmith.train.run import adapt_model_config, train_from_files

TINY = Path(__file__).resolve().parents[2] / "configs" / "wavenet" / "tiny.yaml"


def test_adapt_fills_labels_and_categories():
    cfg = adapt_model_config(WaveNetConfig(gc_channels=4), ["bell", "rain"])
    assert cfg.labels == ["bell", "rain"] and cfg.gc_cardinality == 2
    # Caption-conditioned: the global vector carries the caption; categories only when asked for.
    cap = adapt_model_config(
        WaveNetConfig(gc_channels=4, text_encoder="hashed:8", text_dim=8), ["bell", "rain"]
    )
    assert cap.gc_cardinality == 0
    # Explicit values are kept.
    kept = adapt_model_config(WaveNetConfig(gc_channels=4, labels=["x"], gc_cardinality=1), ["bell", "rain"])
    assert dataclasses.asdict(kept) == dataclasses.asdict(
        WaveNetConfig(gc_channels=4, labels=["x"], gc_cardinality=1)
    )
    with pytest.raises(ConfigError, match="labels"):
        adapt_model_config(WaveNetConfig(gc_channels=4), [])


def _manifest(tmp_path: Path, n_good: int, bad: int) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_good + bad):
        name = f"audio/{i}.wav"
        (tmp_path / "audio").mkdir(exist_ok=True)
        if i < n_good:
            sf.write(tmp_path / name, 0.2 * rng.standard_normal(1600).astype(np.float32), 16000)
        else:
            (tmp_path / name).write_bytes(b"RIFF\x00\x00garbage")
        rows.append(
            {
                "audio": name,
                "captions": ["noise"],
                "labels": ["noise" if i % 2 else "hiss"],
                "duration": 0.1,
                "sample_rate": 16000,
                "split": "train",
            }
        )
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bad_files_counted_from_workers_and_run_completes(tmp_path):
    manifest = _manifest(tmp_path, n_good=8, bad=2)
    sets = [
        "train.max_steps=3",
        "data.num_workers=2",
        "train.batch_size=4",
        "train.checkpoint_every=0",
        "train.valid_every=0",
    ]
    result = train_from_files(TINY, manifest, tmp_path / "run", overrides=sets)
    assert result["step"] == 3
    assert result["bad_files"] == 2
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "gc_cardinality: 2" in saved  # filled from the manifest's labels and saved for --resume


VOCODER_TINY = TINY.parents[1] / "vocoder" / "tiny.yaml"


def test_objective_section_reaches_the_objective_and_is_kept_for_resume(tmp_path):
    """``--set objective.disc_start_step=2``: the vocoder's discriminators start at step 2 instead of 20,000."""
    rng = np.random.default_rng(0)
    (tmp_path / "audio").mkdir()
    rows = []
    for i in range(6):
        sf.write(tmp_path / f"audio/{i}.wav", 0.2 * rng.standard_normal(8000).astype(np.float32), 16000)
        rows.append({"audio": f"audio/{i}.wav", "duration": 0.5, "sample_rate": 16000, "split": "train"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["train.max_steps=4", "train.log_every=1", "train.valid_every=0", "train.checkpoint_every=2"]
    run = tmp_path / "run"
    train_from_files(VOCODER_TINY, manifest, run, overrides=[*base, "objective.disc_start_step=2"])
    logged = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    adversarial = {r["step"] for r in logged if "train/adv" in r}
    assert adversarial == {3, 4}  # steps 3 and 4 (global steps 2 and 3) train with the discriminators
    assert "disc_start_step: 2" in (run / "config.yaml").read_text()  # saved for --resume
    plain = tmp_path / "plain"
    train_from_files(VOCODER_TINY, manifest, plain, overrides=base)
    assert not any("train/adv" in json.loads(x) for x in (plain / "metrics.jsonl").read_text().splitlines())
    assert "objective" not in (plain / "config.yaml").read_text()
    # resumed with a new value, the run follows it
    train_from_files(
        None, manifest, plain, overrides=["train.max_steps=6", "objective.disc_start_step=5"], resume=True
    )
    resumed = [json.loads(x) for x in (plain / "metrics.jsonl").read_text().splitlines()]
    assert {r["step"] for r in resumed if "train/adv" in r} == {6}


def test_objective_section_is_checked_against_the_objectives_parameters():
    from soundsmith.train.runconfig import load_run_config

    run = load_run_config(VOCODER_TINY, {"objective.stft_weight": 5.0})
    assert run.objective == {"stft_weight": 5.0} and run.to_dict()["objective"] == {"stft_weight": 5.0}
    with pytest.raises(ConfigError, match=r"objective.disc_start is not a parameter of the vocoder objective.*"
                                          r"disc_start_step"):  # fmt: skip
        load_run_config(VOCODER_TINY, {"objective.disc_start": 5})
    with pytest.raises(ConfigError, match=r"objective.model is not a parameter"):
        load_run_config(VOCODER_TINY, {"objective.model": 5})


def test_init_starts_a_run_from_another_models_weights(tmp_path):
    """``--init MODEL``: the new run's first weights are MODEL's; a mismatch is refused by name; a resumed run
    reads its checkpoint and no longer needs MODEL."""
    import shutil

    import torch

    from soundsmith.models.registry import load_model
    from soundsmith.train.run import start_from
    from soundsmith.train.runconfig import load_run_config

    manifest = _manifest(tmp_path, n_good=8, bad=0)
    base = ["train.batch_size=4", "train.valid_every=0", "train.sample_every=0", "data.num_workers=0"]
    train_from_files(TINY, manifest, tmp_path / "a", overrides=[*base, "train.max_steps=3", "train.lr=1e-2"])
    source = load_model(tmp_path / "a")
    cfg = source.config
    from soundsmith.models.wavenet import WaveNet

    fresh = WaveNet(cfg)
    assert not all(torch.equal(v, source.state_dict()[k]) for k, v in fresh.state_dict().items())
    start_from(fresh, str(tmp_path / "a"))
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in fresh.state_dict().items())

    # through the run: step 1 of an LR-0 run from a/ exports a/'s weights; init is kept in config.yaml
    shutil.copytree(tmp_path / "a/model", tmp_path / "src")
    init = "init=" + str(tmp_path / "src")
    train_from_files(TINY, manifest, tmp_path / "b", overrides=[*base, "train.max_steps=1", "train.lr=1e-12", init])
    b = load_model(tmp_path / "b")
    assert all(torch.allclose(v, source.state_dict()[k], atol=1e-6) for k, v in b.state_dict().items())
    assert f"init: {tmp_path / 'src'}" in (tmp_path / "b/config.yaml").read_text()
    # resumed from its checkpoint, the run no longer reads the source
    shutil.rmtree(tmp_path / "src")
    resumed = train_from_files(None, manifest, tmp_path / "b", overrides=["train.max_steps=2"], resume=True)
    assert resumed["step"] == 2

    # a corpus with fewer labels keeps the source's vocabulary (and so its weights' meaning)
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("".join(json.dumps({**r, "labels": ["hiss"]}) + "\n" for r in rows))
    train_from_files(TINY, fewer, tmp_path / "c", overrides=[*base, "train.max_steps=1", "init=" + str(tmp_path / "a")])
    assert load_model(tmp_path / "c").config.labels == source.config.labels == ["hiss", "noise"]

    # refused: another model config, another family, no such model, a non-string
    other = WaveNet(dataclasses.replace(cfg, residual_channels=cfg.residual_channels * 2))
    with pytest.raises(ConfigError, match=r"init: .* another model config \(model.residual_channels: "):
        start_from(other, str(tmp_path / "a"))
    from soundsmith.models.vocoder import Vocoder, VocoderConfig

    with pytest.raises(ConfigError, match=r"init: .* is a WaveNet, the run trains a Vocoder"):
        start_from(Vocoder(VocoderConfig()), str(tmp_path / "a"))
    with pytest.raises(ConfigError, match=r"init: .*nowhere: not a model directory"):
        start_from(fresh, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"init: expected a model directory or shipped name, got 5"):
        load_run_config(TINY, {"init": 5})
