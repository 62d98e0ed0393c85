"""GANmix training: the adversarial game between the generator (in the model) and a discriminator (here).

One step: audio ``[B, T]`` -> log-mel -> frozen VAE posterior mean x its scale factor -> real latents
``[B, C, T']`` (the fully connected preset crops or tiles them to ``latent_frames``); captions -> the frozen text
encoder's pooled embedding (cached by caption). Two optimizers (``OptimizerSpec``): 0 = the generator (``losses``
returns its adversarial loss), 1 = the discriminator (real vs generated, plus the R1 penalty when set). Noise comes
from a generator seeded by ``(seed, global_step, rank)``, so a recomputed step draws the same numbers.

Losses (``model.config.loss``), with ``y`` the discriminator's output:

- ``bce`` (the thesis): binary cross-entropy. With a tanh output (the thesis' discriminator) ``tanh_as`` reads
  ``y`` in [-1, 1] as a probability ``(1 + y) / 2`` (``probability``) or as a logit (``logit``); with a linear
  output ``y`` is a logit. D: ``BCE(real, 1 - smoothing) + BCE(fake, 0)``; G: ``BCE(fake, 1)``.
- ``nonsaturating``: ``softplus(-y_real) + softplus(y_fake)`` / ``softplus(-y_fake)`` (Goodfellow's
  non-saturating game on logits).
- ``hinge``: ``relu(1 - y_real) + relu(1 + y_fake)`` / ``-y_fake``.

``mismatch_weight`` > 0 adds the matching-aware term (Reed et al. 2016, GAN-CLS): the discriminator also rejects
real latents scored under another clip's caption (the batch's captions rolled by one), weighted by it, so that a
latent that sounds real but says the wrong thing is scored down (diagnostic ``acc_mismatch``).

``mode_seeking_weight`` > 0 adds MSGAN's mode-seeking term (Mao et al. 2019) to the generator's loss:
``weight / (ratio + 1e-5)`` with ``ratio = mean|G(z1, c) - G(z2, c)| / mean|z1 - z2|`` over a second draw of
noise for the same captions (one more generator pass), so noises that differ must give latents that differ
(diagnostic ``mode_seeking``: the ratio).

``teacher_weight`` > 0 adds the teacher term to the generator's loss: ``weight x MSE(G(z, c), x_teacher)`` over a
batch of pairs drawn (seeded by step) from the file ``teacher_pairs`` (:func:`load_teacher_pairs`), where
``x_teacher`` is the latent diffusion model's latent for noise ``z`` and caption ``c`` (knowledge distillation of
its sampler into one pass, Luhman & Luhman 2021; the adversarial game on real latents stays; diagnostic
``teacher``); ``teacher_batch`` pairs a step (default: the batch size). With ``teacher_heldout_pairs`` set,
validation also reports ``g_teacher_heldout``, the term on pairs the run does not train on.

``score_weight`` > 0 adds the score term (the real-score half of distribution matching distillation, DMD: Yin
et al. 2024): this step's generated latents ``x``, noised to ``x_t = (1 - t) x + t noise`` with ``t`` drawn from
``score_t_range``, are denoised by the frozen denoiser of ``score_from`` (else ``generator.init_from``) guided at
``score_guidance`` (one pass for a guidance-distilled denoiser, two for a plain one: its dropped-caption branch is
the unconditional); with the estimate ``x0 = x_t - t v`` the generator's gradient is ``(x - x0)`` divided by its
mean magnitude per clip (DMD's normalisation), applied as ``0.5 x MSE(x, stopgrad(x - grad))`` x the weight. It
pulls a latent toward what the teacher hears in it, for its caption. Diagnostic ``score_gap``: the mean
``|x - x0|`` before the normalisation. The denoiser is loaded when the objective is built and is no module of it
(not in checkpoints, not optimised).

``fake_score`` adds DMD's second half: ``self.fake_net``, a trainable copy of that denoiser, learns the flow of the
generator's own latents (optimizer 2, LR ``fake_score_lr``: ``x_t`` from this step's generated latents, detached,
and the velocity loss ``MSE(v, noise - x)`` at a flow time drawn from ``score_t_range``, run conditionally: guidance
input 1 for a guidance-distilled copy, the caption kept for a plain one), and the generator's gradient becomes
``(x0_fake - x0_real)`` (the copy's estimate minus the teacher's at the same ``x_t``), normalised as above: where the
generated latents already are what the teacher expects, the two estimates agree and nothing pulls (diagnostic
``fake_gap``: their mean ``|x0_fake - x0_real|``). The copy is a module of the objective: it is checkpointed and
resumed with the rest.

The transformer generator (``generator.arch: transformer``) also reads the captions' token embeddings
(``batch["text_tokens"] [B, L, D]``, ``batch["text_mask"] [B, L]``, cached by caption with the pooled vector);
with ``generator.init_from`` set, it starts from that latent diffusion model's denoiser (or that GANmix model's
generator), copied in when the objective is built (a resumed run then loads its own checkpoint over it).

The teacher discriminator (``discriminator.arch: teacher``, LADD: Sauer et al. 2024) reads latents noised to a
flow time ``t`` drawn uniformly from ``discriminator.t_range`` (``x_t = (1 - t) x + t noise``, both drawn per step
and per call: real, fake, mismatch, generator) with the caption's tokens; its frozen denoiser (``teacher_from``,
else ``generator.init_from``, which must then be a latent diffusion model) is copied in when the objective is
built and stays out of the optimizer.

Diagnostics, logged by the engine with each step's losses (``train/...``; the discriminator's with suffix ``_1``):
``d_real`` / ``d_fake`` (mean scores), ``acc_real`` / ``acc_fake`` (share of real scored > 0 and of fake scored
< 0: the discriminator's accuracy), ``r1``, ``diversity`` (per-prompt output diversity: RMS difference between two
draws for the same captions over ``sqrt(2)`` x the real latents' std; ~1 = as varied as the data, 0 = mode
collapse), and the engine's ``grad_norm`` / ``grad_norm_1`` and NaN counters. Validation's ``loss`` (the number
``best.ckpt`` follows) is :func:`latent_moment_distance`, with the players' losses as ``g_*`` / ``d_*``.
"""

