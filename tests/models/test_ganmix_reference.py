"""GANmix networks against a float64 reference written from their documented design.

Random-weight shape tests cannot tell a hidden width, a kernel, a dilation or a missing LayerNorm apart, and GANmix
ships no trained weights to pin them (as the shipped VAE and vocoder are pinned). Here every weight is read from
the network's state dict by name, its shape is computed from the config by hand and asserted, and the forward pass
is written out with float64 functional ops: a changed layer size, order, padding, dilation, activation or
conditioning path fails. Also: the composite's noise, crop/tile and crop-length arithmetic by hand, and the config
messages at their exact boundaries.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_ganmix import tiny
from torch import Tensor

from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.ganmix import (
    Discriminator,
    DiscriminatorConfig,
    GANmixConfig,
    Generator,
    GeneratorConfig,
)

ACT = {
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "relu": F.relu,
    "silu": F.silu,
}


class Weights:
    """The network's effective float64 weights by name (spectral norm read through its parametrization); every
    read asserts the shape the design gives, and ``check_all_read`` that no weight was left unexplained."""

    def __init__(self, net: torch.nn.Module) -> None:
        net.eval()
        self.w: dict[str, Tensor] = {}
        for name, module in net.named_modules():
            for attr in ("weight", "bias"):
                t = getattr(module, attr, None)
                if isinstance(t, Tensor) and not isinstance(
                    module, torch.nn.utils.parametrize.ParametrizationList
                ):
                    self.w[f"{name}.{attr}" if name else attr] = t.detach().double()
        self.read: set[str] = set()

    def __call__(self, name: str, shape: tuple[int, ...]) -> Tensor:
        t = self.w[name]
        assert tuple(t.shape) == shape, f"{name}: {tuple(t.shape)} != {shape} (from the config)"
        self.read.add(name)
        return t

    def linear(self, name: str, x: Tensor, n_in: int, n_out: int, bias: bool = True) -> Tensor:
        b = self(f"{name}.bias", (n_out,)) if bias else None
        return F.linear(x, self(f"{name}.weight", (n_out, n_in)), b)

    def conv(self, name: str, x: Tensor, n_in: int, n_out: int, k: int, dilation: int = 1) -> Tensor:
        w, b = self(f"{name}.weight", (n_out, n_in, k)), self(f"{name}.bias", (n_out,))
        return F.conv1d(x, w, b, padding=dilation * (k - 1) // 2, dilation=dilation)

    def check_all_read(self) -> None:
        assert set(self.w) == self.read, (
            f"weights the design does not name: {sorted(set(self.w) - self.read)}"
        )


def ref_mlp(
    W: Weights, prefix: str, x: Tensor, widths: list[int], act: str, norm: bool, dropout: bool
) -> Tensor:
    """Linear -> (LayerNorm) -> activation -> (Dropout: no weights, identity in eval) per layer."""
    idx = 0
    for a, b in zip(widths[:-1], widths[1:]):
        x = W.linear(f"{prefix}.{idx}", x, a, b)
        idx += 1
        if norm:
            x = F.layer_norm(x, (b,), W(f"{prefix}.{idx}.weight", (b,)), W(f"{prefix}.{idx}.bias", (b,)))
            idx += 1
        x = ACT[act](x)
        idx += 1 + int(dropout)
    return x


def ref_block(
    W: Weights, name: str, x: Tensor, ch: int, k: int, i: int, act: str, cond: Tensor | None
) -> Tensor:
    """x + conv2(act(FiLM(conv1(act(x)), cond))), dilation 2 ** (i % 4)."""
    h = W.conv(f"{name}.conv1", ACT[act](x), ch, ch, k, dilation=2 ** (i % 4))
    if cond is not None:
        film = W.linear(f"{name}.film", cond, cond.shape[-1], 2 * ch)
        h = h * (1 + film[:, :ch, None]) + film[:, ch:, None]
    return x + W.conv(f"{name}.conv2", ACT[act](h), ch, ch, 1)


def ref_generator(gen: Generator, c: GANmixConfig, noise: Tensor, pooled: Tensor, frames: int) -> Tensor:
    W, g = Weights(gen), c.generator
    cond = W.linear("text", pooled.double(), c.text_dim, c.cond_dim)
    if g.arch == "mlp":
        h = ref_mlp(W, "body", torch.cat([noise.double(), cond], -1), [g.noise_dim + c.cond_dim, *g.hidden],
                    g.activation, g.norm, False)  # fmt: skip
        out = W.linear("out", h, g.hidden[-1], c.latent_channels * c.latent_frames)
        out = out.view(len(noise), c.latent_channels, c.latent_frames)
    else:
        h = W.conv("inp", noise.double(), g.noise_dim, g.channels, 1)
        for i in range(g.blocks):
            h = ref_block(W, f"blocks.{i}", h, g.channels, g.kernel_size, i, g.activation, cond)
        out = W.conv("out", ACT[g.activation](h), g.channels, c.latent_channels, 1)
    W.check_all_read()
    return out


def ref_discriminator(disc: Discriminator, c: GANmixConfig, latent: Tensor, pooled: Tensor) -> Tensor:
    W, d = Weights(disc), c.discriminator
    cond = W.linear("text", pooled.double(), c.text_dim, c.cond_dim)
    concat = 0 if d.projection else c.cond_dim
    if d.arch == "mlp":
        x = latent.double().flatten(1)
        x = x if d.projection else torch.cat([x, cond], -1)
        h = ref_mlp(W, "body", x, [c.latent_channels * c.latent_frames + concat, *d.hidden], d.activation,
                    False, d.dropout > 0)  # fmt: skip
        width = d.hidden[-1]
    else:
        h = W.conv("inp", latent.double(), c.latent_channels, d.channels, 3)
        for i in range(d.blocks):
            h = ref_block(W, f"blocks.{i}", h, d.channels, d.kernel_size, i, d.activation, None)
        h = ACT[d.activation](h).mean(-1)
        h = h if d.projection else torch.cat([h, cond], -1)
        width = d.channels + concat
    score = W.linear("out", h, width, 1)[:, 0]
    if d.projection:
        score = score + (W.linear("embed", cond, c.cond_dim, width, bias=False) * h).sum(-1)
    W.check_all_read()
    return torch.tanh(score) if d.output == "tanh" else score


def config(gen: dict, disc: dict, **kw) -> GANmixConfig:
    base = {
        "text_dim": 6,
        "cond_dim": 5,
        "latent_channels": 3,
        "latent_frames": 7,
        "text_encoder": "hashed:6",
    }
    base.update(kw)
    return GANmixConfig(generator=GeneratorConfig(**gen), discriminator=DiscriminatorConfig(**disc), **base)


def randomise(net: torch.nn.Module, seed: int) -> None:
    """Every parameter drawn away from its init (FiLM and projection layers may start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=g))


