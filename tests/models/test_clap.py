import pytest
import torch

from soundsmith.errors import ConfigError
from soundsmith.models.clap import AudioTextContrastive, ClapConfig
from soundsmith.models.registry import load_model, save_model
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives.clap import OBJECTIVE, ClapObjective, clap_loss, contrastive_targets
from soundsmith.train.runconfig import load_run_config


def tiny() -> AudioTextContrastive:
    torch.manual_seed(0)
    cfg = ClapConfig(
        text_encoder="hashed:32", text_dim=32, channels=[4, 8], audio_embed_dim=16, proj_dim=8, dropout=0.0
    )
    return AudioTextContrastive(cfg).eval()


def test_shapes_normalised_and_temperature():
    model = tiny()
    a, t, scale = model(torch.randn(3, 64, 40), torch.randn(3, 32))
    assert a.shape == t.shape == (3, 8)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(3))
    assert float(scale.detach()) == pytest.approx(1 / 0.07, rel=1e-5)
    with pytest.raises(ValueError, match="text_dim"):
        model.encode_text(torch.randn(2, 31))
    with pytest.raises(ConfigError):
        ClapConfig(init_temperature=2.0)


def test_loss_reference_and_symmetry():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=-1)
    scale = torch.tensor(10.0)
    logits = scale * a @ t.T
    ref = 0.5 * (
        -torch.log_softmax(logits, 1).diagonal().mean() - torch.log_softmax(logits, 0).diagonal().mean()
    )
    torch.testing.assert_close(clap_loss(a, t, scale), ref)
    torch.testing.assert_close(clap_loss(a, t, scale), clap_loss(t, a, scale))
    # perfect alignment with a high scale -> loss near 0
    assert float(clap_loss(a, a, torch.tensor(100.0))) < float(clap_loss(a, t, torch.tensor(100.0)))


def test_duplicate_captions_are_shared_positives():
    targets = contrastive_targets(["a dog", "rain", "a dog"])
    assert targets[0].tolist() == [0.5, 0.0, 0.5] and targets[1].tolist() == [0.0, 1.0, 0.0]


def test_save_load_roundtrip(tmp_path):
    model = tiny()
    save_model(model, tmp_path / "clap")
    loaded = load_model(tmp_path / "clap")
    mel, txt = torch.randn(2, 64, 30), torch.randn(2, 32)
    for x, y in zip(loaded(mel, txt), model(mel, txt)):
        torch.testing.assert_close(x, y)


def test_presets_build():
    for name in ("tiny", "base"):
        rc = load_run_config(f"configs/clap/{name}.yaml")
        assert rc.family == "clap" and rc.model.text_dim == 384
        AudioTextContrastive(rc.model)


def test_objective_lowers_loss_on_fixed_batch(tiny_text_encoder):
    assert OBJECTIVE is ClapObjective
    model = tiny().train()
    obj = ClapObjective(model, text_encoder=tiny_text_encoder)
    g = torch.Generator().manual_seed(0)
    batch = {
        "audio": 0.1 * torch.randn(4, 8000, generator=g),
        "caption": ["a dog barks", "", "rain falls", "a piano"],
        "labels": [["dog"], ["wind"], ["rain"], ["piano"]],
    }
    batch = obj.prepare_batch(batch)
    assert batch["text_pooled"].shape == (4, 32)
    assert not any(p is obj._text[0] for p in obj.modules())  # text encoder is not part of the weights
    (opt,) = obj.configure_optimizers(TrainConfig(lr=1e-2))
    first = float(obj.losses(batch, 0)["loss"].detach())
    for _ in range(15):
        loss = obj.losses(batch, 0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(obj.losses(batch, 0)["loss"].detach()) < 0.7 * first
    assert set(obj.validate(batch)) == {"loss", "recall_at_1"}
