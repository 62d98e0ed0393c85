"""``soundsmith finetune`` and the LoRA options of ``soundsmith generate`` (--lora, --lora-scale), end to end on a
tiny latent-diffusion base."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from soundsmith.audio import load_audio, read_metadata, save_audio
from soundsmith.cli.generate import parse_lora
from soundsmith.cli.main import main
from soundsmith.models.registry import load_model, save_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from contract_checks import tiny_model_dir  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny base, a folder of clips (one of them silent) and two LoRA runs made through the CLI."""
    root = tmp_path_factory.mktemp("ft_cli")
    base = tiny_model_dir("latent_diffusion", root / "base")
    data = root / "clips"
    data.mkdir()
    t = np.arange(int(0.6 * SR)) / SR
    for i in range(7):
        save_audio(
            data / f"laser_{i}.wav", (0.3 * np.sin(2 * np.pi * (500 + 70 * i) * t)).astype(np.float32), SR
        )
    save_audio(data / "empty_take.wav", np.zeros(SR, np.float32), SR)
    common = ["--base", str(base), "--steps", "4", "--batch-size", "4", "--prior-clips", "2"]
    codes = [
        main(["finetune", str(data), "--out", str(root / "a"), *common]),
        main(["finetune", str(data), "--out", str(root / "b"), *common, "--rank", "2", "--trigger", "zz"]),
    ]
    return base, data, root, codes


def test_finetune_prints_the_result_and_names_skipped_clips(trained, tmp_path, capsys, caplog):
    base, data, root, codes = trained
    assert codes == [0, 0]
    with caplog.at_level(logging.INFO, logger="soundsmith.finetune"):
        argv = ["finetune", str(data), "--out", str(tmp_path / "run"), "--base", str(base), "--steps", "2"]
        assert main([*argv, "--batch-size", "2", "--no-prior", "--caption", "a laser"]) == 0
    out = capsys.readouterr().out
    assert "trained 2 of 2 steps" in out and f"LoRA adapter written to {tmp_path / 'run' / 'model'}" in out
    assert 'try: soundsmith generate "a laser" --model' in out
    assert "empty_take.wav: silent" in caplog.text and "7 usable, 1 skipped (1 silent)" in caplog.text
    assert not (tmp_path / "run" / "prior").exists()


def test_generate_with_the_run_and_lora_scale_0_equals_the_base(trained, tmp_path, capsys):
    base, _, root, _ = trained
    gen = ["generate", "a laser", "--duration", "0.5", "--seed", "3"]
    assert main([*gen, "--model", str(base), "-o", str(tmp_path / "base.wav")]) == 0
    assert main([*gen, "--model", str(root / "a"), "-o", str(tmp_path / "one.wav")]) == 0
    assert (
        main([*gen, "--model", str(root / "a"), "--lora-scale", "0", "-o", str(tmp_path / "zero.wav")]) == 0
    )
    ref, one, zero = (load_audio(tmp_path / f"{n}.wav")[0] for n in ("base", "one", "zero"))
    np.testing.assert_array_equal(zero, ref)
    assert not np.array_equal(one, ref)
    assert str(root / "a" / "model") in read_metadata(tmp_path / "one.wav")["adapters"]


def test_generate_with_two_adapters(trained, tmp_path, capsys):
    base, _, root, _ = trained
    out = tmp_path / "two.wav"
    argv = ["generate", "a laser zz", "--duration", "0.5", "--model", str(base), "-o", str(out)]
    assert main([*argv, "--lora", str(root / "a"), "--lora", f"{root / 'b'}:0.5"]) == 0
    adapters = read_metadata(out)["adapters"]
    assert f"{root / 'a' / 'model'} x1" in adapters and f"{root / 'b' / 'model'} x0.5" in adapters
    assert parse_lora("runs/x:0.25") == ("runs/x", 0.25) and parse_lora("runs/x") == "runs/x"


def test_lora_errors_are_one_line(trained, tmp_path, capsys):
    base, _, root, _ = trained
    other = load_model(base)
    other.denoiser.inp.bias.data += 0.5
    save_model(other, tmp_path / "other")
    gen = ["generate", "a laser", "--duration", "0.5", "-o", str(tmp_path / "x.wav")]
    cases = [
        ([*gen, "--model", str(tmp_path / "other"), "--lora", str(root / "a")], "trained on base"),
        ([*gen, "--model", str(base), "--lora-scale", "0.5"], "not a LoRA fine-tune"),
        ([*gen, "--model", str(root / "a"), "--lora-scale", "2"], "from 0"),
        ([*gen, "--model", str(base), "--lora", str(tmp_path)], "no adapter.json"),
        (
            ["finetune", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--base", str(base)],
            "not found",
        ),
    ]
    for argv, expected in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
