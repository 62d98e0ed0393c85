"""GANmix pipeline: one forward pass per clip for any duration, same seed same audio, interpolation between two
prompts or two seeds (ends equal the plain calls), the WAVs + spectrogram strip, and the CLI on a saved model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from soundsmith import families
from soundsmith.audio import load_audio
from soundsmith.cli.main import main
from soundsmith.errors import ConfigError, TextError
from soundsmith.models.registry import save_model
from soundsmith.pipelines.ganmix import GANmixPipeline, save_interpolation, spectrogram_strip
from soundsmith.train.runconfig import load_run_config


def tiny_pipe(**overrides) -> GANmixPipeline:
    family = families.get("ganmix")
    cfg = dataclasses.replace(load_run_config(family.tiny_config_path()).model, **overrides)
    torch.manual_seed(0)
    model = family.contract_build(cfg)
    with torch.no_grad():  # larger weights: outputs that differ clearly between seeds and prompts
        for p in model.generator.parameters():
            p.mul_(3.0)
    return GANmixPipeline(model)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipe()


@pytest.mark.parametrize("duration", [0.01, 0.3, 0.5, 1.3])
def test_any_duration_gives_the_requested_samples(pipe, duration):
    out = pipe("a dog barks", duration=duration, seed=1, progress=False)
    assert out.audio.shape == (1, round(duration * 16000)) and np.isfinite(out.audio).all()


def test_shorter_clips_are_the_start_of_the_trained_length(pipe):
    full = pipe("a dog barks", duration=0.5, seed=2).audio
    part = pipe("a dog barks", duration=0.25, seed=2).audio
    # the same latent, cropped before decoding: equal away from the cut (near it the decoder sees less context)
    np.testing.assert_allclose(part[0, :800], full[0, :800], atol=1e-5)
    other = pipe("a dog barks", duration=0.25, seed=3).audio
    assert np.abs(other[0, :800] - full[0, :800]).max() > 1e-3


def test_seeds_candidates_and_prompts(pipe):
    a = pipe("a dog barks", duration=0.2, seed=3).audio
    np.testing.assert_array_equal(pipe("a dog barks", duration=0.2, seed=3).audio, a)
    assert not np.array_equal(pipe("a dog barks", duration=0.2, seed=4).audio, a)
    assert not np.array_equal(pipe("a bell rings", duration=0.2, seed=3).audio, a)
    many = pipe("a dog barks", duration=0.2, seed=3, num_candidates=3)
    np.testing.assert_array_equal(many.audio[0], a[0])
    np.testing.assert_array_equal(many.audio[2], pipe("a dog barks", duration=0.2, seed=5).audio[0])
    assert many.meta["family"] == "ganmix" and many.meta["candidate_seeds"] == [3, 4, 5]


def test_truncation_and_bad_requests(pipe):
    out = pipe("a dog barks", duration=0.2, seed=3, truncation=0.5)
    assert out.meta["truncation"] == 0.5
    assert not np.array_equal(out.audio, pipe("a dog barks", duration=0.2, seed=3).audio)
    with pytest.raises(ConfigError, match="truncation"):
        pipe("a dog barks", truncation=-1.0)
    with pytest.raises(TextError, match="empty"):
        pipe("", duration=0.2)
    with pytest.raises(ConfigError, match="limit"):
        pipe("a dog barks", duration=31.0)


def test_conv_generator_makes_long_clips_directly():
    pipe = tiny_pipe(generator={"arch": "conv", "noise_dim": 4, "channels": 8, "blocks": 2, "kernel_size": 3})
    out = pipe("a dog barks", duration=1.7, seed=0)
    assert out.audio.shape == (1, round(1.7 * 16000))
    # not a tiling of the 0.5-s output: the second half differs from the first
    assert not np.allclose(out.audio[0, 4000:8000], out.audio[0, 12000:16000])


def test_interpolating_prompts_ends_at_the_plain_calls(pipe):
    walk = pipe.interpolate("a dog barks", "a bell rings", 4, seed=7, duration=0.2)
    assert walk.audio.shape == (4, 3200) and walk.meta["interpolation"] == "prompts"
    np.testing.assert_allclose(walk.audio[0], pipe("a dog barks", duration=0.2, seed=7).audio[0], atol=1e-6)
    np.testing.assert_allclose(walk.audio[-1], pipe("a bell rings", duration=0.2, seed=7).audio[0], atol=1e-6)
    assert not np.allclose(walk.audio[1], walk.audio[0]) and not np.allclose(walk.audio[1], walk.audio[-1])


def test_interpolating_seeds_ends_at_the_plain_calls(pipe):
    walk = pipe.interpolate(1, 9, 3, prompt="a dog barks", duration=0.2)
    np.testing.assert_allclose(walk.audio[0], pipe("a dog barks", duration=0.2, seed=1).audio[0], atol=1e-6)
    np.testing.assert_allclose(walk.audio[-1], pipe("a dog barks", duration=0.2, seed=9).audio[0], atol=1e-6)
    with pytest.raises(ConfigError, match="needs a prompt"):
        pipe.interpolate(1, 9, 3)
    with pytest.raises(ConfigError, match="two prompts or two integer seeds"):
        pipe.interpolate("a dog barks", 9, 3)
    with pytest.raises(ConfigError, match="steps"):
        pipe.interpolate("a", "b", 1)


def test_strip_has_one_panel_per_clip(pipe):
    audio = np.zeros((3, 3200), dtype=np.float32)
    audio[1] = np.sin(2 * np.pi * 1000 * np.arange(3200) / 16000)
    strip = spectrogram_strip(audio, 16000, n_mels=32)
    width = strip.shape[1] // 3
    assert strip.shape[0] == 32 and strip.shape[1] == 3 * width
    assert strip[:, width : 2 * width - 2].max() > strip[:, : width - 2].max() + 40  # the tone, not silence


def test_cli_writes_wavs_and_a_strip(pipe, tmp_path, capsys):
    save_model(pipe.model, tmp_path / "model")
    code = main(
        ["ganmix", "interpolate", "a dog barks", "a bell rings", "--steps", "3", "--out", str(tmp_path / "o"),
         "--model", str(tmp_path / "model"), "--duration", "0.2"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in printed] == [
        "step-00.wav",
        "step-01.wav",
        "step-02.wav",
        "strip.png",
    ]
    audio, sr = load_audio(tmp_path / "o" / "step-02.wav")
    assert sr == 16000 and len(audio) == 3200
    assert (tmp_path / "o" / "strip.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["ganmix", "interpolate", "a dog", "3", "--out", str(tmp_path / "x"), "--model",
                 str(tmp_path / "model")]) == 1  # fmt: skip
    assert "two prompts or two integer seeds" in capsys.readouterr().err


def test_save_interpolation_metadata(pipe, tmp_path):
    walk = pipe.interpolate(1, 2, 2, prompt="a dog barks", duration=0.1)
    paths = save_interpolation(walk, tmp_path)
    assert [p.name for p in paths] == ["step-00.wav", "step-01.wav", "strip.png"]
