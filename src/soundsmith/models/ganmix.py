"""GANmix: a text-conditioned GAN in the mel VAE's latent space (the thesis "Synthesizing Audio from Textual Input").

The generator maps Gaussian noise + the text encoder's pooled embedding to a (scaled) VAE latent ``[B, C, T']``;
the frozen VAE decoder and vocoder turn it into audio. The discriminator (a training-only network: the objective
builds it, it is never part of a model directory) scores a latent + the pooled text embedding.

Three generator architectures, chosen by ``arch`` (the discriminator has the first two):

- ``mlp`` (the thesis' published design): fully connected layers, no convolutions. The generator takes noise
  ``[B, noise_dim]`` and outputs the flattened latent of **one fixed length** ``latent_frames`` (the training crop,
  5 s in the thesis preset). Other durations: the pipeline generates that length and crops it, or tiles it along
  time (``GANmix.fit_frames``); the discriminator flattens a latent of exactly ``latent_frames`` frames.
- ``conv`` (the improved preset): 1-D residual convolutions over latent time. The generator takes noise
  ``[B, noise_dim, T']`` (one vector per latent frame) so any length works natively; the text vector enters every
  block as FiLM (scale, shift). The discriminator convolves over time, pools, and adds a projection term
  ``<embed(text), h>`` (Miyato & Koyama's projection discriminator).
- ``transformer`` (generator only; the token-reading preset): the time transformer of
  :mod:`soundsmith.nn.time_transformer` (the latent diffusion family's denoiser network) run once, at the pure-noise
  end of the flow path: noise ``[B, C, T']`` shaped like a latent (``noise_dim`` = latent channels) -> latent
  ``noise - net(noise, t=1, tokens, pooled)``, the flow's one-step estimate of the clean latent. It reads the
  caption's token embeddings through cross-attention (the mlp and conv generators see only the pooled vector) and
  can start from a trained latent diffusion model's denoiser (``generator.init_from``; done by the objective, at
  the start of training). ``generator.guidance``: the guidance scale given to a guidance-distilled network.

Text conditioning (absent from the thesis' slides, required by its title): the pooled embedding ``[B, text_dim]``
is projected to ``cond_dim`` and concatenated to the noise (mlp generator), to the flattened latent (mlp
discriminator), or used as FiLM / projection (conv).

The networks are pure: losses, R1, optimizers and diagnostics live in ``train/objectives/ganmix.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundsmith.audio import MelConfig
from soundsmith.config import as_dataclass
from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.composite import Component
from soundsmith.models.latent_audio import LatentAudioModel
from soundsmith.models.vocoder import check_refine
from soundsmith.nn.time_transformer import LatentDenoiser, LatentDenoiserConfig

ARCHS = ("mlp", "conv")
GENERATOR_ARCHS = (*ARCHS, "transformer")
DISCRIMINATOR_ARCHS = (*ARCHS, "teacher")
ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU, "silu": nn.SiLU}
LOSSES = ("bce", "nonsaturating", "hinge")
TANH_AS = ("probability", "logit")


@dataclass
class GeneratorConfig:
    """The generator: ``arch`` mlp (``hidden`` = widths of the fully connected layers), conv (``channels`` wide,
    ``blocks`` residual blocks of dilated convolutions with ``kernel_size``) or transformer (``channels`` = the
    model width, ``blocks`` layers of ``heads`` attention heads and an MLP ``mlp_ratio`` wide; ``guidance``: the
    guidance scale fed to a guidance-embedded network, None = it has no such input; ``init_from``: a latent
    diffusion model, shipped name or directory, whose denoiser the generator starts from when training begins, or
    a GANmix model with this generator, whose weights it starts from; None = random)."""

    arch: str = "mlp"
    noise_dim: int = 128
    hidden: list[int] = field(default_factory=lambda: [512, 1024])
    channels: int = 256
    blocks: int = 4
    kernel_size: int = 5
    activation: str = "leaky_relu"
    norm: bool = False  # mlp: LayerNorm after each hidden layer
    heads: int = 4
    mlp_ratio: float = 4.0
    guidance: float | None = None
    init_from: str | None = None

    def __post_init__(self) -> None:
        _check_common("GeneratorConfig", self.arch, self.activation, self.noise_dim, self.hidden, GENERATOR_ARCHS)
        _check_conv("GeneratorConfig", self.channels, self.blocks, self.kernel_size)
        if self.arch == "transformer":
            if self.heads < 1 or self.channels % self.heads or (self.channels // self.heads) % 2:
                raise ConfigError(
                    f"GeneratorConfig: channels ({self.channels}) must split into {self.heads} heads of an even size"
                )
            if not self.mlp_ratio > 0:
                raise ConfigError(f"GeneratorConfig.mlp_ratio={self.mlp_ratio} must be > 0")
            if self.guidance is not None and not (math.isfinite(self.guidance) and self.guidance >= 0):
                raise ConfigError(f"GeneratorConfig.guidance={self.guidance} must be a number >= 0 (or null)")
        elif self.init_from is not None or self.guidance is not None:
            raise ConfigError(
                "GeneratorConfig: init_from and guidance are for the transformer generator; "
                f"the {self.arch} generator takes neither (set them to null)"
            )


@dataclass
class DiscriminatorConfig:
    """The discriminator: ``arch`` mlp or conv as the generator's, or teacher (:class:`TeacherDiscriminator`: heads
    ``channels`` wide with ``kernel_size`` convolutions on a frozen latent diffusion denoiser's features after the
    blocks in ``feature_layers`` (1 = the first), reading latents noised to a flow time drawn uniformly from
    ``t_range``; the denoiser is ``teacher_from``, a shipped name or directory, None = ``generator.init_from``;
    ``feature_norm``: each token's features layer-normalised before the heads; it needs the transformer
    generator, whose shape it has); ``output`` tanh (the thesis) or linear;
    ``spectral_norm`` on every trained weight layer; ``dropout`` between mlp layers; ``projection``: text enters
    through the projection term (else concatenated to the input features; the teacher arch always projects)."""

    arch: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [1024, 512])
    channels: int = 256
    blocks: int = 4
    kernel_size: int = 5
    activation: str = "leaky_relu"
    output: str = "tanh"
    spectral_norm: bool = False
    dropout: float = 0.0
    projection: bool = False
    teacher_from: str | None = None
    feature_layers: list[int] = field(default_factory=lambda: [2, 4, 6])
    t_range: list[float] = field(default_factory=lambda: [0.0, 0.8])
    feature_norm: bool = False

    def __post_init__(self) -> None:
        _check_common("DiscriminatorConfig", self.arch, self.activation, 1, self.hidden, DISCRIMINATOR_ARCHS)
        _check_conv("DiscriminatorConfig", self.channels, self.blocks, self.kernel_size)
        if not self.feature_layers or any(int(n) < 1 for n in self.feature_layers):
            raise ConfigError(
                f"DiscriminatorConfig.feature_layers={self.feature_layers} must list blocks of the teacher, from 1"
            )
        if len(self.t_range) != 2 or not 0.0 <= float(self.t_range[0]) <= float(self.t_range[1]) <= 1.0:
            raise ConfigError(f"DiscriminatorConfig.t_range={self.t_range} must be [low, high] within [0, 1]")
        if self.output not in ("tanh", "linear"):
            raise ConfigError(f"DiscriminatorConfig.output={self.output!r} must be 'tanh' or 'linear'")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"DiscriminatorConfig.dropout={self.dropout} must be in [0, 1)")


def _check_common(
    where: str, arch: str, activation: str, noise_dim: int, hidden: list[int], archs: Sequence[str] = ARCHS
) -> None:
    if arch not in archs:
        raise ConfigError(f"{where}.arch={arch!r} is unknown; use one of {list(archs)}")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"{where}.activation={activation!r} is unknown; use one of {list(ACTIVATIONS)}")
    if int(noise_dim) < 1 or not hidden or any(int(h) < 1 for h in hidden):
        raise ConfigError(f"{where}: noise_dim ({noise_dim}) and every hidden width ({hidden}) must be >= 1")


def _check_conv(where: str, channels: int, blocks: int, kernel_size: int) -> None:
    if channels < 1 or blocks < 1 or kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(
            f"{where}: channels ({channels}) and blocks ({blocks}) must be >= 1, kernel_size ({kernel_size}) odd"
        )


@dataclass
class GANmixConfig:
    """A GANmix model: generator and discriminator, the frozen parts, and the adversarial game's settings.

    ``latent_channels`` must equal the VAE's; ``latent_frames`` is the training crop's latent length (the mlp
    generator's fixed output length; for conv the default length). ``duration`` is the crop in seconds that gives
    it (checked against the VAE on first use). ``long_clips``: how the mlp generator makes a clip longer than its
    fixed length: ``tile`` (repeat the latent along time) or ``error``.

    The game (read by the objective; the networks ignore it): ``loss`` bce (the thesis; with a tanh discriminator
    ``tanh_as`` says how its output in [-1, 1] becomes a probability: ``probability`` = (1 + y) / 2, ``logit`` = the
    output taken as a logit, i.e. probabilities held within sigmoid(+-1)), nonsaturating (softplus, on logits) or
    hinge; ``r1_weight`` (gamma of the R1 penalty on real latents, 0 = off) every ``r1_every`` discriminator
    steps; ``disc_lr`` (None = ``train.lr``), ``disc_betas`` (None = ``train.betas``); ``disc_every`` /
    ``gen_every`` (cadence: update every n steps); ``clip_grad_norm`` for both (None = ``train.clip_grad_norm``;
    0 = off); ``label_smoothing`` (real target 1 - s for bce); ``mismatch_weight`` (the matching-aware term: the
    discriminator also rejects real latents under another clip's caption; 0 = off); ``mode_seeking_weight`` (the
    mode-seeking term of MSGAN, Mao et al. 2019: the generator is rewarded for two noises giving two different
    latents for the same caption; 0 = off); ``diversity_every`` (generator steps between two-draw diversity
    measurements, 0 = off). ``teacher_weight`` (0 = off) weighs the teacher term: the mean squared distance between
    the generator's latent and a teacher's (the latent diffusion model's) for the same noise and caption, drawn from
    the pairs file ``teacher_pairs`` (``scripts/ganmix_teacher_pairs.py``; the conv generator's ``noise_dim`` must
    equal the latent channels, the teacher's noise being a latent), ``teacher_batch`` pairs a step (None = the
    batch size); ``teacher_heldout_pairs``, a second pairs file the run does not train on, is scored at validation
    (``g_teacher_heldout``: where the teacher term overfits its pairs, the two part). ``score_weight`` (0 = off)
    weighs the score term (the real-score half of distribution matching distillation, Yin et al. 2024): the
    generator's latent, noised to a flow time drawn from ``score_t_range``, is denoised by the frozen denoiser of
    the latent diffusion model ``score_from`` (None = ``generator.init_from``) guided at ``score_guidance`` (in one
    pass when that denoiser takes a guidance input, else in two), and the latent is pulled toward that estimate
    (needs the transformer generator, whose captions' tokens the denoiser reads). ``fake_score`` adds DMD's other
    half: a copy of that denoiser, trained (optimizer 2, LR ``fake_score_lr``, None = ``train.lr``) on the
    generator's own latents, denoises the same noised latent, and the pull is toward the teacher's estimate and
    away from the copy's, so that only where the generated latents differ from what the teacher expects is there
    a pull (DMD's distribution matching gradient). ``vocoder_refine``: rounds of
    :func:`soundsmith.models.vocoder.refine_to_mel` on every decoded clip (0 = the vocoder's output as it is).
    """

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    vae: str = "vae"
    vocoder: str = "vocoder"
    text_encoder: str = "minilm"
    text_dim: int = 384
    cond_dim: int = 128
    latent_channels: int = 128
    latent_frames: int = 126
    sample_rate: int = 16000
    duration: float = 5.0
    max_duration: float = 30.0
    long_clips: str = "tile"
    loss: str = "bce"
    tanh_as: str = "probability"
    r1_weight: float = 0.0
    r1_every: int = 1
    disc_lr: float | None = None
    disc_betas: list[float] | None = None
    disc_every: int = 1
    gen_every: int = 1
    clip_grad_norm: float | None = 0.0
    label_smoothing: float = 0.0
    mismatch_weight: float = 0.0
    mode_seeking_weight: float = 0.0
    diversity_every: int = 1
    teacher_weight: float = 0.0
    teacher_pairs: str | None = None
    teacher_batch: int | None = None
    teacher_heldout_pairs: str | None = None
    score_weight: float = 0.0
    score_from: str | None = None
    score_guidance: float = 3.0
    score_t_range: list[float] = field(default_factory=lambda: [0.02, 0.98])
    fake_score: bool = False
    fake_score_lr: float | None = None
    vocoder_refine: int = 0

    def _check_score(self) -> None:
        """The score term's settings (``score_*``): one-line errors naming the field."""
        if not 0.0 <= self.score_weight <= 100.0:
            raise ConfigError(f"GANmixConfig.score_weight={self.score_weight} must be in [0, 100] (0 = off)")
        lo_hi = self.score_t_range
        if len(lo_hi) != 2 or not 0.0 < float(lo_hi[0]) <= float(lo_hi[1]) <= 1.0:
            raise ConfigError(f"GANmixConfig.score_t_range={lo_hi} must be [low, high] with 0 < low <= high <= 1")
        if not (math.isfinite(self.score_guidance) and self.score_guidance >= 0):
            raise ConfigError(f"GANmixConfig.score_guidance={self.score_guidance} must be a number >= 0")
        if self.fake_score and self.score_weight <= 0:
            raise ConfigError(
                "GANmixConfig.fake_score: the fake score is the second half of the score term; set score_weight > 0 "
                "(or fake_score: false)"
            )
        if self.fake_score_lr is not None and not (math.isfinite(self.fake_score_lr) and self.fake_score_lr > 0):
            raise ConfigError(f"GANmixConfig.fake_score_lr={self.fake_score_lr} must be a positive number (or null)")
        if self.score_weight > 0:
            if self.generator.arch != "transformer":
                raise ConfigError(
                    "GANmixConfig.score_weight > 0: the score term's denoiser reads the captions' tokens, which only "
                    f"the transformer generator's batches carry; set generator.arch: transformer (not "
                    f"{self.generator.arch})"
                )
            if not (self.score_from or self.generator.init_from):
                raise ConfigError(
                    "GANmixConfig.score_weight > 0 needs a latent diffusion model to score with: set score_from "
                    "(or generator.init_from)"
                )

    def __post_init__(self) -> None:
        check_refine(self.vocoder_refine, "GANmixConfig.vocoder_refine")
        self.generator = as_dataclass(GeneratorConfig, self.generator, "GANmixConfig.generator")
        self.discriminator = as_dataclass(
            DiscriminatorConfig, self.discriminator, "GANmixConfig.discriminator"
        )
        for name in ("text_dim", "cond_dim", "latent_channels", "latent_frames", "r1_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"GANmixConfig.{name}={getattr(self, name)!r} must be >= 1")
        for name in ("disc_every", "gen_every", "diversity_every"):
            if int(getattr(self, name)) < (0 if name == "diversity_every" else 1):
                raise ConfigError(f"GANmixConfig.{name}={getattr(self, name)!r} is out of range")
        if self.generator.arch == "transformer" and self.generator.noise_dim != self.latent_channels:
            raise ConfigError(
                f"GANmixConfig: the transformer generator's noise is a latent, so generator.noise_dim "
                f"({self.generator.noise_dim}) must equal latent_channels ({self.latent_channels})"
            )
        if self.discriminator.arch == "teacher":
            g, d = self.generator, self.discriminator
            if g.arch != "transformer":
                raise ConfigError(
                    "GANmixConfig: the teacher discriminator reads a latent diffusion denoiser of the transformer "
                    f"generator's shape; set generator.arch: transformer (not {g.arch})"
                )
            if not (d.teacher_from or g.init_from):
                raise ConfigError(
                    "GANmixConfig: the teacher discriminator needs a denoiser's weights: set "
                    "discriminator.teacher_from or generator.init_from to a latent diffusion model"
                )
            if self.r1_weight > 0:
                raise ConfigError(
                    f"GANmixConfig: r1_weight={self.r1_weight} with the teacher discriminator: R1's gradient "
                    "penalty would differentiate the denoiser's attention twice, which torch's CPU kernel does "
                    "not do; set r1_weight: 0 (LADD uses no R1)"
                )
            if max(d.feature_layers) > g.blocks:
                raise ConfigError(
                    f"GANmixConfig: discriminator.feature_layers={d.feature_layers} reach past the teacher's "
                    f"{g.blocks} blocks (generator.blocks)"
                )
        if self.loss not in LOSSES:
            raise ConfigError(f"GANmixConfig.loss={self.loss!r} is unknown; use one of {list(LOSSES)}")
        if self.tanh_as not in TANH_AS:
            raise ConfigError(f"GANmixConfig.tanh_as={self.tanh_as!r} is unknown; use one of {list(TANH_AS)}")
        if self.long_clips not in ("tile", "error"):
            raise ConfigError(f"GANmixConfig.long_clips={self.long_clips!r} must be 'tile' or 'error'")
        if not (0 < self.duration <= self.max_duration):
            raise ConfigError(
                f"GANmixConfig: need 0 < duration ({self.duration}) <= max_duration ({self.max_duration})"
            )
        if not 0.0 <= self.mismatch_weight <= 10.0:
            raise ConfigError(
                f"GANmixConfig.mismatch_weight={self.mismatch_weight} must be in [0, 10] (0 = off; GAN-CLS uses 1)"
            )
        if not 0.0 <= self.mode_seeking_weight <= 10.0:
            raise ConfigError(
                f"GANmixConfig.mode_seeking_weight={self.mode_seeking_weight} must be in [0, 10] (0 = off; MSGAN "
                "uses 1)"
            )
        if not 0.0 <= self.teacher_weight <= 100.0:
            raise ConfigError(f"GANmixConfig.teacher_weight={self.teacher_weight} must be in [0, 100] (0 = off)")
        if self.teacher_batch is not None and not 1 <= self.teacher_batch <= 4096:
            raise ConfigError(
                f"GANmixConfig.teacher_batch={self.teacher_batch} must be in [1, 4096] (None = the batch size)"
            )
        if self.teacher_weight > 0 and not self.teacher_pairs:
            raise ConfigError(
                "GANmixConfig.teacher_weight > 0 needs teacher_pairs: a pairs file made by "
                "scripts/ganmix_teacher_pairs.py (or set teacher_weight=0)"
            )
        self._check_score()
        if self.r1_weight < 0 or not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(
                f"GANmixConfig: r1_weight ({self.r1_weight}) must be >= 0, label_smoothing "
                f"({self.label_smoothing}) in [0, 0.5)"
            )
        if self.disc_betas is not None and (
            len(self.disc_betas) != 2 or not all(0.0 <= float(b) < 1.0 for b in self.disc_betas)
        ):
            raise ConfigError(
                f"GANmixConfig.disc_betas={self.disc_betas} must be two numbers in [0, 1) (or null)"
            )
        if self.disc_lr is not None and not self.disc_lr > 0:
            raise ConfigError(f"GANmixConfig.disc_lr={self.disc_lr} must be positive (or null: train.lr)")
        if self.sample_rate <= 0:
            raise ConfigError(f"GANmixConfig.sample_rate={self.sample_rate} must be positive")


# --- the networks ---------------------------------------------------------------------------------------------


def _mlp(widths: Sequence[int], activation: str, norm: bool = False, dropout: float = 0.0) -> nn.Sequential:
    """Linear -> (LayerNorm) -> activation -> (dropout) for each consecutive pair of ``widths``."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers.append(nn.Linear(a, b))
        if norm:
            layers.append(nn.LayerNorm(b))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """Dilated 1-D conv residual block over time, FiLM-conditioned: ``x [B, C, T], cond [B, D] -> [B, C, T]``."""

    def __init__(
        self, channels: int, kernel_size: int, dilation: int, cond_dim: int, activation: str
    ) -> None:
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)
        self.film = nn.Linear(cond_dim, 2 * channels) if cond_dim else None
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        h = self.conv1(self.act(x))
        if self.film is not None and cond is not None:
            scale, shift = self.film(cond)[:, :, None].chunk(2, dim=1)  # [B, C, 1] each
            h = h * (1 + scale) + shift
        return x + self.conv2(self.act(h))


def denoiser_config(c: GANmixConfig) -> LatentDenoiserConfig:
    """The time transformer of the transformer generator (and of the teacher discriminator's frozen copy)."""
    g = c.generator
    return LatentDenoiserConfig(
        latent_channels=c.latent_channels,
        latent_bins=1,
        d_model=g.channels,
        layers=g.blocks,
        heads=g.heads,
        mlp_ratio=g.mlp_ratio,
        text_dim=c.text_dim,
        text_encoder=c.text_encoder,
        prediction="flow",
        guidance_embed=g.guidance is not None,
    )


class Generator(nn.Module):
    """``forward(noise, pooled [B, text_dim], frames, tokens, mask) -> latent [B, latent_channels, frames]``.

    mlp: ``noise [B, noise_dim]``; only ``frames == latent_frames`` (its fixed output length).
    conv: ``noise [B, noise_dim, frames]``; any ``frames``.
    transformer: ``noise [B, latent_channels, frames]``; any ``frames``; needs the caption's ``tokens [B, L,
    text_dim]`` and their ``mask [B, L]`` (the others ignore them).
    """

    def __init__(self, c: GANmixConfig) -> None:
        super().__init__()
        g, self.latent_channels, self.latent_frames = c.generator, c.latent_channels, c.latent_frames
        self.arch, self.noise_dim, self.guidance = g.arch, g.noise_dim, g.guidance
        if g.arch == "transformer":
            self.net = LatentDenoiser(denoiser_config(c))
            return
        self.text = nn.Linear(c.text_dim, c.cond_dim)  # pooled text embedding -> conditioning vector
        if g.arch == "mlp":
            self.body = _mlp([g.noise_dim + c.cond_dim, *g.hidden], g.activation, g.norm)
            self.out = nn.Linear(g.hidden[-1], c.latent_channels * c.latent_frames)
        else:
            self.inp = nn.Conv1d(g.noise_dim, g.channels, 1)
            self.blocks = nn.ModuleList(
                ResBlock(g.channels, g.kernel_size, 2 ** (i % 4), c.cond_dim, g.activation)
                for i in range(g.blocks)
            )
            self.act = ACTIVATIONS[g.activation]()
            self.out = nn.Conv1d(g.channels, c.latent_channels, 1)

    def noise_shape(self, frames: int) -> tuple[int, ...]:
        """The shape of one clip's noise (no batch axis): ``(noise_dim,)`` (mlp) or ``(noise_dim, frames)``."""
        return (self.noise_dim,) if self.arch == "mlp" else (self.noise_dim, frames)

    def forward(
        self,
        noise: Tensor,
        pooled: Tensor,
        frames: int | None = None,
        tokens: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        frames = self.latent_frames if frames is None else frames
        if self.arch == "transformer":
            return self._transformer(noise, pooled, tokens, mask)
        cond = self.text(pooled)  # [B, cond_dim]
        if self.arch == "mlp":
            if frames != self.latent_frames:
                raise ModelError(
                    f"the fully connected generator makes latents of {self.latent_frames} frames, not {frames}; "
                    "generate that length and crop or tile it (GANmix.fit_frames)"
                )
            h = self.body(torch.cat([noise, cond], dim=-1))  # [B, hidden]
            return self.out(h).view(-1, self.latent_channels, self.latent_frames)  # [B, C, T']
        h = self.inp(noise)  # [B, ch, T']
        for block in self.blocks:
            h = block(h, cond)
        return self.out(self.act(h))  # [B, C, T']

    def _transformer(self, noise: Tensor, pooled: Tensor, tokens: Tensor | None, mask: Tensor | None) -> Tensor:
        """One pass at ``t = 1`` of the flow path ``x_t = (1 - t) x0 + t noise``: ``x0 = noise - v``."""
        if tokens is None or mask is None:
            raise ModelError(
                "the transformer generator reads the caption's tokens: pass tokens and mask "
                "(GANmix.text_condition gives them)"
            )
        B = noise.shape[0]
        t = torch.ones(B, device=noise.device)
        guidance = None if self.guidance is None else torch.full((B,), float(self.guidance), device=noise.device)
        v = self.net(noise[:, :, None, :], t, tokens, mask, pooled, guidance=guidance)  # [B, C, 1, T']
        return noise - v[:, :, 0, :]


class Discriminator(nn.Module):
    """``forward(latent [B, latent_channels, T'], pooled [B, text_dim]) -> score [B]`` (in [-1, 1] with a tanh
    output). mlp: ``T'`` must be ``latent_frames``; conv: any ``T'`` (mean-pooled over time)."""

    def __init__(self, c: GANmixConfig) -> None:
        super().__init__()
        d = c.discriminator
        self.arch, self.projection, self.tanh = d.arch, d.projection, d.output == "tanh"
        self.latent_frames = c.latent_frames
        self.text = nn.Linear(c.text_dim, c.cond_dim)
        concat = 0 if d.projection else c.cond_dim
        if d.arch == "mlp":
            self.body = _mlp(
                [c.latent_channels * c.latent_frames + concat, *d.hidden], d.activation, False, d.dropout
            )
            width = d.hidden[-1]
        else:
            self.inp = nn.Conv1d(c.latent_channels, d.channels, 3, padding=1)
            self.blocks = nn.ModuleList(
                ResBlock(d.channels, d.kernel_size, 2 ** (i % 4), 0, d.activation) for i in range(d.blocks)
            )
            self.act = ACTIVATIONS[d.activation]()
            width = d.channels + concat
        self.out = nn.Linear(width, 1)
        self.embed = nn.Linear(c.cond_dim, width, bias=False) if d.projection else None
        if d.spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, (nn.Linear, nn.Conv1d)) and module is not self.text:
                    nn.utils.parametrizations.spectral_norm(module)

    def features(self, latent: Tensor, cond: Tensor) -> Tensor:
        """The penultimate features ``[B, width]``: the input of the output layer and of the projection term."""
        if self.arch == "mlp":
            if latent.shape[-1] != self.latent_frames:
                raise ModelError(
                    f"the fully connected discriminator scores latents of {self.latent_frames} frames, "
                    f"got {latent.shape[-1]}"
                )
            x = latent.flatten(1)  # [B, C * T']
            return self.body(x if self.projection else torch.cat([x, cond], dim=-1))
        h = self.inp(latent)  # [B, ch, T']
        for block in self.blocks:
            h = block(h)
        h = self.act(h).mean(dim=-1)  # [B, ch]
        return h if self.projection else torch.cat([h, cond], dim=-1)

    def forward(self, latent: Tensor, pooled: Tensor) -> Tensor:
        cond = self.text(pooled)  # [B, cond_dim]
        h = self.features(latent, cond)
        score = self.out(h)[:, 0]  # [B]
        if self.embed is not None:
            score = score + (self.embed(cond) * h).sum(dim=-1)
        return torch.tanh(score) if self.tanh else score


class TeacherDiscriminator(nn.Module):
    """``forward(noisy [B, latent_channels, T'], t [B], pooled [B, text_dim], tokens [B, L, text_dim], mask [B, L])
    -> score [B]``: a discriminator built on a frozen latent diffusion denoiser (LADD, Sauer et al. 2024). The
    denoiser reads a latent noised to flow time ``t`` (the objective draws both) with the caption; on its token
    features after each block of ``feature_layers`` a head (two convolutions over latent time) gives per-frame
    features ``f``, scored ``out(f) + <text(pooled), f>`` (the projection term) and averaged over frames and
    heads. Only the heads and the text projection train; the denoiser's weights are copied in by the objective
    (``teacher_from``) and stay fixed, and it stays in eval mode."""

    def __init__(self, c: GANmixConfig) -> None:
        super().__init__()
        g, d = c.generator, c.discriminator
        self.teacher = LatentDenoiser(denoiser_config(c)).requires_grad_(False).eval()
        self.layers = sorted({int(n) for n in d.feature_layers})
        self.guidance, self.tanh = g.guidance, d.output == "tanh"
        # the residual stream's features are large and unnormalised: optionally each token's normalised first
        self.norm = nn.LayerNorm(g.channels, elementwise_affine=False) if d.feature_norm else nn.Identity()
        pad = d.kernel_size // 2
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(g.channels, d.channels, d.kernel_size, padding=pad),
                ACTIVATIONS[d.activation](),
                nn.Conv1d(d.channels, d.channels, d.kernel_size, padding=pad),
                ACTIVATIONS[d.activation](),
            )
            for _ in self.layers
        )
        self.outs = nn.ModuleList(nn.Conv1d(d.channels, 1, 1) for _ in self.layers)
        self.text = nn.Linear(c.text_dim, d.channels)
        if d.spectral_norm:
            for module in [*self.heads.modules(), *self.outs]:
                if isinstance(module, nn.Conv1d):
                    nn.utils.parametrizations.spectral_norm(module)

    def train(self, mode: bool = True) -> TeacherDiscriminator:
        super().train(mode)
        self.teacher.eval()  # frozen: no dropout or other training behaviour, whatever the heads do
        return self

    def forward(self, noisy: Tensor, t: Tensor, pooled: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        B = noisy.shape[0]
        guidance = None if self.guidance is None else torch.full((B,), float(self.guidance), device=noisy.device)
        states = self.teacher.hidden_states(noisy[:, :, None, :], t, tokens, mask, pooled, guidance, self.layers[-1])
        cond = self.text(pooled)[:, :, None]  # [B, ch, 1]
        scores = []
        for layer, head, out in zip(self.layers, self.heads, self.outs, strict=True):
            f = head(self.norm(states[layer - 1]).transpose(1, 2))  # [B, ch, T']
            scores.append((out(f)[:, 0] + (cond * f).sum(dim=1)).mean(dim=-1))  # [B]
        score = torch.stack(scores).mean(dim=0)
        return torch.tanh(score) if self.tanh else score


def build_discriminator(c: GANmixConfig) -> nn.Module:
    """The discriminator ``c.discriminator.arch`` names (the objective builds it; the model holds the generator)."""
    return TeacherDiscriminator(c) if c.discriminator.arch == "teacher" else Discriminator(c)


# --- the composite: generator + frozen VAE, vocoder and text encoder ------------------------------------------


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between two noise tensors of one shape (each row flattened); linear when parallel."""
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    cos = (F.normalize(fa, dim=-1) * F.normalize(fb, dim=-1)).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    lin = (1 - t) * fa + t * fb
    sph = (torch.sin((1 - t) * omega) * fa + torch.sin(t * omega) * fb) / so.clamp(min=1e-12)
    out = torch.where(so > 1e-6, sph, lin)
    return out.to(a.dtype).view_as(a)


class GANmix(LatentAudioModel):
    """Text-to-audio GAN in the VAE latent space: ``forward(noise, pooled, frames)`` is the generator; the rest
    moves between latents and audio.

    Components (``GANmix(config, components={...})``; any left out come from the config): ``vae``, ``vocoder``,
    ``text_encoder``, held as in :class:`~soundsmith.models.latent_audio.LatentAudioModel`. Latents are the VAE's
    ``[B, C_vae, T']`` times its ``scale_factor``. The discriminator is not a component: the objective owns it
    (training only).
    """

    def __init__(self, config: GANmixConfig, components: Mapping[str, Component] | None = None) -> None:
        super().__init__(config, components)
        self.generator = Generator(config)

    def _check_family(self, vae: nn.Module, mel: MelConfig) -> None:
        c = self.config
        if vae.config.latent_channels != c.latent_channels:
            raise ModelError(
                f"the VAE has {vae.config.latent_channels} latent channels but GANmix expects "
                f"latent_channels={c.latent_channels}; match them"
            )
        expected = int(vae.latent_frames(round(c.duration * c.sample_rate) // mel.hop_length + 1))
        if expected != c.latent_frames:
            raise ModelError(
                f"a {c.duration:g} s crop is {expected} latent frames with this VAE, but latent_frames="
                f"{c.latent_frames}; set model.latent_frames={expected}"
            )

    def _text_dim(self) -> tuple[int, str]:
        return self.config.text_dim, "text_dim"

    def fit_frames(self, latents: Tensor, frames: int) -> Tensor:
        """A latent ``[B, C, T0]`` made ``frames`` long: cropped, or tiled along time (``long_clips: tile``)."""
        T0 = latents.shape[-1]
        if frames <= T0:
            return latents[..., :frames]
        if self.config.long_clips == "error":
            raise ModelError(
                f"this GANmix model makes {self.config.duration:g} s clips; ask for at most that, or set "
                "long_clips: tile"
            )
        return latents.repeat(1, 1, math.ceil(frames / T0))[..., :frames]

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> Tensor:
        """Prompts -> pooled embeddings ``[B, text_dim]`` on the model's device."""
        return self.pooled_text(prompts)

    @property
    def reads_tokens(self) -> bool:
        """Whether the generator reads the caption's tokens (the transformer) or only its pooled embedding."""
        return self.config.generator.arch == "transformer"

    @torch.no_grad()
    def text_condition(self, prompts: Sequence[str]) -> dict[str, Tensor]:
        """What the generator reads of the prompts: ``{"pooled": [B, D]}``, plus ``"tokens" [B, L, D]`` and
        ``"mask" [B, L]`` when it reads tokens (:attr:`reads_tokens`); on the model's device."""
        if not self.reads_tokens:
            return {"pooled": self.pooled_text(prompts)}
        tokens, mask, pooled = self.text_embeddings(prompts)
        return {"pooled": pooled, "tokens": tokens, "mask": mask}

    def noise(self, seed: int, frames: int | None = None) -> Tensor:
        """The noise of one clip for ``seed``: ``[1, *noise_shape]`` (drawn on the CPU, then moved)."""
        frames = self.config.latent_frames if frames is None else frames
        shape = (1, *self.generator.noise_shape(frames))
        return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed))).to(self._device())

    def generation_frames(self, num_samples: int) -> int:
        """The latent length the generator makes for a clip: its fixed length (mlp) or the clip's (conv)."""
        if self.config.generator.arch == "mlp":
            return self.config.latent_frames
        return self.latent_frames(num_samples)

    def forward(
        self,
        noise: Tensor,
        pooled: Tensor,
        frames: int | None = None,
        tokens: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """The generator: noise + pooled text ``[B, text_dim]`` (+ the caption's ``tokens [B, L, text_dim]`` and
        ``mask [B, L]`` for the transformer) -> scaled latents ``[B, C, frames]``."""
        return self.generator(noise, pooled, frames, tokens, mask)