GENERATORS = [
    {"arch": "mlp", "noise_dim": 4, "hidden": [9, 11], "activation": "leaky_relu"},
    {"arch": "mlp", "noise_dim": 3, "hidden": [6, 8, 5], "activation": "silu", "norm": True},
    {
        "arch": "conv",
        "noise_dim": 4,
        "channels": 6,
        "blocks": 5,
        "kernel_size": 3,
        "activation": "leaky_relu",
    },
    {"arch": "conv", "noise_dim": 2, "channels": 5, "blocks": 2, "kernel_size": 5, "activation": "relu"},
]
DISCRIMINATORS = [
    {"arch": "mlp", "hidden": [10, 4], "output": "tanh", "activation": "leaky_relu"},
    {
        "arch": "mlp",
        "hidden": [8],
        "output": "linear",
        "projection": True,
        "dropout": 0.3,
        "activation": "relu",
    },
    {"arch": "conv", "channels": 6, "blocks": 5, "kernel_size": 3, "output": "linear", "projection": True},
    {"arch": "conv", "channels": 4, "blocks": 2, "kernel_size": 5, "output": "tanh", "activation": "silu"},
    {
        "arch": "conv",
        "channels": 4,
        "blocks": 3,
        "kernel_size": 3,
        "output": "linear",
        "projection": True,
        "spectral_norm": True,
    },
    {"arch": "mlp", "hidden": [6, 5], "output": "linear", "spectral_norm": True},
]


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: f"{g['arch']}-{g.get('channels', g.get('hidden'))}")
def test_generator_matches_its_float64_reference(gen):
    c = config(gen, {"arch": "mlp"})
    net = Generator(c).double()
    randomise(net, 1)
    g = torch.Generator().manual_seed(2)
    frames = c.latent_frames
    noise = torch.randn(3, *net.noise_shape(frames), generator=g, dtype=torch.float64)
    pooled = torch.randn(3, c.text_dim, generator=g, dtype=torch.float64)
    with torch.no_grad():
        out = net(noise, pooled, frames)
    assert out.shape == (3, c.latent_channels, frames)
    torch.testing.assert_close(out, ref_generator(net, c, noise, pooled, frames), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("disc", DISCRIMINATORS, ids=lambda d: f"{d['arch']}-{d['output']}-{len(d)}")
def test_discriminator_matches_its_float64_reference(disc):
    c = config({"arch": "mlp"}, disc)
    net = Discriminator(c).double()
    randomise(net, 3)
    g = torch.Generator().manual_seed(4)
    latent = torch.randn(3, c.latent_channels, c.latent_frames, generator=g, dtype=torch.float64)
    pooled = torch.randn(3, c.text_dim, generator=g, dtype=torch.float64)
    net.eval()
    with torch.no_grad():
        out = net(latent, pooled)
    assert out.shape == (3,)
    torch.testing.assert_close(out, ref_discriminator(net, c, latent, pooled), rtol=1e-10, atol=1e-10)


def test_discriminator_dropout_acts_in_training_only():
    c = config({"arch": "mlp"}, {"arch": "mlp", "hidden": [64, 32], "output": "linear", "dropout": 0.5})
    net = Discriminator(c)
    randomise(net, 5)
    latent, pooled = torch.randn(2, 3, 7), torch.randn(2, 6)
    net.train()
    torch.manual_seed(0)
    a = net(latent, pooled)
    b = net(latent, pooled)
    assert not torch.allclose(a, b)  # two dropout masks
    net.eval()
    torch.testing.assert_close(net(latent, pooled), net(latent, pooled), rtol=0, atol=0)


def test_spectral_norm_covers_every_layer_but_the_text_projection():
    for disc in DISCRIMINATORS:
        net = Discriminator(config({"arch": "mlp"}, disc))
        layers = {
            n: hasattr(m, "parametrizations")
            for n, m in net.named_modules()
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d))
        }
        assert layers.pop("text") is False
        assert set(layers.values()) == {bool(disc.get("spectral_norm"))}, (disc, layers)


