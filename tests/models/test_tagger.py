import pytest
import torch

from soundsmith.errors import ConfigError
from soundsmith.models.registry import load_model, save_model
from soundsmith.models.tagger import AudioTagger, TaggerConfig
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives.tagger import OBJECTIVE, TaggerObjective, multi_hot
from soundsmith.train.runconfig import load_run_config

LABELS = ["dog", "rain", "piano"]


def tiny(**kw) -> AudioTagger:
    torch.manual_seed(0)
    return AudioTagger(TaggerConfig(labels=LABELS, channels=[4, 8], embed_dim=16, dropout=0.0, **kw)).eval()


def test_shapes_and_posteriors():
    model = tiny()
    mel = torch.randn(3, 64, 51)
    assert model(mel).shape == (3, 3)
    assert model.embed(mel).shape == (3, 16)
    p = model.posteriors(mel, "softmax")
    torch.testing.assert_close(p.sum(-1), torch.ones(3))
    assert ((model.posteriors(mel) > 0) & (model.posteriors(mel) < 1)).all()
    emb, logits = model.embed_and_logits(mel)
    torch.testing.assert_close(logits, model(mel))
    assert model(torch.randn(1, 64, 3)).shape == (1, 3)  # very short clips still work


def test_batch_equals_single_items():
    model = tiny()
    mel = torch.randn(4, 64, 40)
    full = model(mel)
    singles = torch.cat([model(mel[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(full, singles, rtol=1e-4, atol=1e-5)


def test_config_validation():
    with pytest.raises(ConfigError, match="labels"):
        TaggerConfig(labels=[])
    with pytest.raises(ConfigError, match="duplicates"):
        TaggerConfig(labels=["a", "a"])


def test_save_load_roundtrip(tmp_path):
    model = tiny()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, AudioTagger) and loaded.config == model.config
    mel = torch.randn(2, 64, 30)
    torch.testing.assert_close(loaded(mel), model(mel))


def test_presets_build():
    for name in ("tiny", "base"):
        rc = load_run_config(f"configs/tagger/{name}.yaml")
        assert rc.family == "tagger" and AudioTagger(rc.model).num_classes == len(rc.model.labels)


def test_objective_lowers_loss_on_fixed_batch():
    assert OBJECTIVE is TaggerObjective
    torch.manual_seed(0)
    model = AudioTagger(TaggerConfig(labels=LABELS, channels=[4, 8], embed_dim=16, dropout=0.0))
    obj = TaggerObjective(model)
    g = torch.Generator().manual_seed(0)
    batch = {
        "audio": 0.1 * torch.randn(4, 8000, generator=g),
        "labels": [["dog"], ["rain", "piano"], [], ["x"]],
    }
    batch = obj.prepare_batch(batch)
    assert batch["targets"].tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0], [0, 0, 0]]
    (opt,) = obj.configure_optimizers(TrainConfig(lr=1e-2))
    first = None
    for _ in range(15):
        loss = obj.losses(batch, 0)["loss"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(obj.losses(batch, 0)["loss"].detach()) < 0.7 * first
    metrics = obj.validate(batch)
    assert set(metrics) == {"loss", "top1_precision", "f1"}


def test_multi_hot_ignores_unknown():
    assert multi_hot([["b", "zzz"]], ["a", "b"]).tolist() == [[0.0, 1.0]]
