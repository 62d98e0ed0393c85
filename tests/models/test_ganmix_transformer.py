"""GANmix's token-reading generator (``generator.arch: transformer``): the time transformer run once at the noise end
of the flow path, started from a latent diffusion model's denoiser; its text (pooled + tokens) through the objective's
cache, the pipeline, prompt interpolation and save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundsmith.errors import ConfigError, ModelError, TrainingError
from soundsmith.models.ganmix import DiscriminatorConfig, GANmix, GANmixConfig, GeneratorConfig
from soundsmith.models.latent_diffusion import LatentDenoiserConfig, LatentDiffusion, LatentDiffusionConfig
from soundsmith.models.registry import SHIPPED_ENV, load_model, save_model
from soundsmith.models.vae import MelVAE, VAEConfig
from soundsmith.models.vocoder import Vocoder, VocoderConfig
from soundsmith.pipelines.ganmix import GANmixPipeline, mix_text
from soundsmith.train.objectives.ganmix import GANmixObjective, init_generator_from

SR = 16000


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A tiny VAE (8 latent channels) and vocoder shipped under ``tmp_path``, and a tiny guidance-distilled latent
    diffusion model over them (``tmp_path / "ldm"``): the teacher a transformer generator starts from."""
    torch.manual_seed(0)
    save_model(MelVAE(VAEConfig(channels=[16, 32, 32], latent_channels=8)), tmp_path / "shipped" / "t_vae")
    save_model(Vocoder(VocoderConfig(dim=32, intermediate_dim=64, depth=2)), tmp_path / "shipped" / "t_voc")
    monkeypatch.setenv(SHIPPED_ENV, str(tmp_path / "shipped"))
    denoiser = LatentDenoiserConfig(
        latent_channels=8, latent_bins=1, d_model=32, layers=2, heads=2, text_dim=32, guidance_embed=True
    )
    ldm = LatentDiffusion(
        LatentDiffusionConfig(denoiser=denoiser, vae="t_vae", vocoder="t_voc", text_encoder="hashed:32", duration=0.5)
    )
    with torch.no_grad():  # a trained-looking denoiser: its zero-initialised output layers made non-zero
        for p in ldm.denoiser.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    save_model(ldm, tmp_path / "ldm")
    return tmp_path


def config(init_from=None, guidance=3.0, **kw) -> GANmixConfig:
    return GANmixConfig(
        generator=GeneratorConfig(
            arch="transformer", noise_dim=8, channels=32, blocks=2, heads=2, guidance=guidance, init_from=init_from
        ),
        discriminator=DiscriminatorConfig(
            arch="conv", channels=8, blocks=1, kernel_size=3, output="linear", projection=True
        ),
        vae="t_vae",
        vocoder="t_voc",
        text_encoder="hashed:32",
        text_dim=32,
        latent_channels=8,
        latent_frames=13,
        duration=0.5,
        loss="hinge",
        **kw,
    )


