"""Tagger and CLAP configs nest a MelConfig (schema 2); schema-1 directories (flat mel fields) still load."""

import json

import pytest
import torch

from soundsmith.audio import MelConfig
from soundsmith.errors import ConfigError
from soundsmith.eval.embedders import model_identity
from soundsmith.models.clap import AudioTextContrastive, ClapConfig
from soundsmith.models.registry import SCHEMA_VERSION, load_model, read_model_config, save_model
from soundsmith.models.tagger import AudioTagger, TaggerConfig
from soundsmith.train.runconfig import run_config_from_dict

# not the defaults, so that a field lost in the migration would show
MEL = {
    "sample_rate": 8000,
    "n_fft": 256,
    "hop_length": 80,
    "win_length": 200,
    "n_mels": 20,
    "fmin": 20.0,
    "fmax": 3000.0,
}


def _tagger() -> AudioTagger:
    torch.manual_seed(0)
    return AudioTagger(TaggerConfig(labels=["a", "b"], channels=[4, 8], embed_dim=8, mel=MEL)).eval()


def _clap() -> AudioTextContrastive:
    torch.manual_seed(0)
    cfg = ClapConfig(
        text_encoder="hashed:32", text_dim=32, channels=[4], audio_embed_dim=8, proj_dim=8, mel=MEL
    )
    return AudioTextContrastive(cfg).eval()


def _as_schema_1(directory, family: str) -> None:
    """Rewrite a saved directory's config.json as schema 1 wrote it: mel fields flat, train.num_workers/extra."""
    path = directory / "config.json"
    meta = json.loads(path.read_text())
    config = {k: v for k, v in meta["config"].items() if k != "mel"} | MEL
    run = {
        "family": family,
        "model": config,
        "data": {"sample_rate": 8000, "clip_seconds": 1.0, "num_workers": 0},
        "train": {"max_steps": 5, "num_workers": 2, "extra": {}},
    }
    meta.update(schema_version=1, config=config, extra={"step": 5, "run": run})
    path.write_text(json.dumps(meta))


def test_mel_is_nested_and_filled_from_a_mapping():
    cfg = TaggerConfig(labels=["a"], mel={"hop_length": 320})
    assert cfg.mel == MelConfig(hop_length=320) and cfg.mel_config() is cfg.mel and cfg.sample_rate == 16000
    assert ClapConfig(mel=MEL).mel == MelConfig(**MEL)
    with pytest.raises(ConfigError, match=r"TaggerConfig.mel: unknown key\(s\) hop"):
        TaggerConfig(labels=["a"], mel={"hop": 320})
    with pytest.raises(ConfigError, match="ClapConfig.mel"):
        ClapConfig(mel=320)


@pytest.mark.parametrize("build, family", [(_tagger, "tagger"), (_clap, "clap")])
def test_schema_1_directory_loads_unchanged(tmp_path, build, family):
    model = build()
    save_model(model, tmp_path / "new")
    assert json.loads((tmp_path / "new" / "config.json").read_text())["config"]["mel"] == MEL
    save_model(model, tmp_path / "old")
    _as_schema_1(tmp_path / "old", family)

    meta = read_model_config(tmp_path / "old")
    assert meta["schema_version"] == SCHEMA_VERSION == 2
    assert meta["config"]["mel"] == MEL and "n_mels" not in meta["config"]
    old = load_model(tmp_path / "old")
    assert old.config == model.config and old.config.mel == MelConfig(**MEL)
    assert model_identity(old) == model_identity(model)  # embedding caches keyed by it stay valid

    # the training run config kept with the weights validates under today's rules
    run = run_config_from_dict(meta["extra"]["run"], where="extra.run")
    assert run.model == model.config and run.data.num_workers == 2

    mel = torch.randn(2, MEL["n_mels"], 30)
    args = (mel,) if family == "tagger" else (mel, torch.randn(2, 32))
    got, want = old(*args), model(*args)
    got, want = (got, want) if family == "clap" else ((got,), (want,))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_identity_ignores_the_regrouping_but_not_the_values():
    a = _tagger()
    b = _tagger()
    b.config = TaggerConfig(labels=["a", "b"], channels=[4, 8], embed_dim=8, mel={**MEL, "hop_length": 40})
    assert model_identity(a) != model_identity(b)
