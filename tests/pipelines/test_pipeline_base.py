"""The pipeline base: request checks, seeds, several prompts, provenance, the result type, the one loader."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import soundsmith
from soundsmith.audio import read_metadata
from soundsmith.errors import ConfigError, ModelError, TextError
from soundsmith.models.registry import save_model, text_encoder
from soundsmith.models.wavenet import WaveNet, WaveNetConfig
from soundsmith.pipelines import MAX_CANDIDATES, MAX_DURATION_S, GeneratedAudio, load_pipeline, loader
from soundsmith.pipelines.base import state_sha256
from soundsmith.pipelines.wavenet import WaveNetPipeline


def tiny_model(**kw) -> WaveNet:
    cfg = dict(
        residual_channels=4,
        dilation_channels=4,
        skip_channels=8,
        stacks=1,
        layers_per_stack=3,
        sample_rate=8000,
    )
    cfg.update(kw)
    torch.manual_seed(0)
    return WaveNet(WaveNetConfig(**cfg))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prompt": 3}, TextError, "prompt must be text"),
        ({"prompt": "   "}, TextError, "white space"),
        ({"prompt": ["ok", None]}, TextError, "prompt must be text"),
        ({"prompt": []}, TextError, "empty"),
        ({"duration": 0}, ConfigError, "duration=0"),
        ({"duration": -1.0}, ConfigError, "duration"),
        ({"duration": math.nan}, ConfigError, "duration"),
        ({"duration": True}, ConfigError, "duration"),
        ({"duration": MAX_DURATION_S + 1}, ConfigError, "limit"),
        ({"num_candidates": 0}, ConfigError, "num_candidates"),
        ({"num_candidates": MAX_CANDIDATES + 1}, ConfigError, "num_candidates"),
        ({"num_candidates": 2.0}, ConfigError, "num_candidates"),
        ({"seed": 1.5}, ConfigError, "seed"),
    ],
)
def test_bad_requests_raise_before_any_work(kwargs, error, match):
    pipe = WaveNetPipeline(tiny_model())
    args = {"prompt": "", "duration": 0.01, "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        pipe(**args)


def test_list_of_prompts_gives_one_result_per_prompt_equal_to_single_calls():
    pipe = WaveNetPipeline(tiny_model(text_encoder="hashed:8", text_dim=8))
    many = pipe(["a bell", "rain"], duration=0.01, seed=2, num_candidates=2, progress=False)
    assert [r.prompt for r in many] == ["a bell", "rain"]
    for result in many:
        alone = pipe(result.prompt, duration=0.01, seed=2, num_candidates=2, progress=False)
        assert isinstance(alone, GeneratedAudio) and alone.audio.shape == (2, 80)
        np.testing.assert_array_equal(result.audio, alone.audio)
    assert not np.array_equal(many[0].audio, many[1].audio)


def test_default_duration_and_provenance():
    model = tiny_model()
    pipe = WaveNetPipeline(model)
    out = pipe("", seed=1, steps=5, guidance=2.0, progress=False)
    assert out.audio.shape == (1, int(pipe.default_duration * 8000))
    assert out.meta["steps"] == 5 and out.meta["guidance"] == 2.0 and out.meta["family"] == "wavenet"
    assert out.meta["soundsmith_version"] == soundsmith.__version__
    assert out.meta["weights_sha256"] == state_sha256(model)
    assert "steps" not in pipe("", duration=0.01, progress=False).meta
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert state_sha256(model) != out.meta["weights_sha256"]


def test_save_names_candidates_and_records_each_seed(tmp_path):
    result = GeneratedAudio(np.zeros((2, 80), np.float32), 8000, "a bell", 10, {"model": "m"})
    paths = result.save(tmp_path / "x.wav")
    assert [p.name for p in paths] == ["x-0.wav", "x-1.wav"]
    assert [read_metadata(p)["seed"] for p in paths] == ["10", "11"]
    assert read_metadata(paths[1])["model"] == "m"
    assert [p.name for p in result.save(tmp_path / "y.wav", index=1)] == ["y.wav"]


def test_the_loader_reads_config_json_once(tmp_path, monkeypatch):
    save_model(tiny_model(text_encoder="hashed:8", text_dim=8), tmp_path / "m")
    calls = []
    real = loader.read_model_config
    monkeypatch.setattr(loader, "read_model_config", lambda d: calls.append(d) or real(d))
    pipe = soundsmith.load(tmp_path / "m")
    assert len(calls) == 1 and isinstance(pipe, WaveNetPipeline)
    assert pipe.text_encoder is text_encoder("hashed:8")  # the shared frozen encoder, built once
    assert pipe.source.name == str(tmp_path / "m") and pipe.source.directory == str(tmp_path / "m")
    again = load_pipeline(tmp_path / "m")
    np.testing.assert_array_equal(
        again("a bell", duration=0.01, progress=False).audio,
        pipe("a bell", duration=0.01, progress=False).audio,
    )


def test_evaluators_load_bare_and_have_no_pipeline(tmp_path):
    from soundsmith.models.tagger import AudioTagger, TaggerConfig

    save_model(AudioTagger(TaggerConfig(labels=["a", "b"])), tmp_path / "t")
    assert type(soundsmith.load(tmp_path / "t")) is AudioTagger
    with pytest.raises(ModelError, match="does not generate audio; families that generate: .*wavenet"):
        load_pipeline(tmp_path / "t")


def test_pipeline_and_objective_share_one_frozen_text_encoder():
    from soundsmith.models.clap import AudioTextContrastive, ClapConfig
    from soundsmith.train.objectives.clap import ClapObjective
    from soundsmith.train.objectives.wavenet import WaveNetObjective

    model = tiny_model(text_encoder="hashed:8", text_dim=8)
    shared = text_encoder("hashed:8")
    assert WaveNetPipeline(model).text_encoder is shared
    clap = AudioTextContrastive(ClapConfig(text_encoder="hashed:8", text_dim=8))
    assert ClapObjective(clap).text_encoder() is shared
    assert WaveNetObjective(model).text_encoder is shared
