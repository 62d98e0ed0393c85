"""The command line end to end: synth -> check -> train -> resume -> generate, exit codes and error lines."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import soundsmith
from soundsmith.audio import load_audio, read_metadata
from soundsmith.cli.main import main

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "wavenet" / "tiny.yaml")
FAST = ["--set", "train.max_steps=4", "--set", "train.checkpoint_every=2", "--set", "train.valid_every=2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    assert (
        main(["data", "synth", "--out", str(out), "--clips", "24", "--seed", "3", "--families", "events"])
        == 0
    )
    return out / "manifest.jsonl"


def test_help_lists_commands():
    r = subprocess.run([sys.executable, "-m", "soundsmith", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ("data", "train", "generate", "evaluate", "models", "wavenet", "serve"):
        assert cmd in r.stdout
    r = subprocess.run([sys.executable, "-m", "soundsmith", "train"], capture_output=True, text=True)
    assert r.returncode == 2 and "--data" in r.stderr


def test_check_and_bad_rows(corpus, tmp_path, capsys):
    assert main(["data", "check", str(corpus)]) == 0
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    bad = tmp_path / "bad.jsonl"
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "ok.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    (tmp_path / "audio" / "broken.wav").write_bytes(b"RIFF....not audio")
    ok = {**rows[0], "audio": "audio/ok.wav", "duration": 0.1}
    broken = {**rows[0], "audio": "audio/broken.wav", "duration": 0.1}
    missing = {**rows[0], "audio": "audio/missing.wav", "duration": 0.1}
    bad.write_text("\n".join(json.dumps(r) for r in (ok, broken, missing)) + "\n")
    capsys.readouterr()
    assert main(["data", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "broken.wav" in out and "missing.wav" in out and "ok.wav" not in out


def test_data_shift(corpus, tmp_path, capsys):
    out = tmp_path / "shifted"
    assert main(["data", "shift", str(corpus), "--out", str(out), "--with-source", "--every-shift"]) == 0
    assert "manifest.jsonl" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    source = corpus.read_text().splitlines()
    shifted = [r for r in rows if "shift_semitones" in r["meta"]]
    assert len(rows) == len(source) + len(shifted) and shifted  # the source's rows, then the shifted ones
    assert all((out / r["audio"]).is_file() for r in rows)
    assert main(["data", "shift", str(corpus), "--out", str(out), "--semitones", "up"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--semitones 'up'" in err and "Traceback" not in err


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.jsonl" in err and "Traceback" not in err
    assert main(["generate", "a bell", "--model", str(tmp_path / "no_model")]) == 1
    assert "no_model" in capsys.readouterr().err
    with pytest.raises(soundsmith.SoundsmithError):
        main(["--debug", "data", "check", str(tmp_path / "nope.jsonl")])


def test_train_resume_generate(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--config", TINY, "--data", str(corpus), "--out", str(run), *FAST]
    args += ["--set", "model.text_encoder=hashed:16", "--set", "model.text_dim=16"]
    assert main([*args, "--max-steps", "2"]) == 0
    assert (run / "model" / "config.json").is_file() and (run / "config.yaml").is_file()
    # Starting again on the same directory without --resume refuses to mix runs.
    assert main(args) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--data", str(corpus), "--out", str(run), "--resume", "--max-steps", "4"]) == 0
    assert "step=4" in capsys.readouterr().out
    # --init: a new run from this one's weights; a model of another config is refused in one line
    assert main([*args[:6], str(tmp_path / "from_run"), *args[7:], "--max-steps", "1", "--init", str(run)]) == 0
    assert f"init: {run}" in (tmp_path / "from_run" / "config.yaml").read_text()
    other = [*args[:6], str(tmp_path / "other"), *args[7:], "--set", "model.residual_channels=7"]
    assert main([*other, "--max-steps", "1", "--init", str(run)]) == 1
    err = capsys.readouterr().err
    assert "another model config (model.residual_channels: " in err and "Traceback" not in err

    out = tmp_path / "gen.wav"
    assert main(["generate", "two beeps", "--model", str(run), "--out", str(out), "--duration", "0.05"]) == 0
    audio, sr = load_audio(out)
    assert sr == 16000 and audio.shape == (800,) and np.isfinite(audio).all()
    assert read_metadata(out)["prompt"] == "two beeps"

    pipe = soundsmith.load(run)
    a = pipe("two beeps", duration=0.02, seed=5, progress=False).audio
    b = pipe("two beeps", duration=0.02, seed=5, progress=False).audio
    np.testing.assert_array_equal(a, b)
    assert main(["generate", "two beeps", "--model", str(run), "--duration", "-1"]) == 1
    assert main(["generate", "   ", "--model", str(run)]) == 1


def test_wavenet_compat_front_end(tmp_path, capsys):
    data = tmp_path / "wavs"
    rng = np.random.default_rng(0)
    for speaker in ("p225", "p226"):
        (data / speaker).mkdir(parents=True)
        for i in range(3):
            sf.write(data / speaker / f"{i}.wav", 0.3 * rng.standard_normal(1600).astype(np.float32), 16000)
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps(
            {
                "dilations": [1, 2, 4, 1, 2, 4],
                "residual_channels": 4,
                "dilation_channels": 4,
                "skip_channels": 8,
            }
        )
    )
    logdir = tmp_path / "logdir"
    base = [
        "wavenet",
        "train",
        "--data_dir",
        str(data),
        "--wavenet_params",
        str(params),
        "--sample_size",
        "400",
        "--batch_size",
        "2",
        "--checkpoint_every",
        "2",
        "--gc_channels",
        "4",
    ]
    assert main([*base, "--logdir", str(logdir), "--num_steps", "2"]) == 0
    assert main([*base, "--restore_from", str(logdir), "--num_steps", "3"]) == 0
    out = tmp_path / "gen.wav"
    argv = [
        "wavenet",
        "generate",
        str(logdir),
        "--samples",
        "300",
        "--wav_out_path",
        str(out),
        "--gc_id",
        "1",
        "--gc_channels",
        "4",
        "--gc_cardinality",
        "2",
        "--seed",
        "7",
    ]
    assert main(argv) == 0
    fast, _ = load_audio(out)
    assert fast.shape == (300,)
    slow_out = tmp_path / "slow.wav"
    assert main([*argv[:6], str(slow_out), *argv[7:], "--fast_generation", "false"]) == 0
    slow, _ = load_audio(slow_out)
    assert np.abs(fast - slow).max() < 1e-3  # fast and naive draw the same samples
    capsys.readouterr()
    assert main([*argv, "--gc_cardinality", "5"]) == 1
    assert "gc_cardinality" in capsys.readouterr().err