# --- the composite: noise, crop/tile, crop length --------------------------------------------------------------


def test_noise_is_the_seeded_standard_normal_of_the_generators_shape():
    conv = {"arch": "conv", "noise_dim": 4, "channels": 8, "blocks": 1, "kernel_size": 3}
    for gen, frames, shape in [
        ({}, None, (1, 16)),
        ({}, 40, (1, 16)),  # the mlp generator's noise has no time axis
        (conv, None, (1, 4, 13)),  # conv: one vector per latent frame, the crop's length by default
        (conv, 21, (1, 4, 21)),
    ]:
        model = tiny(generator=GeneratorConfig(**gen) if gen else tiny().config.generator)
        z = model.noise(123, frames) if frames is not None else model.noise(123)
        assert z.shape == shape
        torch.testing.assert_close(z, torch.randn(shape, generator=torch.Generator().manual_seed(123)))
        assert not torch.equal(z, model.noise(124, frames))


def test_generation_frames_follow_the_clip_for_conv_and_stay_fixed_for_mlp():
    conv = tiny(generator=GeneratorConfig(arch="conv", noise_dim=4, channels=8, blocks=1, kernel_size=3))
    mlp = tiny()
    for samples in (800, 8000, 16000, 16001):
        mel_frames = samples // 160 + 1  # the tiny VAE's mel hop is 160
        assert conv.generation_frames(samples) == math.ceil(mel_frames / 4)  # time_downsample 4
        assert mlp.generation_frames(samples) == 13


