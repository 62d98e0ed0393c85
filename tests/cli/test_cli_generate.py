"""``soundsmith generate`` and ``soundsmith models list``: through the family declarations, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from soundsmith import families, pipelines
from soundsmith.audio import load_audio, read_metadata
from soundsmith.cli import generate as generate_cmd
from soundsmith.cli.main import main
from soundsmith.models.registry import save_model, shipped_models
from soundsmith.models.wavenet import WaveNet, WaveNetConfig


def _tiny_wavenet(directory):
    torch.manual_seed(0)
    cfg = WaveNetConfig(
        residual_channels=4, dilation_channels=4, skip_channels=8, stacks=1, layers_per_stack=3
    )
    return save_model(WaveNet(cfg), directory)


def test_models_list_prints_declared_families_and_shipped_models(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name, family in families.all_families().items():
        assert f"{name}" in out and family.kind in out
    for name in shipped_models():
        assert name in out.split("shipped models:")[1]


def test_model_default_is_a_one_line_error_naming_the_shipped_models(capsys):
    assert main(["generate", "a bell"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "default" in err
    for name in shipped_models():
        assert name in err


def test_evaluator_model_cannot_generate(tmp_path, capsys):
    from soundsmith.models.tagger import AudioTagger, TaggerConfig

    save_model(AudioTagger(TaggerConfig(labels=["a", "b"])), tmp_path / "tagger")
    assert main(["generate", "a bell", "--model", str(tmp_path / "tagger")]) == 1
    err = capsys.readouterr().err
    assert "does not generate audio" in err and "wavenet" in err


def test_generate_writes_candidates_with_provenance(tmp_path, capsys):
    model = _tiny_wavenet(tmp_path / "wn")
    out = tmp_path / "gen.wav"
    argv = ["generate", "", "--model", str(model), "--out", str(out), "--duration", "0.01", "--seed", "4"]
    assert main([*argv, "--num-candidates", "2", "--temperature", "0.9"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "gen-0.wav"), str(tmp_path / "gen-1.wav")]
    second, sr = load_audio(tmp_path / "gen-1.wav")
    meta = read_metadata(tmp_path / "gen-1.wav")
    assert sr == 16000 and second.shape == (160,)
    assert meta["seed"] == "5" and meta["model"] == str(model) and meta["family"] == "wavenet"
    assert len(meta["weights_sha256"]) == 64 and meta["temperature"] == "0.9"
    assert main([*argv[:-1], "5", "--temperature", "0.9"]) == 0  # candidate 1 of seed 4 == seed 5 alone
    alone, _ = load_audio(out)
    np.testing.assert_array_equal(alone, second)


def test_duration_help_tells_the_real_default_and_limit():
    assert generate_cmd.DEFAULT_DURATION_S == pipelines.DEFAULT_DURATION_S
    assert generate_cmd.MAX_DURATION_S == pipelines.MAX_DURATION_S
    r = subprocess.run(
        [sys.executable, "-m", "soundsmith", "generate", "--help"], capture_output=True, text=True, check=True
    )
    help_text = " ".join(r.stdout.split())
    assert f"default: {pipelines.DEFAULT_DURATION_S:g}" in help_text
    assert f"at most {pipelines.MAX_DURATION_S:g}" in help_text