from __future__ import annotations

import copy
import json
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from soundsmith.errors import TrainingError
from soundsmith.models.ganmix import GANmix, TeacherDiscriminator, build_discriminator
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives.base import CaptionCache, Objective, pad_tokens
from soundsmith.train.objectives.clap import caption_of
from soundsmith.train.optimizers import OptimizerSpec

MODE_SEEKING_EPS = 1e-5  # MSGAN's epsilon in weight / (ratio + eps)


def _bce_input(y: Tensor, tanh: bool, tanh_as: str) -> tuple[Tensor, bool]:
    """``(tensor, is_probability)``: a tanh output read as a probability, else ``y`` as a logit."""
    if tanh and tanh_as == "probability":
        return (1.0 + y) / 2.0, True
    return y, False


def _bce(y: Tensor, target: float, tanh: bool, tanh_as: str) -> Tensor:
    x, is_prob = _bce_input(y, tanh, tanh_as)
    t = torch.full_like(x, target)
    # F.binary_cross_entropy clamps log(p) at -100 (as torch.nn.BCELoss, which the thesis' PyTorch code used)
    return F.binary_cross_entropy(x, t) if is_prob else F.binary_cross_entropy_with_logits(x, t)


def discriminator_loss(
    real: Tensor,
    fake: Tensor,
    loss: str,
    tanh: bool = False,
    tanh_as: str = "probability",
    smoothing: float = 0.0,
) -> Tensor:
    """The discriminator's loss from its scores on real ``[B]`` and generated ``[B]`` latents (see the module)."""
    if loss == "bce":
        real_term = _bce(real, 1.0 - smoothing, tanh, tanh_as)
    elif loss == "nonsaturating":
        real_term = F.softplus(-real).mean()
    elif loss == "hinge":
        real_term = F.relu(1.0 - real).mean()
    else:
        raise TrainingError(f"unknown GAN loss {loss!r}; use bce, nonsaturating or hinge")
    return real_term + rejection_loss(fake, loss, tanh, tanh_as)


def rejection_loss(scores: Tensor, loss: str, tanh: bool = False, tanh_as: str = "probability") -> Tensor:
    """The discriminator's loss for scoring ``[B]`` inputs it should reject: generated latents, or real latents
    under a caption that is not theirs (the matching-aware term)."""
    if loss == "bce":
        return _bce(scores, 0.0, tanh, tanh_as)
    if loss == "nonsaturating":
        return F.softplus(scores).mean()
    if loss == "hinge":
        return F.relu(1.0 + scores).mean()
    raise TrainingError(f"unknown GAN loss {loss!r}; use bce, nonsaturating or hinge")


def generator_loss(fake: Tensor, loss: str, tanh: bool = False, tanh_as: str = "probability") -> Tensor:
    """The generator's loss from the discriminator's scores on its latents ``[B]``."""
    if loss == "bce":
        return _bce(fake, 1.0, tanh, tanh_as)
    if loss == "nonsaturating":
        return F.softplus(-fake).mean()
    if loss == "hinge":
        return -fake.mean()
    raise TrainingError(f"unknown GAN loss {loss!r}; use bce, nonsaturating or hinge")


