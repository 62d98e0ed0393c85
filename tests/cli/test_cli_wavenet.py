"""``soundsmith wavenet``: tensorflow-wavenet flags in both spellings, with and without categories, on tiny models.

The behaviour lives in soundsmith.train.wavenet_compat / soundsmith.pipelines.wavenet; these tests drive it
through the command line (--flag=value and --flag value) and check the library function directly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from soundsmith.audio import load_audio
from soundsmith.cli.main import main
from soundsmith.errors import ConfigError
from soundsmith.train.wavenet_compat import TfWaveNetTraining, wavenet_params_to_model

TINY_PARAMS = {"dilations": [1, 2, 4], "residual_channels": 4, "dilation_channels": 4, "skip_channels": 8}


@pytest.fixture
def plain_wavs(tmp_path):
    """A plain folder of WAVs: no speaker sub-folders, so no categories."""
    folder = tmp_path / "wavs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(folder / f"clip{i}.wav", 0.3 * rng.standard_normal(1600).astype(np.float32), 16000)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(TINY_PARAMS))
    return folder, params


def test_plain_folder_trains_unconditional_and_generates(plain_wavs, tmp_path, capsys):
    folder, params = plain_wavs
    logdir = tmp_path / "logdir"
    train = [
        "wavenet",
        "train",
        f"--data_dir={folder}",
        f"--logdir={logdir}",
        f"--wavenet_params={params}",
        "--sample_size=400",
        "--batch_size=2",
        "--num_steps=2",
        "--checkpoint_every=2",
    ]
    assert main(train) == 0, capsys.readouterr().err
    config = json.loads((logdir / "model" / "config.json").read_text())["config"]
    assert config["gc_cardinality"] == 0 and config["text_dim"] == 0 and config["stacks"] == 1

    out = tmp_path / "gen.wav"
    argv = ["wavenet", "generate", str(logdir), "--samples=120", f"--wav_out_path={out}", "--seed=3"]
    assert main([*argv, "--save_every=50", "--fast_generation=false"]) == 0
    slow, rate = load_audio(out)
    assert rate == 16000 and slow.shape == (120,) and np.isfinite(slow).all()
    assert main(argv) == 0  # fast generation draws the same samples
    fast, _ = load_audio(out)
    assert np.abs(fast - slow).max() < 1e-3
    capsys.readouterr()
    assert main([*argv, "--gc_id=0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "gc_id" in err and err.count("\n") == 1


def test_categories_with_gc_channels_space_spelling(tmp_path, capsys):
    data = tmp_path / "vctk"
    rng = np.random.default_rng(1)
    for speaker in ("p225", "p226"):
        (data / speaker).mkdir(parents=True)
        for i in range(2):
            sf.write(data / speaker / f"{i}.wav", 0.3 * rng.standard_normal(1600).astype(np.float32), 16000)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(TINY_PARAMS))
    logdir = tmp_path / "logdir"
    train = [
        "wavenet",
        "train",
        "--data_dir",
        str(data),
        "--logdir",
        str(logdir),
        "--wavenet_params",
        str(params),
    ]
    train += ["--sample_size", "400", "--num_steps", "2", "--checkpoint_every", "2", "--gc_channels", "4"]
    assert main(train) == 0
    config = json.loads((logdir / "model" / "config.json").read_text())["config"]
    assert (
        config["gc_cardinality"] == 2 and config["gc_channels"] == 4 and config["labels"] == ["p225", "p226"]
    )
    out = tmp_path / "gen.wav"
    gen = ["wavenet", "generate", str(logdir), "--samples", "100", "--wav_out_path", str(out), "--seed", "7"]
    assert main([*gen, "--gc_id", "p226", "--save_every", "30"]) == 0
    by_name, _ = load_audio(out)
    assert main([*gen, "--gc_id", "1"]) == 0
    by_id, _ = load_audio(out)
    np.testing.assert_array_equal(by_name, by_id)  # a label name and its id are the same category
    assert main([*gen, "--gc_id", "0"]) == 0
    other, _ = load_audio(out)
    assert not np.array_equal(other, by_id)
    capsys.readouterr()
    assert main([*gen, "--gc_id", "p999"]) == 1
    assert "p999" in capsys.readouterr().err


def test_settings_map_to_a_run_config_without_the_cli():
    settings = TfWaveNetTraining(data_dir="x", wavenet_params=TINY_PARAMS, sample_size=800, num_steps=7)
    data = settings.run_config_dict()
    assert data["model"]["gc_channels"] == 0 and data["model"]["gc_cardinality"] == 0
    assert data["model"]["layers_per_stack"] == 3 and data["model"]["stacks"] == 1
    assert data["data"]["clip_seconds"] == pytest.approx(0.05) and data["train"]["max_steps"] == 7
    assert TfWaveNetTraining(data_dir="x", gc_channels=8).run_config_dict()["model"]["gc_channels"] == 8
    with pytest.raises(ConfigError, match="gc_channels"):
        TfWaveNetTraining(data_dir="x", gc_channels=-1).run_config_dict()
    with pytest.raises(ConfigError, match="different directories"):
        TfWaveNetTraining(data_dir="x", logdir="a", restore_from="b").run_directory()
    with pytest.raises(ConfigError, match="doubling stacks"):
        wavenet_params_to_model({"dilations": [1, 2, 8]})
    with pytest.raises(ConfigError, match="unknown key"):
        wavenet_params_to_model({"dilation": [1, 2]})