def _batch(n: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    captions = ["a bell rings", "rain falls softly on a tin roof at night", "a dog barks"][:n]
    return {"audio": 0.1 * torch.randn(n, SR // 2, generator=g), "caption": captions, "labels": [["x"]] * n}


def test_transformer_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="noise_dim"):
        GANmixConfig(generator=GeneratorConfig(arch="transformer", noise_dim=16), latent_channels=8)
    with pytest.raises(ConfigError, match="heads"):
        GeneratorConfig(arch="transformer", channels=30, heads=4)
    with pytest.raises(ConfigError, match="init_from and guidance"):
        GeneratorConfig(arch="conv", init_from="default")
    with pytest.raises(ConfigError, match="guidance"):
        GeneratorConfig(arch="transformer", guidance=-1.0)
    with pytest.raises(ConfigError, match="unknown"):
        DiscriminatorConfig(arch="transformer")  # the discriminator has no transformer


def test_an_untrained_generator_returns_its_noise_and_needs_tokens(shipped):
    model = GANmix(config()).eval()
    text = model.text_condition(["a bell rings"])
    noise = torch.randn(1, 8, 9)
    # the time transformer's output layers start at zero: the flow's x0 = noise - v is the noise itself
    torch.testing.assert_close(model(noise, text["pooled"], 9, text["tokens"], text["mask"]), noise)
    with pytest.raises(ModelError, match="tokens"):
        model(noise, text["pooled"], 9)


def test_started_from_a_denoiser_it_is_that_denoisers_one_step_estimate(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"))).eval()
    GANmixObjective(model)  # the objective copies the denoiser in when training begins
    teacher = load_model(shipped / "ldm")
    noise = torch.randn(2, 8, 13)
    tokens, mask, pooled = teacher.encode_text(["a bell rings", "a dog barks loudly"])
    with torch.no_grad():
        v = teacher(noise[:, :, None], torch.ones(2), tokens, mask, pooled, guidance=torch.full((2,), 3.0))
        made = model(noise, pooled, 13, tokens, mask)
    torch.testing.assert_close(made, noise - v[:, :, 0], rtol=1e-5, atol=1e-6)
    assert (made - noise).abs().mean() > 1e-3  # not the untrained identity
    # the caption's tokens reach it: another caption with the same pooled vector gives another latent
    other, other_mask, _ = teacher.encode_text(["a cat meows", "rain falls"])
    with torch.no_grad():
        assert not torch.allclose(model(noise, pooled, 13, other, other_mask), made)


def test_a_denoiser_that_does_not_fit_is_one_clear_error(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"), guidance=None))  # no guidance input: tensors differ
    with pytest.raises(TrainingError, match="guidance_mlp"):
        init_generator_from(model, str(shipped / "ldm"))
    with pytest.raises(TrainingError, match="cannot be loaded"):
        init_generator_from(GANmix(config()), str(shipped / "nowhere"))
    with pytest.raises(TrainingError, match="not a latent diffusion model"):
        init_generator_from(GANmix(config()), str(shipped / "shipped" / "t_voc"))


def test_padded_caption_tokens_give_each_row_what_it_gives_alone(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"))).eval()
    obj = GANmixObjective(model)
    batch = obj.prepare_batch(_batch())
    assert batch["text_tokens"].shape[:2] == batch["text_mask"].shape
    lengths = batch["text_mask"].sum(1).tolist()
    assert len(set(lengths)) > 1  # the captions differ in length, so rows are padded
    noise = torch.randn(3, 8, 13)
    with torch.no_grad():
        together = model(noise, batch["text_pooled"], 13, batch["text_tokens"], batch["text_mask"])
        for i, caption in enumerate(batch["captions"]):
            t = model.text_condition([caption])
            alone = model(noise[i : i + 1], t["pooled"], 13, t["tokens"], t["mask"])
            torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-4, atol=1e-5)


def test_a_few_steps_move_it_and_it_saves_and_generates_the_same(shipped, tmp_path):
    model = GANmix(config(init_from=str(shipped / "ldm")))
    obj = GANmixObjective(model)
    before = [p.detach().clone() for p in model.generator.parameters()]
    opt = torch.optim.Adam(model.generator.parameters(), lr=1e-3)
    batch = obj.prepare_batch(_batch())
    for step in range(2):
        obj.global_step = step
        opt.zero_grad()
        loss = obj.losses(batch, 0)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.generator.parameters(), strict=True))
    save_model(model, tmp_path / "gm")
    again = load_model(tmp_path / "gm")
    assert again.config.generator.arch == "transformer"
    a = GANmixPipeline(model.eval())("a bell rings", duration=0.5, seed=3, progress=False).audio
    b = GANmixPipeline(again)("a bell rings", duration=0.5, seed=3, progress=False).audio
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, SR // 2)


def test_prompt_interpolation_mixes_pooled_and_padded_tokens(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"))).eval()
    a, b = model.text_condition(["a bell"]), model.text_condition(["rain falls softly on the roof"])
    assert a["tokens"].shape[1] < b["tokens"].shape[1]
    ends = mix_text(a, b, 0.0), mix_text(a, b, 1.0)
    torch.testing.assert_close(ends[1]["tokens"], b["tokens"])
    torch.testing.assert_close(ends[0]["tokens"][:, : a["tokens"].shape[1]], a["tokens"])
    assert torch.equal(ends[0]["mask"], ends[1]["mask"]) and bool(ends[0]["mask"].all())
    out = GANmixPipeline(model).interpolate("a bell", "rain falls softly on the roof", steps=3, duration=0.5)
    assert out.audio.shape == (3, SR // 2) and np.isfinite(out.audio).all()