def r1_penalty(scores: Tensor, real: Tensor) -> Tensor:
    """Mescheder et al.'s R1: mean over the batch of ``|d score / d real|^2`` (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def latent_moment_distance(fake: Tensor, real: Tensor) -> Tensor:
    """Mean over latent channels of ``(mean_f - mean_r)^2 + (std_f - std_r)^2``, statistics over batch and time of
    ``[B, C, T']`` latents: a cheap, discriminator-free check that the generated latents match the data's first two
    moments (0 when they do; a collapsed generator shows a too-small std)."""
    f, r = fake.float().transpose(0, 1).flatten(1), real.float().transpose(0, 1).flatten(1)  # [C, B * T']
    return ((f.mean(1) - r.mean(1)) ** 2 + (f.std(1) - r.std(1)) ** 2).mean()


@dataclass
class TeacherPairs:
    """``latents [N, C, T']`` (the teacher's), ``seeds [N]`` (pair ``i``'s noise: :meth:`noise`), ``captions``."""

    latents: Tensor
    seeds: Tensor
    captions: list[str]

    def noise(self, index: int) -> Tensor:
        """Pair ``index``'s noise ``[C, T']``: what the teacher started from."""
        gen = torch.Generator().manual_seed(int(self.seeds[index]))
        return torch.randn(tuple(self.latents.shape[1:]), generator=gen)


def load_teacher_pairs(
    path: str | Path, noise_shape: Callable[[int], tuple[int, ...]], latent_channels: int
) -> TeacherPairs:
    """The pairs file made by ``scripts/ganmix_teacher_pairs.py`` (safetensors: ``latents``, ``seeds``, captions in
    the metadata), checked against ``latent_channels`` and the generator's noise for the pairs' length
    (``noise_shape(frames)``): the teacher's noise is a latent, so the two must be the same shape."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise TrainingError(
            f"teacher pairs {path} not found; make them with scripts/ganmix_teacher_pairs.py --out {path}"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            latents, seeds = f.get_tensor("latents"), f.get_tensor("seeds")
            captions = json.loads((f.metadata() or {}).get("captions", "null"))
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise TrainingError(
            f"teacher pairs {path} cannot be read ({e}); make them again with scripts/ganmix_teacher_pairs.py"
        ) from None
    n = len(latents)
    if latents.dim() != 3 or seeds.shape != (n,) or not isinstance(captions, list) or len(captions) != n or not n:
        raise TrainingError(
            f"teacher pairs {path}: latents {tuple(latents.shape)}, seeds {tuple(seeds.shape)} and "
            f"{len(captions) if isinstance(captions, list) else 'no'} captions do not make N pairs; make them again"
        )
    shape = tuple(noise_shape(int(latents.shape[-1])))
    if latents.shape[1] != latent_channels or shape != tuple(latents.shape[1:]):
        raise TrainingError(
            f"teacher pairs {path}: the teacher's latents and noise are {tuple(latents.shape[1:])} per pair, the "
            f"generator's latent has {latent_channels} channels and its noise is {shape}; use the conv "
            f"generator with model.generator.noise_dim={latents.shape[1]}"
        )
    if not torch.isfinite(latents).all():
        raise TrainingError(f"teacher pairs {path} hold non-finite latents; make them again")
    return TeacherPairs(latents, seeds, [str(c) for c in captions])


def teacher_outputs(
    model: GANmix, pairs: TeacherPairs, index: list[int], text: dict[str, Tensor]
) -> tuple[Tensor, Tensor]:
    """``(made, target)``, each ``[len(index), C, T']`` float: the generator's latents for pairs ``index`` (their
    noise, under ``text``: the captions' ``pooled`` and, for a token reader, ``tokens`` / ``mask``) and the
    teacher's."""
    device = model._device()
    noise = torch.stack([pairs.noise(i) for i in index]).to(device)
    target = pairs.latents[index].float().to(device)
    made = model(noise, text["pooled"], target.shape[-1], text.get("tokens"), text.get("mask"))
    return made.float(), target


@torch.no_grad()
def pair_errors(
    model: GANmix,
    pairs: TeacherPairs,
    n: int,
    batch: int = 32,
    text: Callable[[list[str]], dict[str, Tensor]] | None = None,
) -> Tensor:
    """The teacher term of each of the first ``n`` pairs, ``[n]`` (its mean is the term over them), in batches;
    ``text(captions)`` gives their text inputs (default: ``model.text_condition``)."""
    text = text or model.text_condition
    errors = []
    for lo in range(0, n, batch):
        index = list(range(lo, min(n, lo + batch)))
        made, target = teacher_outputs(model, pairs, index, text([pairs.captions[i] for i in index]))
        errors.append(((made - target) ** 2).mean(dim=(1, 2)))
    return torch.cat(errors)


def init_generator_from(model: GANmix, name_or_dir: str) -> None:
    """Copy a latent diffusion model's denoiser, or a token-reading GANmix model's generator (a shipped name or a
    model directory), into ``model``'s transformer generator; one clear error when the two networks differ in
    shape or the model is neither."""
    if model.config.generator.arch != "transformer":
        raise TrainingError("generator.init_from needs the transformer generator (generator.arch: transformer)")
    copy_denoiser(model.generator.net, name_or_dir, "generator.init_from")


def load_named(name_or_dir: str, field: str) -> nn.Module:
    """The model ``name_or_dir`` (a shipped name or a directory); any loading failure is one error naming the
    config ``field`` that asked."""
    from soundsmith.models.registry import load_model

    try:
        return load_model(name_or_dir)
    except Exception as e:  # noqa: BLE001 (any loading failure is the same one-line error)
        raise TrainingError(f"{field}={name_or_dir!r} cannot be loaded ({e})") from None


def copy_denoiser(net: nn.Module, name_or_dir: str, field: str, ganmix: bool = True) -> None:
    """Load the denoiser of the latent diffusion model ``name_or_dir`` (or the generator of a token-reading GANmix
    model, unless ``ganmix`` is False) into ``net``, a time transformer of the same shape; errors name the config
    ``field`` that asked."""
    source = load_named(name_or_dir, field)
    denoiser = getattr(source, "denoiser", None)
    if denoiser is None and ganmix and isinstance(source, GANmix) and source.config.generator.arch == "transformer":
        denoiser = source.generator.net  # a token-reading GANmix run continued with other settings
    if denoiser is None:
        also = " or a GANmix model with the transformer generator" if ganmix else " (the teacher)"
        raise TrainingError(f"{field}={name_or_dir!r} is a {type(source).__name__}, not a latent diffusion model{also}")
    theirs, ours = denoiser.state_dict(), net.state_dict()
    wrong = sorted(k for k in set(theirs) | set(ours) if k not in theirs or k not in ours or theirs[k].shape != ours[k].shape)
    if wrong:
        src = denoiser.config
        raise TrainingError(
            f"{field}={name_or_dir!r}: its denoiser (d_model {src.d_model}, {src.layers} layers, "
            f"{src.heads} heads, guidance input {src.guidance_embed}) does not fit this generator "
            f"(first differing tensor: {wrong[0]}); set generator.channels, blocks, heads and guidance to match"
        )
    net.load_state_dict({k: v.to(ours[k].dtype) for k, v in theirs.items()})


def load_score_denoiser(name_or_dir: str, field: str, latent_channels: int) -> nn.Module:
    """The frozen denoiser (eval, no gradients) of the latent diffusion model ``name_or_dir``, checked to read
    ``latent_channels``-channel latents; errors name the config ``field`` that asked."""
    source = load_named(name_or_dir, field)
    net = getattr(source, "denoiser", None)
    if net is None:
        raise TrainingError(f"{field}={name_or_dir!r} is a {type(source).__name__}, not a latent diffusion model")
    if net.config.latent_channels != latent_channels or net.config.latent_bins != 1:
        raise TrainingError(
            f"{field}={name_or_dir!r}: its denoiser reads {net.config.latent_channels} x {net.config.latent_bins} "
            f"latents, the generator makes {latent_channels} x 1; score with a model of the same VAE"
        )
    return net.requires_grad_(False).eval()


def guided_velocity(net: nn.Module, noisy: Tensor, t: Tensor, text: dict[str, Tensor], w: float) -> Tensor:
    """The denoiser's guided prediction at ``noisy [B, C, 1, T']``, times ``t [B]``: one pass at scale ``w`` for a
    guidance-distilled denoiser, else ``uncond + w (cond - uncond)`` with the dropped-caption branch."""
    B = noisy.shape[0]
    tokens, mask, pooled = text["tokens"], text["mask"], text["pooled"]
    if not net.config.guidance_embed and w == 1.0:  # uncond + 1 (cond - uncond): the conditional pass alone
        return net(noisy, t, tokens, mask, pooled)
    if net.config.guidance_embed:
        return net(noisy, t, tokens, mask, pooled, guidance=torch.full((B,), float(w), device=noisy.device))
    both = net(
        noisy.repeat(2, 1, 1, 1), t.repeat(2), tokens.repeat(2, 1, 1), mask.repeat(2, 1), pooled.repeat(2, 1),
        drop=torch.cat([torch.zeros(B), torch.ones(B)]).to(noisy.device),
    )
    cond, uncond = both[:B], both[B:]
    return uncond + w * (cond - uncond)


class GANmixObjective(Objective):
    """Generator = optimizer 0, discriminator (``self.disc``) = optimizer 1; see the module docstring."""

    find_unused_parameters = True
    sample_seconds = 2.0
    heldout_pairs = 128  # held-out teacher pairs scored at each validation

    def __init__(self, model: GANmix, sample_rate: int | None = None, seed: int = 0) -> None:
        super().__init__(model, sample_rate)
        self.disc = build_discriminator(model.config)
        self.seed = seed
        self._captions = CaptionCache(self._encode_rows)  # caption -> (pooled [D], its tokens [L, D] or None)
        # (step, real latents, generated latents) of the generator's last turn: the real tensor itself is held, so
        # no later batch can take its id and read another batch's latents
        self._fake_cache: tuple[int, Tensor, Tensor] | None = None
        self._pairs: TeacherPairs | None = None
        self._heldout: TeacherPairs | None = None
        self._heldout_value: tuple[int, float] = (-1, 0.0)  # (step, held-out teacher MSE)
        c = model.config
        if c.generator.init_from:
            init_generator_from(model, c.generator.init_from)
        if isinstance(self.disc, TeacherDiscriminator):
            field = "discriminator.teacher_from" if c.discriminator.teacher_from else "generator.init_from"
            copy_denoiser(self.disc.teacher, c.discriminator.teacher_from or c.generator.init_from, field, False)
        # the score term's frozen denoiser, in a tuple: no submodule (not in checkpoints, not optimised)
        self._score_net: tuple[nn.Module, ...] = ()
        if c.score_weight > 0:
            field = "score_from" if c.score_from else "generator.init_from"
            self._score_net = (load_score_denoiser(c.score_from or c.generator.init_from, field, c.latent_channels),)
        if c.fake_score:  # DMD's fake score: a trainable copy of the teacher, learning the generator's latents
            self.fake_net = copy.deepcopy(self._score_net[0]).requires_grad_(True).train()

    # -- setup -------------------------------------------------------------------------------------------------

    def configure_optimizers(self, cfg: TrainConfig) -> list[Optimizer | OptimizerSpec]:
        """Adam for both (the thesis); the discriminator's LR / betas from the model config when set."""
        c = self.model.config
        gen_params = [p for p in self.model.parameters() if p.requires_grad]
        gen = torch.optim.Adam(gen_params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        betas = tuple(c.disc_betas) if c.disc_betas else cfg.betas
        disc_params = [p for p in self.disc.parameters() if p.requires_grad]  # not a teacher's frozen denoiser
        disc = torch.optim.Adam(disc_params, lr=c.disc_lr or cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
        specs = [
            OptimizerSpec(gen, every=c.gen_every, clip_grad_norm=c.clip_grad_norm),
            OptimizerSpec(disc, every=c.disc_every, clip_grad_norm=c.clip_grad_norm),
        ]
        if c.fake_score:
            fake = torch.optim.Adam(
                self.fake_net.parameters(), lr=c.fake_score_lr or cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
            )
            specs.append(OptimizerSpec(fake, clip_grad_norm=c.clip_grad_norm))
        return specs

    def _generator(self, salt: str) -> torch.Generator:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        key = f"{self.seed}:{self.global_step}:{rank}:{salt}".encode()
        return torch.Generator().manual_seed(zlib.crc32(key))

    def encode_captions(self, captions: list[str]) -> Tensor:
        """Pooled text embeddings ``[B, D]`` on the CPU, through the per-caption cache."""
        return torch.stack([r[0] for r in self._captions(captions)])

    def caption_tokens(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """The captions' token embeddings, zero-padded to the longest: ``(tokens [B, L, D], mask [B, L])`` on the
        CPU, through the per-caption cache (for a generator that reads tokens)."""
        return self._padded_tokens(self._captions(captions))

    @staticmethod
    def _padded_tokens(rows: list[tuple[Tensor, Tensor | None]]) -> tuple[Tensor, Tensor]:
        tokens = [r[1] for r in rows]
        if any(t is None for t in tokens):
            raise TrainingError("caption tokens were asked of a GANmix generator that reads only pooled text")
        return pad_tokens(tokens)

    def _encode_rows(self, captions: list[str]) -> list[tuple[Tensor, Tensor | None]]:
        text = self.model.text_condition(captions)
        rows = []
        for i in range(len(captions)):
            toks = None
            if "tokens" in text:
                toks = text["tokens"][i][text["mask"][i].bool()].cpu()  # [L_i, D]: its own tokens, unpadded
            rows.append((text["pooled"][i].cpu(), toks))
        return rows

    def _text_inputs(self, captions: list[str], device: torch.device) -> dict[str, Tensor]:
        """``pooled`` (+ ``tokens``, ``mask`` for a token-reading generator) of the captions on ``device``."""
        rows = self._captions(captions)  # once: both reads below come from these rows
        out = {"pooled": torch.stack([r[0] for r in rows]).to(device)}
        if self.model.reads_tokens:
            tokens, mask = self._padded_tokens(rows)
            out["tokens"], out["mask"] = tokens.to(device), mask.to(device)
        return out

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]  # [B, T]
        if audio.dim() != 2:
            raise TrainingError(f"GANmix expects batch['audio'] of shape [B, T], got {tuple(audio.shape)}")
        model = self.model
        latents = model.audio_to_latents(audio).float()  # [B, C, T']
        if model.config.generator.arch == "mlp" or model.config.discriminator.arch == "mlp":
            latents = model.fit_frames(latents, model.config.latent_frames)  # the fixed length of the FC nets
        captions = [caption_of(batch, i) for i in range(len(audio))]
        out = dict(batch)
        out["latents"], out["captions"] = latents, captions
        text = self._text_inputs(captions, audio.device)
        out["text_pooled"] = text["pooled"]
        if "tokens" in text:
            out["text_tokens"], out["text_mask"] = text["tokens"], text["mask"]
        return out

    # -- the game ----------------------------------------------------------------------------------------------

    def noise(self, n: int, frames: int, salt: str) -> Tensor:
        """``[n, *noise_shape]`` standard normal noise for this step (seeded by seed, step, rank and ``salt``)."""
        shape = (n, *self.model.generator.noise_shape(frames))
        return torch.randn(shape, generator=self._generator(salt)).to(self.model._device())

    def fake(self, batch: dict[str, Any], salt: str = "fake") -> Tensor:
        real = batch["latents"]
        noise = self.noise(len(real), real.shape[-1], salt)
        return self.model(
            noise, batch["text_pooled"], real.shape[-1], batch.get("text_tokens"), batch.get("text_mask")
        )

    def _scores(self, latents: Tensor, text: dict[str, Tensor], salt: str) -> Tensor:
        """The discriminator's scores ``[B]`` of ``latents`` under ``text`` (``pooled``, and ``tokens`` / ``mask``
        for the teacher discriminator, which reads the latents noised to a flow time drawn for this step and
        ``salt``: ``x_t = (1 - t) x + t noise``)."""
        if not isinstance(self.disc, TeacherDiscriminator):
            return self.disc(latents, text["pooled"])
        noisy, t, _ = self._flow_noised(latents, self.model.config.discriminator.t_range, f"disc_noise:{salt}")
        return self.disc(noisy, t, text["pooled"], text["tokens"], text["mask"])

    def _flow_noised(self, latents: Tensor, t_range: list[float], salt: str) -> tuple[Tensor, Tensor, Tensor]:
        """``(x_t, t, noise)``: ``latents [B, C, T']`` noised to ``x_t = (1 - t) x + t noise``, the flow times
        ``t [B]`` drawn uniformly from ``t_range`` and then the noise, both from this step's generator for
        ``salt``."""
        lo, hi = (float(v) for v in t_range)
        gen = self._generator(salt)
        t = (lo + (hi - lo) * torch.rand(len(latents), generator=gen)).to(latents.device)
        noise = torch.randn(latents.shape, generator=gen).to(latents.device, latents.dtype)
        return (1 - t[:, None, None]) * latents + t[:, None, None] * noise, t, noise

    @staticmethod
    def _batch_text(batch: dict[str, Any], roll: int = 0) -> dict[str, Tensor]:
        """The batch's caption inputs (rolled by ``roll`` clips: another clip's caption for each)."""
        text = {"pooled": batch["text_pooled"], "tokens": batch.get("text_tokens"), "mask": batch.get("text_mask")}
        return {k: v if v is None or not roll else v.roll(roll, dims=0) for k, v in text.items()}

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        if "latents" not in batch:
            batch = self.prepare_batch(batch)
        if opt_index == 0:
            return self._generator_losses(batch)
        if opt_index == 1:
            return self._discriminator_losses(batch)
        if opt_index == 2 and self.model.config.fake_score:
            return self._fake_score_losses(batch)
        n = 3 if self.model.config.fake_score else 2
        raise TrainingError(f"GANmix objective has {n} optimizers, got opt_index={opt_index}")

    def _loss_kwargs(self) -> dict[str, Any]:
        c = self.model.config
        return {"loss": c.loss, "tanh": c.discriminator.output == "tanh", "tanh_as": c.tanh_as}

    def _generator_losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        c, real = self.model.config, batch["latents"]
        fake = self.fake(batch)  # [B, C, T']
        scores = self._scores(fake, self._batch_text(batch), "generator")
        loss = generator_loss(scores, **self._loss_kwargs())
        out = {"loss": loss, "d_fake": scores.detach().mean()}
        other = None  # the mode-seeking term's second draw, reused by the diversity diagnostic
        if c.mode_seeking_weight > 0:
            other = self.fake(batch, salt="mode_seeking")
            ratio = self.mode_seeking_ratio(batch, fake, other)
            out["loss"] = loss + c.mode_seeking_weight / (ratio + MODE_SEEKING_EPS)
            out["mode_seeking"] = ratio.detach()
        if c.score_weight > 0:
            score, gaps = self.score_loss(fake, self._batch_text(batch))
            out["loss"] = out["loss"] + c.score_weight * score
            out.update(gaps)
        if c.teacher_weight > 0:
            teach = self.teacher_loss(c.teacher_batch or len(real))
            out["loss"] = out["loss"] + c.teacher_weight * teach
            out["teacher"] = teach.detach()
        if torch.is_grad_enabled():  # the discriminator's (and fake score's) turns of this step reuse it
            self._fake_cache = (self.global_step, real, fake.detach())
        if c.diversity_every and self.global_step % c.diversity_every == 0:
            second = None if other is None else other.detach()
            out["diversity"] = self.diversity(batch, fake.detach(), second)
        return out

    def score_loss(self, fake: Tensor, text: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """``(loss, gaps)``: the score term for the generated latents ``fake [B, C, T']`` under ``text`` (the
        module docstring), and its diagnostics (``[]``, detached): ``score_gap``, the mean ``|x - x0|``, and
        with the fake score ``fake_gap``, the mean ``|x0_fake - x0|``."""
        c = self.model.config
        net = self._score_net[0].to(fake.device)
        with torch.no_grad():
            x = fake.detach().float()
            noisy, t, _ = self._flow_noised(x, c.score_t_range, "score")
            v = guided_velocity(net, noisy[:, :, None, :], t, text, c.score_guidance)[:, :, 0, :]
            x0 = noisy - t[:, None, None] * v
            diff = x - x0
            gaps = {"score_gap": diff.abs().mean()}
            scale = diff.abs().mean(dim=(1, 2), keepdim=True).clamp(min=1e-6)
            if c.fake_score:  # DMD: toward the teacher's estimate, away from the fake score's
                x0_fake = noisy - t[:, None, None] * self._fake_velocity(noisy, t, text)
                diff = x0_fake - x0
                gaps["fake_gap"] = diff.abs().mean()
            grad = diff / scale
        return 0.5 * F.mse_loss(fake.float(), x - grad), gaps

    def _fake_velocity(self, noisy: Tensor, t: Tensor, text: dict[str, Tensor]) -> Tensor:
        """The fake score's conditional velocity at ``noisy [B, C, T']`` (guidance input 1 for a guidance-distilled
        copy, the caption kept for a plain one)."""
        return guided_velocity(self.fake_net, noisy[:, :, None, :], t, text, 1.0)[:, :, 0, :]

    def _step_fake(self, batch: dict[str, Any]) -> Tensor:
        """This step's generated latents, detached: the generator's turn's when it ran, else drawn here."""
        cached = self._fake_cache
        if cached is not None and cached[0] == self.global_step and cached[1] is batch["latents"]:
            return cached[2]
        with torch.no_grad():
            return self.fake(batch)

    def _fake_score_losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The fake score's flow-matching loss on this step's generated latents (optimizer 2)."""
        x = self._step_fake(batch).float()
        noisy, t, noise = self._flow_noised(x, self.model.config.score_t_range, "fake_score")
        v = self._fake_velocity(noisy, t, self._batch_text(batch))
        return {"loss": F.mse_loss(v.float(), noise - x)}

    def teacher_loss(self, n: int) -> Tensor:
        """MSE between the generator's latents and the teacher's for ``n`` pairs drawn for this step: ``[]``."""
        c, gen = self.model.config, self.model.generator
        if self._pairs is None:
            self._pairs = load_teacher_pairs(c.teacher_pairs, gen.noise_shape, c.latent_channels)
        index = torch.randint(len(self._pairs.captions), (n,), generator=self._generator("teacher")).tolist()
        return self._pairs_mse(self._pairs, index)

    def _pairs_mse(self, pairs: TeacherPairs, index: list[int]) -> Tensor:
        """MSE between the generator's latents and ``pairs``' teacher latents at ``index``: ``[]``."""
        text = self._text_inputs([pairs.captions[i] for i in index], self.model._device())
        return F.mse_loss(*teacher_outputs(self.model, pairs, index, text))

    @torch.no_grad()
    def teacher_heldout(self) -> float:
        """The teacher term on the first :attr:`heldout_pairs` pairs of ``teacher_heldout_pairs`` (pairs the run
        does not train on), computed once per step and reused by the step's other validation batches."""
        c, gen = self.model.config, self.model.generator
        if self._heldout is None:
            self._heldout = load_teacher_pairs(c.teacher_heldout_pairs, gen.noise_shape, c.latent_channels)
        if self._heldout_value[0] != self.global_step:
            n = min(self.heldout_pairs, len(self._heldout.captions))
            device = self.model._device()
            errors = pair_errors(self.model, self._heldout, n, text=lambda caps: self._text_inputs(caps, device))
            self._heldout_value = (self.global_step, float(errors.mean()))
        return self._heldout_value[1]

    def mode_seeking_ratio(self, batch: dict[str, Any], fake: Tensor, other: Tensor | None = None) -> Tensor:
        """``mean|fake - G(z2)| / mean|z1 - z2|`` (``[]``): ``fake`` is this step's draw from noise ``z1``, ``other``
        (drawn here when None) the draw from ``z2`` for the same captions; the gradient reaches both passes."""
        real = batch["latents"]
        z1 = self.noise(len(real), real.shape[-1], "fake")  # the same numbers ``fake`` was drawn from
        z2 = self.noise(len(real), real.shape[-1], "mode_seeking")
        other = self.fake(batch, salt="mode_seeking") if other is None else other
        return (fake - other).abs().float().mean() / (z1 - z2).abs().float().mean()

    @torch.no_grad()
    def diversity(
        self, batch: dict[str, Any], fake: Tensor | None = None, other: Tensor | None = None
    ) -> Tensor:
        """RMS difference of two draws for the same captions / (sqrt(2) x std of the real latents): ``[]``.
        ``other`` is a second draw already made (the mode-seeking term's), else one is drawn here."""
        a = self.fake(batch) if fake is None else fake
        b = self.fake(batch, salt="diversity") if other is None else other
        scale = math.sqrt(2.0) * batch["latents"].float().std().clamp(min=1e-8)
        return (a - b).float().pow(2).mean().sqrt() / scale

    def _discriminator_losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        c, real, text = self.model.config, batch["latents"], self._batch_text(batch)
        fake = self._step_fake(batch)
        use_r1 = c.r1_weight > 0 and torch.is_grad_enabled() and self.global_step % c.r1_every == 0
        real_in = real.detach().requires_grad_(use_r1)
        s_real, s_fake = self._scores(real_in, text, "real"), self._scores(fake.detach(), text, "fake")
        loss = discriminator_loss(s_real, s_fake, smoothing=c.label_smoothing, **self._loss_kwargs())
        out = {
            "d_real": s_real.detach().mean(),
            "d_fake": s_fake.detach().mean(),
            "acc_real": (s_real.detach() > 0).float().mean(),
            "acc_fake": (s_fake.detach() < 0).float().mean(),
            "adv": loss.detach(),
        }
        if c.mismatch_weight > 0 and len(real) > 1:
            # real latents under another clip's caption (rolled by one) must be rejected too (Reed et al. 2016)
            s_mis = self._scores(real.detach(), self._batch_text(batch, roll=1), "mismatch")
            loss = loss + c.mismatch_weight * rejection_loss(s_mis, **self._loss_kwargs())
            out["acc_mismatch"] = (s_mis.detach() < 0).float().mean()
        if use_r1:
            r1 = r1_penalty(s_real, real_in)
            loss = loss + 0.5 * c.r1_weight * c.r1_every * r1  # lazy regularisation: scaled by its interval
            out["r1"] = r1.detach()
        out["loss"] = loss
        return out

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> dict[str, float]:
        """``loss`` = :func:`latent_moment_distance` of generated vs real latents (what ``best.ckpt`` follows: the
        adversarial losses say who is winning, not how good the output is), with both players' losses, the
        discriminator's accuracies and the diversity."""
        batch = batch if "latents" in batch else self.prepare_batch(batch)
        g, d = self._generator_losses(batch), self._discriminator_losses(batch)
        out = {"loss": float(latent_moment_distance(self.fake(batch), batch["latents"]))}
        out.update({f"g_{k}": float(v) for k, v in g.items()})
        out.update({f"d_{k}": float(v) for k, v in d.items()})
        if self.model.config.fake_score:
            out["f_loss"] = float(self._fake_score_losses(batch)["loss"])
        if self.model.config.teacher_heldout_pairs:
            out["g_teacher_heldout"] = self.teacher_heldout()
        return out

    @torch.no_grad()
    def sample(self, batch: dict[str, Any]) -> Tensor | None:
        """Up to 2 clips of ``sample_seconds`` from the first captions of ``batch``: ``[N, T]``."""
        from soundsmith.pipelines.ganmix import GANmixPipeline

        captions = batch.get("captions") or [caption_of(batch, i) for i in range(len(batch["audio"]))]
        was_training = self.model.training
        pipe = GANmixPipeline(self.model)
        try:
            clips = [
                pipe(t, duration=self.sample_seconds, seed=i, progress=False).audio[0]
                for i, t in enumerate(captions[:2])
            ]
        finally:
            self.model.train(was_training)
        return torch.from_numpy(np.stack(clips))


OBJECTIVE = GANmixObjective