def test_fit_frames_crops_and_tiles_along_time_only():
    model = tiny()
    lat = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)  # channels (5) != frames (3)
    torch.testing.assert_close(model.fit_frames(lat, 3), lat)  # exactly its length: unchanged
    torch.testing.assert_close(model.fit_frames(lat, 2), lat[..., :2])
    torch.testing.assert_close(model.fit_frames(lat, 8), torch.cat([lat, lat, lat], -1)[..., :8])
    torch.testing.assert_close(model.fit_frames(lat, 4), torch.cat([lat, lat], -1)[..., :4])
    strict = tiny(long_clips="error")
    torch.testing.assert_close(strict.fit_frames(lat, 3), lat)
    with pytest.raises(ModelError, match=r"^this GANmix model makes 0.5 s clips; ask for at most that, or set long_"
                       r"clips: tile$"):  # fmt: skip
        strict.fit_frames(lat, 4)


@pytest.mark.parametrize("duration", [0.5, 0.5625, 0.99, 0.995, 1.0, 1.03])
def test_the_crop_length_in_latent_frames_is_computed_as_the_vae_does(duration):
    # samples // hop + 1 mel frames (centred STFT), then ceil(/ 4) latent frames; these durations give mel frame
    # counts of every residue mod 4, so an off-by-one in either step changes the answer for some of them, and
    # 0.995 s (15,920 samples = 99.5 hops) tells the integer division from a true one
    frames = math.ceil((round(duration * 16000) // 160 + 1) / 4)
    tiny(duration=duration, latent_frames=frames).check_parts()
    for wrong in (frames - 1, frames + 1):
        with pytest.raises(
            ModelError,
            match=rf"^a {duration:g} s crop is {frames} latent frames with this VAE, but latent_frames={wrong}; "
            rf"set model.latent_frames={frames}$",
        ):
            tiny(duration=duration, latent_frames=wrong).check_parts()


def test_text_dim_mismatch_names_the_setting():
    with pytest.raises(ModelError, match=r"^text encoder 'hashed:32' gives 32-d embeddings but text_dim=16$"):
        tiny(text_dim=16).check_parts()


# --- config messages at their boundaries -----------------------------------------------------------------------


def test_discriminator_and_composite_messages_at_their_boundaries():
    DiscriminatorConfig(hidden=[1])  # width 1 is valid
    with pytest.raises(
        ConfigError, match=r"^DiscriminatorConfig: noise_dim \(1\) and every hidden width \(\[0\]\)"
    ):
        DiscriminatorConfig(hidden=[0])
    with pytest.raises(
        ConfigError, match=r"^DiscriminatorConfig: channels \(0\) and blocks \(4\) must be >= 1, "
    ):
        DiscriminatorConfig(channels=0)
    with pytest.raises(
        ConfigError, match=r"^DiscriminatorConfig.activation='gelu' is unknown; use one of \["
    ):
        DiscriminatorConfig(activation="gelu")
    GANmixConfig(r1_every=1, diversity_every=0, disc_every=1, gen_every=1, duration=30.0, max_duration=30.0)
    cases = [
        ({"r1_every": 0}, r"^GANmixConfig.r1_every=0 must be >= 1$"),
        ({"text_dim": 0}, r"^GANmixConfig.text_dim=0 must be >= 1$"),
        ({"cond_dim": 0}, r"^GANmixConfig.cond_dim=0 must be >= 1$"),
        ({"latent_channels": 0}, r"^GANmixConfig.latent_channels=0 must be >= 1$"),
        ({"diversity_every": -1}, r"^GANmixConfig.diversity_every=-1 is out of range$"),
        ({"disc_every": 0}, r"^GANmixConfig.disc_every=0 is out of range$"),
        ({"gen_every": 0}, r"^GANmixConfig.gen_every=0 is out of range$"),
        ({"duration": 0.0}, r"^GANmixConfig: need 0 < duration \(0.0\) <= max_duration \(30.0\)$"),
        ({"duration": 30.5}, r"^GANmixConfig: need 0 < duration \(30.5\) <= max_duration \(30.0\)$"),
        ({"r1_weight": -1.0}, r"^GANmixConfig: r1_weight \(-1.0\) must be >= 0, label_smoothing \(0.0\) in "),
        ({"label_smoothing": 0.5}, r"label_smoothing \(0.5\) in \[0, 0.5\)$"),
        (
            {"disc_betas": [0.5]},
            r"^GANmixConfig.disc_betas=\[0.5\] must be two numbers in \[0, 1\) \(or null\)$",
        ),
        ({"disc_betas": [0.5, 1.0]}, r"^GANmixConfig.disc_betas=\[0.5, 1.0\] must be two numbers"),
        ({"disc_lr": 0.0}, r"^GANmixConfig.disc_lr=0.0 must be positive \(or null: train.lr\)$"),
        ({"sample_rate": 0}, r"^GANmixConfig.sample_rate=0 must be positive$"),
        ({"mismatch_weight": 10.5}, r"^GANmixConfig.mismatch_weight=10.5 must be in \[0, 10\]"),
        (
            {"loss": "wgan"},
            r"^GANmixConfig.loss='wgan' is unknown; use one of \['bce', 'nonsaturating', 'hinge'\]$",
        ),
        ({"tanh_as": "x"}, r"^GANmixConfig.tanh_as='x' is unknown; use one of \['probability', 'logit'\]$"),
        ({"long_clips": "loop"}, r"^GANmixConfig.long_clips='loop' must be 'tile' or 'error'$"),
    ]
    for kw, match in cases:
        with pytest.raises(ConfigError, match=match):
            GANmixConfig(**kw)
    GANmixConfig(label_smoothing=0.49, r1_weight=0.0, disc_betas=[0.0, 0.999], mismatch_weight=10.0)
    GANmixConfig(sample_rate=1)  # any positive rate is accepted here (the parts check it against the VAE)
    for part, cls in (("generator", "GeneratorConfig"), ("discriminator", "DiscriminatorConfig")):
        with pytest.raises(
            ConfigError, match=rf"^GANmixConfig.{part}: unknown key\(s\) bogus for {cls}; valid keys"
        ):
            GANmixConfig(**{part: {"bogus": 1}})


def test_fixed_length_networks_name_the_lengths_they_take():
    c = config({"arch": "mlp", "hidden": [4]}, {"arch": "mlp", "hidden": [4]})
    gen, disc = Generator(c), Discriminator(c)
    with pytest.raises(
        ModelError,
        match=r"^the fully connected generator makes latents of 7 frames, not 9; generate that length and crop "
        r"or tile it \(GANmix.fit_frames\)$",
    ):
        gen(torch.randn(2, 4), torch.randn(2, 6), 9)
    with pytest.raises(
        ModelError, match=r"^the fully connected discriminator scores latents of 7 frames, got 11$"
    ):
        disc(torch.randn(2, 3, 11), torch.randn(2, 6))  # channels (3) and frames (11) differ
