"""The latent-diffusion denoiser (shapes, any length, text masking, caption dropping, bad input) and the composite
(shipped parts by reference, exact save/load, latent length following the duration, parts that do not fit)."""

import json

import pytest
import torch

from soundsmith.config import dataclass_from_dict
from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.latent_diffusion import (
    LatentDenoiser,
    LatentDenoiserConfig,
    LatentDiffusion,
    LatentDiffusionConfig,
    rotary,
)
from soundsmith.models.registry import SHIPPED_ENV, ShippedRef, load_model, save_model
from soundsmith.models.vae import MelVAE, VAEConfig
from soundsmith.models.vocoder import Vocoder, VocoderConfig


def _model(seed: int = 0, **kw) -> LatentDenoiser:
    torch.manual_seed(seed)
    cfg = LatentDenoiserConfig(
        latent_channels=4,
        latent_bins=8,
        d_model=32,
        layers=2,
        heads=2,
        text_dim=16,
        text_encoder="hashed:16",
        **kw,
    )
    model = LatentDenoiser(cfg).eval()
    with (
        torch.no_grad()
    ):  # the output layers start at zero; give every weight a value so outputs depend on inputs
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def _inputs(B: int = 3, T: int = 11, L: int = 5):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, 4, 8, T, generator=g)
    t = torch.rand(B, generator=g)
    tokens = torch.randn(B, L, 16, generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    if B > 1:
        mask[1, 2:] = False
    pooled = torch.randn(B, 16, generator=g)
    return x, t, tokens, mask, pooled


def test_untrained_model_predicts_zero():
    torch.manual_seed(0)
    model = LatentDenoiser(
        LatentDenoiserConfig(latent_channels=4, latent_bins=8, d_model=32, layers=1, heads=2, text_dim=16)
    )
    out = model(*_inputs())
    assert out.shape == (3, 4, 8, 11)
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("T", [1, 7, 40])
def test_shape_any_length_and_batch_equals_singles(T):
    model = _model()
    x, t, tokens, mask, pooled = _inputs(T=T)
    with torch.no_grad():
        out = model(x, t, tokens, mask, pooled)
        singles = torch.cat(
            [
                model(x[i : i + 1], t[i : i + 1], tokens[i : i + 1], mask[i : i + 1], pooled[i : i + 1])
                for i in range(3)
            ]
        )
    assert out.shape == x.shape
    torch.testing.assert_close(out, singles, rtol=1e-4, atol=1e-5)


def test_padded_text_tokens_are_ignored_and_real_ones_matter():
    model = _model()
    x, t, tokens, mask, pooled = _inputs()
    with torch.no_grad():
        ref = model(x, t, tokens, mask, pooled)
        padded = tokens.clone()
        padded[1, 2:] = 50.0  # masked positions of clip 1
        torch.testing.assert_close(model(x, t, padded, mask, pooled), ref, rtol=0, atol=0)
        real = tokens.clone()
        real[1, 0] += 1.0  # a real token of clip 1 changes clip 1 only
        out = model(x, t, real, mask, pooled)
    assert (out[1] - ref[1]).abs().max() > 1e-4
    torch.testing.assert_close(out[[0, 2]], ref[[0, 2]], rtol=0, atol=0)


def test_dropped_rows_ignore_the_text():
    model = _model()
    x, t, tokens, mask, pooled = _inputs()
    drop = torch.tensor([True, False, True])
    with torch.no_grad():
        a = model(x, t, tokens, mask, pooled, drop=drop)
        b = model(x, t, torch.randn_like(tokens), mask, torch.randn_like(pooled), drop=drop)
        kept = model(x, t, tokens, mask, pooled)
    torch.testing.assert_close(a[[0, 2]], b[[0, 2]], rtol=0, atol=0)  # unconditional rows: text has no effect
    torch.testing.assert_close(a[1], kept[1], rtol=0, atol=0)  # kept row: as without drop
    assert (a[0] - kept[0]).abs().max() > 1e-4


def test_a_guidance_input_starts_as_the_plain_denoiser_and_then_reads_the_scale():
    plain = _model()
    guided = _model()  # the same weights (same seed), then a guidance input
    guided.add_guidance_input()
    assert guided.config.guidance_embed and guided.guidance_mlp is not None
    x, t, tokens, mask, pooled = _inputs()
    with torch.no_grad():
        base = plain(x, t, tokens, mask, pooled)
        for w in (None, torch.tensor([1.0, 3.0, 5.0])):  # zero-initialised output: every scale predicts as before
            torch.testing.assert_close(guided(x, t, tokens, mask, pooled, None, w), base, rtol=0, atol=0)
        for p in guided.guidance_mlp.parameters():
            p.normal_(0, 0.1)
        one = guided(x, t, tokens, mask, pooled, None, torch.ones(3))
        torch.testing.assert_close(guided(x, t, tokens, mask, pooled), one, rtol=0, atol=0)  # None = scale 1
        four = guided(x, t, tokens, mask, pooled, None, torch.full((3,), 4.0))
    assert (four - one).abs().max() > 1e-4
    with pytest.raises(ModelError, match="guidance_embed is off"):
        plain(x, t, tokens, mask, pooled, None, torch.ones(3))
    before = dict(guided.state_dict())
    guided.add_guidance_input()  # a second call keeps the trained input
    assert all(torch.equal(v, guided.state_dict()[k]) for k, v in before.items())


def test_self_attention_sees_the_whole_clip():
    """A change at the last latent frame reaches the first output frame (non-causal, global context)."""
    model = _model()
    x, t, tokens, mask, pooled = _inputs(B=1, T=20)
    with torch.no_grad():
        ref = model(x, t, tokens, mask, pooled)
        x2 = x.clone()
        x2[..., -1] += 1.0
        out = model(x2, t, tokens, mask, pooled)
    assert (out[..., 0] - ref[..., 0]).abs().max() > 1e-5


def test_rotary_is_relative():
    """Rotary dot products depend on the distance between positions only."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 1, 8, generator=g).expand(1, 1, 12, 8)
    k = torch.randn(1, 1, 1, 8, generator=g).expand(1, 1, 12, 8)
    scores = rotary(q, 100.0) @ rotary(k, 100.0).transpose(-1, -2)  # [1, 1, 12, 12]
    torch.testing.assert_close(scores[0, 0, 2, 5], scores[0, 0, 6, 9])
    torch.testing.assert_close(scores[0, 0, 0, 0], scores[0, 0, 11, 11])


def test_bad_shapes_and_configs_are_clear_errors():
    model = _model()
    x, t, tokens, mask, pooled = _inputs()
    with pytest.raises(ModelError, match="latent_channels=4"):
        model(x[:, :3], t, tokens, mask, pooled)
    with pytest.raises(ModelError, match="text embeddings are 8-d, the denoiser expects 16"):
        model(x, t, tokens[..., :8], mask, pooled)
    with pytest.raises(ConfigError, match="heads"):
        LatentDenoiserConfig(d_model=30, heads=4)
    with pytest.raises(ConfigError, match="prediction"):
        LatentDenoiserConfig(prediction="score")


# --- the composite: LatentDiffusion --------------------------------------------------------------------------


def _composite_config(**kw) -> LatentDiffusionConfig:
    denoiser = LatentDenoiserConfig(
        latent_channels=8, latent_bins=1, d_model=32, layers=1, heads=2, text_dim=32
    )
    return LatentDiffusionConfig(denoiser=denoiser, text_encoder="hashed:32", **kw)


@pytest.fixture
def shipped_parts(tmp_path, monkeypatch):
    """Tiny VAE and vocoder saved as shipped models ``tiny_vae`` / ``tiny_vocoder`` in a temporary folder."""
    torch.manual_seed(0)
    save_model(MelVAE(VAEConfig(channels=[16, 32, 32], latent_channels=8)), tmp_path / "shipped" / "tiny_vae")
    save_model(
        Vocoder(VocoderConfig(dim=32, intermediate_dim=64, depth=2)), tmp_path / "shipped" / "tiny_vocoder"
    )
    monkeypatch.setenv(SHIPPED_ENV, str(tmp_path / "shipped"))
    return _composite_config(vae="tiny_vae", vocoder="tiny_vocoder")


def test_composite_defaults_to_shipped_parts_and_round_trips_exactly(shipped_parts, tmp_path):
    torch.manual_seed(3)
    model = LatentDiffusion(shipped_parts).eval()
    assert model.component_refs()["vae"] == ShippedRef("tiny_vae")
    assert not list(model.components)  # frozen parts by reference: not submodules
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.normal_(0, 0.1)
    save_model(model, tmp_path / "ld")
    meta = json.loads((tmp_path / "ld" / "config.json").read_text())
    assert meta["components"] == {
        "vae": {"shipped": "tiny_vae"},
        "vocoder": {"shipped": "tiny_vocoder"},
        "text_encoder": {"text_encoder": "hashed:32"},
    }
    assert sorted(p.name for p in (tmp_path / "ld").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_model(tmp_path / "ld")
    assert type(loaded) is LatentDiffusion and loaded.config == model.config
    audio = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0)) * 0.1
    lat = model.audio_to_latents(audio)
    tokens, mask, pooled = model.encode_text(["a bell", "soft rain falls"])
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        torch.testing.assert_close(loaded(lat, t, tokens, mask, pooled), model(lat, t, tokens, mask, pooled))
    torch.testing.assert_close(loaded.round_trip(audio), model.round_trip(audio), rtol=0, atol=0)


@pytest.mark.parametrize("seconds", [0.01, 0.5, 4.0, 30.0])
def test_latent_length_follows_the_duration(shipped_parts, seconds):
    model = LatentDiffusion(shipped_parts)
    n = int(seconds * 16000)
    frames = n // 160 + 1  # the mel front end's centred frames
    assert model.latent_shape(n) == (8, 1, -(-frames // 4))
    if seconds <= 0.5:
        audio = torch.zeros(1, n)
        assert model.audio_to_latents(audio).shape == (1, *model.latent_shape(n))
        assert model.round_trip(audio).shape == (1, n)


def test_posterior_sample_is_seeded(shipped_parts):
    model = LatentDiffusion(shipped_parts)
    audio = torch.randn(1, 3200, generator=torch.Generator().manual_seed(1)) * 0.1
    a = model.audio_to_latents(audio, generator=torch.Generator().manual_seed(5))
    b = model.audio_to_latents(audio, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, model.audio_to_latents(audio))  # the mean differs from a sample


def test_config_from_yaml_mapping_and_bad_values():
    cfg = dataclass_from_dict(
        LatentDiffusionConfig,
        {"text_encoder": "hashed:32", "denoiser": {"d_model": 64, "heads": 2, "text_dim": 32}, "steps": 6},
    )
    assert cfg.denoiser.d_model == 64 and cfg.denoiser.text_encoder == "hashed:32" and cfg.steps == 6
    with pytest.raises(ConfigError, match="unknown key"):
        dataclass_from_dict(LatentDiffusionConfig, {"denoiser": {"width": 3}})
    with pytest.raises(ConfigError, match="steps"):
        LatentDiffusionConfig(steps=0)
    with pytest.raises(ConfigError, match="duration"):
        LatentDiffusionConfig(duration=40.0)


def test_parts_that_do_not_fit_are_one_line_errors():
    vae = MelVAE(VAEConfig(channels=[16, 32, 32], latent_channels=8))
    voc = Vocoder(VocoderConfig(dim=32, intermediate_dim=64, depth=2))
    with pytest.raises(ModelError, match="latent channels"):
        LatentDiffusion(
            LatentDiffusionConfig(
                denoiser=LatentDenoiserConfig(
                    latent_channels=4, latent_bins=1, d_model=32, heads=2, text_dim=32
                ),
                text_encoder="hashed:32",
            ),
            {"vae": vae, "vocoder": voc},
        ).check_parts()
    with pytest.raises(ModelError, match="expects text_dim=384"):
        LatentDiffusion(
            LatentDiffusionConfig(
                denoiser=LatentDenoiserConfig(latent_channels=8, latent_bins=1, d_model=32, heads=2),
                text_encoder="hashed:32",
            ),
            {"vae": vae, "vocoder": voc},
        ).check_parts()
    other_mel = Vocoder(VocoderConfig(dim=32, intermediate_dim=64, depth=2, n_mels=80))
    with pytest.raises(ModelError, match="n_mels"):
        LatentDiffusion(_composite_config(), {"vae": vae, "vocoder": other_mel}).check_parts()
    with pytest.raises(ModelError, match="no component 'denoiser'"):
        LatentDiffusion(_composite_config(), {"denoiser": voc})


def test_module_parts_are_frozen():
    vae = MelVAE(VAEConfig(channels=[16, 32, 32], latent_channels=8))
    model = LatentDiffusion(
        _composite_config(), {"vae": vae, "vocoder": Vocoder(VocoderConfig(dim=32, depth=1))}
    )
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("denoiser.") for n in trainable)
