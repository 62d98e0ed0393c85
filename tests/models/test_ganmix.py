"""GANmix networks and composite: shapes for any latent length (fixed-length FC nets crop/tile, conv nets any
length), tanh-bounded / spectral-norm / projection discriminators, slerp, config and fit errors, exact save/load."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from soundsmith import families
from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.ganmix import (
    Discriminator,
    DiscriminatorConfig,
    GANmix,
    GANmixConfig,
    Generator,
    GeneratorConfig,
    slerp,
)
from soundsmith.models.registry import load_model, save_model
from soundsmith.train.runconfig import load_run_config


def tiny(**overrides) -> GANmix:
    """The tiny preset (FC, 13 latent frames, 8 channels) with the tiny VAE/vocoder as module components."""
    family = families.get("ganmix")
    cfg = load_run_config(family.tiny_config_path()).model
    torch.manual_seed(0)
    return family.contract_build(dataclasses.replace(cfg, **overrides)).eval()


def conv_config(**kw) -> GANmixConfig:
    return GANmixConfig(
        generator=GeneratorConfig(arch="conv", noise_dim=4, channels=8, blocks=2, kernel_size=3),
        discriminator=DiscriminatorConfig(arch="conv", channels=8, blocks=2, kernel_size=3, **kw),
        text_dim=6,
        cond_dim=5,
        latent_channels=3,
        latent_frames=10,
        text_encoder="hashed:6",
    )


def test_fc_generator_makes_its_fixed_length_only():
    model = tiny()
    c = model.config
    out = model(torch.randn(3, c.generator.noise_dim), torch.randn(3, c.text_dim))
    assert out.shape == (3, c.latent_channels, c.latent_frames)
    with pytest.raises(ModelError, match="crop or tile"):
        model(torch.randn(3, c.generator.noise_dim), torch.randn(3, c.text_dim), frames=c.latent_frames + 1)


@pytest.mark.parametrize("frames", [1, 7, 10, 33])
def test_conv_generator_and_discriminator_take_any_length(frames):
    c = conv_config(projection=True, output="linear")
    torch.manual_seed(0)
    gen, disc = Generator(c), Discriminator(c)
    z = torch.randn(2, *gen.noise_shape(frames))
    latent = gen(z, torch.randn(2, 6), frames)
    assert latent.shape == (2, 3, frames)
    assert disc(latent, torch.randn(2, 6)).shape == (2,)


def test_fit_frames_crops_and_tiles_and_can_refuse():
    model = tiny()
    x = torch.arange(2 * 8 * 13, dtype=torch.float32).view(2, 8, 13)
    torch.testing.assert_close(model.fit_frames(x, 5), x[..., :5])
    long = model.fit_frames(x, 30)
    assert long.shape == (2, 8, 30)
    torch.testing.assert_close(long[..., 13:26], x)
    torch.testing.assert_close(long[..., 26:], x[..., :4])
    with pytest.raises(ModelError, match="at most"):
        tiny(long_clips="error").fit_frames(x, 14)


@pytest.mark.parametrize("num_samples", [160, 8000, 12345, 24000])
def test_any_duration_decodes_to_the_requested_samples(num_samples):
    model = tiny()
    c = model.config
    with torch.no_grad():
        latent = model(model.noise(0), torch.zeros(1, c.text_dim))  # [1, 8, 13]
        audio = model.latents_to_audio(
            model.fit_frames(latent, model.latent_frames(num_samples)), num_samples
        )
    assert audio.shape == (1, num_samples) and torch.isfinite(audio).all()


def test_fc_discriminator_is_tanh_bounded_and_text_conditioned():
    model = tiny()
    disc = Discriminator(model.config)
    x = torch.randn(4, 8, 13)
    with torch.no_grad():
        a, b = disc(x, torch.randn(4, 32)), disc(x, torch.randn(4, 32))
        assert not torch.equal(a, b)  # the text changes the score
        for p in disc.parameters():
            p.mul_(50.0)  # saturate the tanh
        big = disc(x * 100, torch.randn(4, 32))
    assert big.abs().max() <= 1.0 and big.abs().min() > 0.99
    with pytest.raises(ModelError, match="13 frames"):
        disc(torch.randn(1, 8, 12), torch.randn(1, 32))


def test_spectral_norm_and_projection():
    c = conv_config(projection=True, output="linear", spectral_norm=True)
    disc = Discriminator(c)
    names = [n for n, _ in disc.named_modules() if n.endswith("parametrizations.weight")]
    assert any(n.startswith("inp") for n in names) and any(n.startswith("out") for n in names)
    assert disc.embed is not None and "text.parametrizations.weight" not in names
    torch.manual_seed(1)
    x, t = torch.randn(2, 3, 10), torch.randn(2, 6)
    disc.train()
    for _ in range(20):  # power iterations converge: the largest singular value of each weight goes to 1
        disc(x, t)
    sigma = torch.linalg.matrix_norm(disc.out.weight.detach(), ord=2)
    assert abs(float(sigma) - 1.0) < 1e-3


def test_slerp_ends_and_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 64, generator=g), torch.randn(1, 64, generator=g)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    b = b / b.norm() * a.norm()
    mid = slerp(a, b, 0.5)
    assert abs(float(mid.norm() / a.norm()) - 1.0) < 1e-5  # on the sphere, unlike the linear midpoint
    torch.testing.assert_close(slerp(a, a, 0.3), a)  # parallel: falls back to linear


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("loss", "wasserstein", "loss"),
        ("tanh_as", "sigmoid", "tanh_as"),
        ("generator", {"arch": "rnn"}, "arch"),
        ("discriminator", {"output": "sigmoid"}, "output"),
        ("latent_frames", 0, "latent_frames"),
        ("long_clips", "loop", "long_clips"),
    ],
)
def test_bad_config_values_are_named(field, value, match):
    with pytest.raises(ConfigError, match=match):
        GANmixConfig(**{field: value})


def test_parts_that_do_not_fit_say_what_to_set():
    model = tiny(latent_frames=12)
    with pytest.raises(ModelError, match="latent_frames=13"):
        model.check_parts()
    with pytest.raises(ModelError, match="latent_channels"):
        tiny(latent_channels=4).check_parts()
    with pytest.raises(ModelError, match="text_dim"):
        tiny(text_dim=16).check_parts()


def test_save_load_is_exact_and_holds_only_the_generator(tmp_path):
    model = tiny()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "m" / "model.safetensors").keys()
    assert keys and all(k.startswith("generator.") for k in keys)
    z, pooled = model.noise(5), torch.randn(1, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(z, pooled), model(z, pooled), rtol=0, atol=0)


def test_film_blocks_projection_and_slerp_by_hand():
    from soundsmith.models.ganmix import ResBlock

    torch.manual_seed(2)
    block = ResBlock(4, 3, 2, cond_dim=5, activation="relu")
    with torch.no_grad():  # the FiLM layer may start at zero: give it values
        for p in block.parameters():
            p.normal_(0, 0.5)
    x, cond = torch.randn(2, 4, 9), torch.randn(2, 5)
    scale, shift = block.film(cond)[:, :, None].chunk(2, dim=1)
    h = block.conv1(torch.relu(x)) * (1 + scale) + shift
    with torch.no_grad():
        torch.testing.assert_close(block(x, cond), x + block.conv2(torch.relu(h)))
        torch.testing.assert_close(block(x), x + block.conv2(torch.relu(block.conv1(torch.relu(x)))))

    gen = Generator(conv_config())  # every block of the conv generator hears the text
    seen = []
    for b in gen.modules():
        if isinstance(b, ResBlock):
            b.register_forward_pre_hook(lambda m, args: seen.append(len(args) == 2 and args[1] is not None))
    gen(torch.randn(2, 4, 10), torch.randn(2, 6), 10)
    assert seen and all(seen)

    disc = Discriminator(conv_config(projection=True, output="linear"))
    lat, pooled = torch.randn(2, 3, 10), torch.randn(2, 6)
    with torch.no_grad():
        for p in disc.embed.parameters():
            p.normal_(0, 0.5)
        cond = disc.text(pooled)
        feats = disc.features(lat, cond)
        torch.testing.assert_close(
            disc(lat, pooled), disc.out(feats)[:, 0] + (disc.embed(cond) * feats).sum(-1)
        )
        tanh = Discriminator(conv_config(projection=False, output="tanh"))
        assert float(tanh(lat * 100, pooled).abs().max()) <= 1.0

    a = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 2.0]])  # row 0: 90 degrees apart; row 1: parallel (linear)
    t = 0.25
    want0 = (math.sin(0.75 * math.pi / 2) * a[0] + math.sin(0.25 * math.pi / 2) * b[0]) / math.sin(
        math.pi / 2
    )
    out = slerp(a, b, t)
    torch.testing.assert_close(out[0], want0)
    torch.testing.assert_close(out[1], 0.75 * a[1] + 0.25 * b[1])
    opposite = slerp(torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.0]]), 0.5)  # sin(omega) = 0: linear
    torch.testing.assert_close(opposite, torch.zeros(1, 2))


def test_generator_and_discriminator_settings_at_their_limits_are_named():
    GeneratorConfig(
        noise_dim=1, hidden=[1], channels=1, blocks=1, kernel_size=1
    )  # the smallest valid settings
    DiscriminatorConfig(hidden=[1], channels=1, blocks=1, kernel_size=1, dropout=0.0, output="linear")
    cases = [
        (GeneratorConfig, {"arch": "rnn"}, r"^GeneratorConfig.arch='rnn' is unknown; use one of \["),
        (
            GeneratorConfig,
            {"activation": "tanhh"},
            r"^GeneratorConfig.activation='tanhh' is unknown; use one of \[",
        ),
        (GeneratorConfig, {"noise_dim": 0}, r"^GeneratorConfig: noise_dim \(0\) and every hidden width"),
        (GeneratorConfig, {"hidden": []}, r"and every hidden width \(\[\]\) must be >= 1$"),
        (GeneratorConfig, {"hidden": [4, 0]}, r"and every hidden width \(\[4, 0\]\) must be >= 1$"),
        (GeneratorConfig, {"channels": 0}, r"^GeneratorConfig: channels \(0\) and blocks \(4\) must be >= 1"),
        (GeneratorConfig, {"blocks": 0}, r"blocks \(0\) must be >= 1, kernel_size"),
        (GeneratorConfig, {"kernel_size": 0}, r"kernel_size \(0\) odd$"),
        (GeneratorConfig, {"kernel_size": 4}, r"kernel_size \(4\) odd$"),
        (DiscriminatorConfig, {"arch": "rnn"}, r"^DiscriminatorConfig.arch='rnn' is unknown"),
        (
            DiscriminatorConfig,
            {"output": "sigmoid"},
            r"^DiscriminatorConfig.output='sigmoid' must be 'tanh' or 'linear'$",
        ),
        (DiscriminatorConfig, {"dropout": 1.0}, r"^DiscriminatorConfig.dropout=1.0 must be in \[0, 1\)$"),
        (DiscriminatorConfig, {"dropout": -0.1}, r"^DiscriminatorConfig.dropout=-0.1 must be in \[0, 1\)$"),
    ]
    for cls, kw, match in cases:
        with pytest.raises(ConfigError, match=match):
            cls(**kw)


@pytest.mark.parametrize("bad", [-1, 17, 2.0, True])
def test_vocoder_refine_out_of_range_is_refused_naming_the_field(bad):
    with pytest.raises(ConfigError, match=r"GANmixConfig.vocoder_refine=.* must be an integer from 0 to 16"):
        GANmixConfig(vocoder_refine=bad)
    assert GANmixConfig(vocoder_refine=3).vocoder_refine == 3
