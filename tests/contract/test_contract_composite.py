"""Composite model directories: named components saved in sub-folders, shipped models and text encoders by
reference, frozen parts built once per process and kept out of optimizers and checkpoints."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from contract_checks import check_all
from torch import nn

from soundsmith import families
from soundsmith.errors import ModelError
from soundsmith.models.composite import CompositeModel
from soundsmith.models.registry import (
    SHIPPED_ENV,
    ShippedRef,
    TextEncoderSpec,
    frozen_component,
    load_model,
    save_model,
    text_encoder,
)
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives import Objective


@dataclass
class PartConfig:
    dim: int = 8


class Part(nn.Module):
    """``x [B, dim] -> [B, dim]``: a stand-in for a VAE, vocoder or denoiser."""

    def __init__(self, config: PartConfig) -> None:
        super().__init__()
        self.config = config
        self.layer = nn.Linear(config.dim, config.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.layer(x))


@dataclass
class LatentConfig:
    dim: int = 8
    text_encoder: str = "hashed:8"


class Latent(CompositeModel):
    """text -> (frozen text encoder) -> denoiser (trainable) -> vae (frozen, shipped) -> own gain."""

    def __init__(self, config: LatentConfig, components) -> None:
        super().__init__(config, components)
        self.gain = nn.Parameter(torch.tensor(1.5))

    def forward(self, prompts: list[str]) -> torch.Tensor:
        pooled = self.part("text_encoder").encode(prompts).pooled  # [B, dim]
        return self.gain * self.part("vae")(self.part("denoiser")(pooled))  # [B, dim]


class LatentObjective(Objective):
    def losses(self, batch, opt_index):
        return {"loss": torch.mean((self.model(batch["caption"]) - 0.5) ** 2)}


def _composite_for(config: LatentConfig) -> Latent:
    components = {
        "text_encoder": TextEncoderSpec(config.text_encoder),
        "vae": ShippedRef("tiny_vae"),
        "denoiser": Part(PartConfig(dim=config.dim)),
    }
    return Latent(config, components)


@pytest.fixture
def composite_families(tmp_path, monkeypatch):
    preset = tmp_path / "latent_tiny.yaml"
    preset.write_text(
        "family: latent\nmodel: {dim: 8, text_encoder: 'hashed:8'}\ndata: {sample_rate: 8000, clip_seconds: 0.01}\n"
    )
    families.register(families.Family(name="part", config=PartConfig, model=Part, kind="autoencoder"))
    families.register(
        families.Family(
            name="latent",
            config=LatentConfig,
            model=Latent,
            objective=LatentObjective,
            kind="autoencoder",
            contract_forward=lambda model, b: model(b["caption"]),
            contract_shape=lambda cfg, B, T: (B, cfg.dim),
            contract_build=_composite_for,
            tiny_config=str(preset),
        )
    )
    shipped = tmp_path / "shipped"
    torch.manual_seed(1)
    save_model(Part(PartConfig()), shipped / "tiny_vae")
    monkeypatch.setenv(SHIPPED_ENV, str(shipped))
    yield
    families.unregister("part")
    families.unregister("latent")


def _composite() -> Latent:
    torch.manual_seed(2)
    return _composite_for(LatentConfig()).eval()


def test_a_composite_family_passes_the_contract_checks(composite_families, tmp_path):
    check_all(families.get("latent"), tmp_path)


def test_composite_save_load_is_exact(composite_families, tmp_path):
    model = _composite()
    with torch.no_grad():
        model.gain.fill_(0.7)
    save_model(model, tmp_path / "latent", extra={"note": "x"})
    meta = json.loads((tmp_path / "latent" / "config.json").read_text())
    assert meta["components"] == {
        "text_encoder": {"text_encoder": "hashed:8"},
        "vae": {"shipped": "tiny_vae"},
        "denoiser": {"path": "denoiser"},
    }
    assert (tmp_path / "latent" / "denoiser" / "model.safetensors").is_file()
    assert not (tmp_path / "latent" / "vae").exists()  # the shipped VAE is referenced, not copied
    loaded = load_model(tmp_path / "latent")
    assert type(loaded) is Latent and loaded.config == model.config
    assert loaded.component_refs()["vae"] == ShippedRef("tiny_vae")
    prompts = ["a bell", "rain on a roof"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(prompts), model(prompts), rtol=0, atol=0)
        # every part counts: another shipped VAE changes the output
        other = Latent(LatentConfig(), {**loaded.component_refs(), "vae": Part(PartConfig())}).eval()
        other.load_state_dict(loaded.state_dict(), strict=False)
        assert not torch.equal(other(prompts), loaded(prompts))


def test_the_weights_hash_covers_trainable_parts(composite_families, tmp_path):
    """Provenance: a retrained ``path`` component changes the model's hash; a plain directory's hash is its
    weights file's SHA-256."""
    import hashlib

    from soundsmith.models.registry import weights_sha256

    model = _composite()
    save_model(model, tmp_path / "a")
    part = tmp_path / "a" / "denoiser"
    assert weights_sha256(part) == hashlib.sha256((part / "model.safetensors").read_bytes()).hexdigest()
    before = weights_sha256(tmp_path / "a")
    assert before != hashlib.sha256((tmp_path / "a" / "model.safetensors").read_bytes()).hexdigest()
    with torch.no_grad():
        next(model.part("denoiser").parameters()).add_(0.01)  # the part alone changes
    save_model(model, tmp_path / "b")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()
    assert weights_sha256(tmp_path / "b") != before
    assert weights_sha256(tmp_path / "a") == before  # and it is a pure function of the files


def test_frozen_parts_are_shared_and_never_trained_or_checkpointed(composite_families, tmp_path):
    model = _composite()
    vae = frozen_component(ShippedRef("tiny_vae"))
    assert model.part("vae") is vae and _composite().part("vae") is vae  # built once per process
    assert model.part("text_encoder") is text_encoder("hashed:8")
    assert not any(p.requires_grad for p in vae.parameters())
    own = {"gain", "components.denoiser.layer.weight", "components.denoiser.layer.bias"}
    assert set(model.state_dict()) == own  # what the EMA and training checkpoints hold
    objective = Objective(model)
    (opt,) = objective.configure_optimizers(TrainConfig())
    optimized = {id(p) for g in opt.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in model.parameters()}
    assert not optimized & {id(p) for p in vae.parameters()}


def test_bad_component_entries_are_one_line_errors(composite_families, tmp_path):
    save_model(_composite(), tmp_path / "latent")
    path = tmp_path / "latent" / "config.json"
    meta = json.loads(path.read_text())
    meta["components"]["vae"] = {"weights": "../elsewhere"}
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="component 'vae'.*expected one of"):
        load_model(tmp_path / "latent")
    meta["components"]["vae"] = {"shipped": "no_such_model"}
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="no_such_model.*shipped models: tiny_vae"):
        load_model(tmp_path / "latent").part("vae")
    with pytest.raises(ModelError, match="Python identifier"):
        Latent(LatentConfig(), {"../x": Part(PartConfig())})
