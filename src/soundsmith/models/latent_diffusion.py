"""Latent diffusion: a text-conditioned denoiser over mel-VAE latents, and the composite a model directory holds.

The denoiser is the time transformer of :mod:`soundsmith.nn.time_transformer` (:class:`LatentDenoiser`,
configured by :class:`LatentDenoiserConfig`; both re-exported here): self-attention over the latent's time tokens,
cross-attention to the caption's tokens, adaptive LayerNorm from the timestep + pooled text, and learned "null"
text for classifier-free guidance. The objective drops captions at random during training; the pipeline runs each
step on ``[cond, uncond]`` (or once, with a guidance-distilled denoiser).

The model is a pure network: the diffusion/flow objective lives in ``train/objectives/``, sampling in
``soundsmith.sampling``.

:class:`LatentDiffusion` is the composite that a model directory holds (docs/ARCHITECTURE.md): the denoiser
(trainable, its weights in the directory's ``model.safetensors``) plus the frozen parts it works with, recorded by
reference: the mel VAE (``ShippedRef("vae")``), the vocoder (``ShippedRef("vocoder")``) and the text encoder
(``TextEncoderSpec("minilm")``). It turns audio into the denoiser's latents and latents back into audio; the
pipeline (``pipelines/latent_diffusion.py``) runs the sampler between the two.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from soundsmith.audio import MelConfig
from soundsmith.config import as_dataclass
from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.composite import Component
from soundsmith.models.latent_audio import LatentAudioModel
from soundsmith.models.vocoder import check_refine
from soundsmith.nn.time_transformer import (  # noqa: F401  (re-exported: the family's network and its parts)
    GUIDANCE_EMBED_SCALE,
    PREDICTIONS,
    Block,
    LatentDenoiser,
    LatentDenoiserConfig,
    rotary,
    rotary_angles,
    timestep_embedding,
)

# kinds of sound a part can be denoised at its own guidance (``kind_guidance``), as
# ``soundsmith.pipelines.compose.sound_kind`` reads them from a part's prompt
KINDS = ("speech", "noise")
DYNAMICS = ("soft", "loud")  # the asks ``LatentDiffusionConfig.dynamics_db`` bounds

# the arithmetic a denoiser may sample in (``LatentDiffusionConfig.compute``)
COMPUTES = ("float32", "int8")


# --- the composite: denoiser + frozen VAE, vocoder and text encoder ------------------------------------------


@dataclass
class LatentDiffusionConfig:
    """A text-to-audio latent diffusion model: the denoiser's hyperparameters, the frozen parts it works with,
    its noise schedule and its default sampling settings.

    ``vae`` / ``vocoder``: shipped model names (or model/run directories) of the frozen mel VAE and vocoder used
    when the model is built without explicit components (``soundsmith train``); a saved model records its own.
    ``text_encoder`` is the frozen text encoder's spec (``denoiser.text_encoder`` follows it).
    Schedule: ``denoiser.prediction`` (flow, epsilon, v_prediction) with ``num_train_timesteps``,
    ``beta_schedule``/``beta_start``/``beta_end`` (VP only), ``shift`` (flow only) and ``timestep_sampling``
    (training's timestep distribution: uniform or logit_normal), as
    ``soundsmith.sampling.diffusion.NoiseSchedule``. Training: ``cond_drop_prob`` of the captions are dropped
    (classifier-free guidance); ``latent_sample`` draws latents from the VAE posterior instead of its mean.
    Sampling defaults: ``sampler`` (a name in ``soundsmith.sampling.diffusion.SAMPLERS`` that runs the prediction
    type; checked where a sampler is built, since models do not import sampling), ``sample_shift`` (flow only: the
    sampler's timestep shift, None = ``shift``; > 1 spends the steps nearer the noise, where a few-step sampler
    decides what and where the sound is), ``steps``, ``guidance``, ``kind_guidance`` (kind -> guidance: a part
    that asks for speech, "a man says the word seven", or noise, "a steady noise hisses", is denoised at its
    kind's guidance when a call gives none; kinds: :data:`KINDS`. A small denoiser
    says the asked word more clearly, and makes noise rather than rain, at lower guidance while other sounds need
    more: docs/latent_diffusion.md, "Speech and noise at their own guidance"),
    ``duration`` (seconds); ``max_duration`` caps requests. ``context_seconds``: the clip length the denoiser was
    trained on (None: no limit assumed). With it, a text-to-audio request longer than that is denoised in
    overlapping windows of this length whose predictions are blended at every step (MultiDiffusion: each window is
    a length the model knows), and a shorter one is generated at this length and cropped to its most active part.
    ``guidance_interval``: ``[lo, hi]`` of the denoiser's time (0 clean .. 1 noise) where classifier-free guidance
    applies; outside it a step runs the conditional branch alone (half the work). None: every step.
    ``guidance_rescale`` (phi in [0, 1], 0 = off): the guided prediction is rescaled toward the conditional one's
    standard deviation, per clip, ``phi * guided * std(cond) / std(guided) + (1 - phi) * guided`` (Lin et al. 2024,
    "Common diffusion noise schedules and sample steps are flawed", eq. 15-16): high guidance without its
    over-amplified predictions.
    ``level_floor_db`` (dBFS RMS, None = off): a text-to-audio clip quieter than this is raised to it (never past
    the peak ceiling): the quietest level of the training clips, below which an output is a sound the model made
    too faint to hear, not a quiet sound. Audio-to-audio keeps the input's level.
    ``dynamics_db`` (dBFS RMS; empty = off): a part whose words ask it soft ("gently", "quietly") is brought down
    to ``dynamics_db["soft"]`` when louder, one asked loud ("forcefully", "at full volume") up to
    ``dynamics_db["loud"]`` when quieter (never past the peak ceiling): the 95th percentile of the training clips
    asked soft and the 5th of those asked loud (``scripts/dynamics_levels.py``), so that a soft clip is not louder
    than a loud one (docs/latent_diffusion.md, "Soft and loud held to the training clips' levels").
    ``compose``: a layered prompt (a background bed and/or several sounds in order: "three beeps over steady
    rain", "a bell rings, then a dog barks") is generated part by part and mixed
    (``soundsmith.pipelines.compose``); other prompts are generated as they are. The bed sits ``bed_snr_db``
    under the quietest foreground part, or that part kind's ``kind_bed_snr_db`` (kinds: :data:`KINDS`; spoken
    words need more room than other sounds: docs/latent_diffusion.md, "Each source over its bed").
    ``tune``: a clip (or a composed part) whose prompt names one held note ("a harsh buzzer at C3") and whose
    steady pitch is off it is pitch-shifted to the note; one that asks a sound event's register ("a beep (low
    register)") is moved into it by octaves; one asked to rise or fall ("a rising scale") whose pitch does not move
    that way is drawn again from fresh noise, at most twice (``soundsmith.pipelines.tune``). ``pitch_tries``
    (with ``tune``; 0 = off): a clip whose held pitch is more than a semitone from the note or register it asks is
    drawn again up to this many times before it is shifted, and the draw nearest the ask is kept.
    ``register_tries`` (with ``tune``; 0 = off): the same for a part asking a register of an instrument ("a cello
    plays a brief melody in the middle register", "a banjo plays a tune starting at C5") whose root lies more than
    a semitone outside it (docs/latent_diffusion.md, "An instrument's register drawn again"). ``tune_in_mel``
    (with ``tune``): a note from C4 up is shifted in the log-mel, then vocoded again, instead of by resampling or
    a phase vocoder.
    ``compute``: the arithmetic of the denoiser's matrix products when sampling on the CPU: ``float32``, or
    ``int8`` (its blocks' Linear layers as per-row int8 weights times 8-bit activations, ``soundsmith.nn.int8``:
    the denoiser ~1.5-1.8x as fast, outputs within ~2 % of float32; docs/latent_diffusion.md, "Int8 matrix products").
    Training, other devices and a denoiser with LoRA adapters attached run float32 whatever it says.
    ``vocoder_refine``: rounds of :func:`soundsmith.models.vocoder.refine_to_mel` on every decoded clip, which move
    the vocoder's magnitudes to the decoded mel and keep its phase (0 = the vocoder's output as it is;
    docs/latent_diffusion.md, "The vocoder held to its mel").
    """

    denoiser: LatentDenoiserConfig = field(default_factory=LatentDenoiserConfig)
    vae: str = "vae"
    vocoder: str = "vocoder"
    text_encoder: str = "minilm"
    sample_rate: int = 16000
    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    shift: float = 1.0
    timestep_sampling: str = "uniform"
    cond_drop_prob: float = 0.1
    latent_sample: bool = False
    sampler: str = "flow_euler"
    sample_shift: float | None = None
    steps: int = 8
    guidance: float = 3.0
    kind_guidance: dict[str, float] = field(default_factory=dict)
    duration: float = 4.0
    max_duration: float = 30.0
    context_seconds: float | None = None
    guidance_interval: tuple[float, float] | None = None
    guidance_rescale: float = 0.0
    level_floor_db: float | None = None
    dynamics_db: dict[str, float] = field(default_factory=dict)
    compose: bool = False
    bed_snr_db: float = 13.0
    kind_bed_snr_db: dict[str, float] = field(default_factory=dict)
    tune: bool = False
    pitch_tries: int = 0
    register_tries: int = 0
    tune_in_mel: bool = False
    compute: str = "float32"
    vocoder_refine: int = 0

    def __post_init__(self) -> None:
        if self.compute not in COMPUTES:
            raise ConfigError(
                f"LatentDiffusionConfig.compute={self.compute!r} must be one of {list(COMPUTES)}"
            )
        for name in ("compose", "tune", "tune_in_mel"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"LatentDiffusionConfig.{name}={getattr(self, name)!r} must be true or false"
                )
        check_refine(self.vocoder_refine, "LatentDiffusionConfig.vocoder_refine")
        for name in ("pitch_tries", "register_tries"):
            tries = getattr(self, name)
            if isinstance(tries, bool) or not (isinstance(tries, int) and 0 <= tries <= 8):
                raise ConfigError(f"LatentDiffusionConfig.{name}={tries!r} must be an integer from 0 to 8")
        if self.level_floor_db is not None and (
            isinstance(self.level_floor_db, bool)
            or not isinstance(self.level_floor_db, int | float)
            or not -80.0 <= self.level_floor_db <= -10.0
        ):
            raise ConfigError(
                f"LatentDiffusionConfig.level_floor_db={self.level_floor_db!r} must be from -80 to -10 dBFS "
                "(or null: off)"
            )
        bounds = self.dynamics_db if isinstance(self.dynamics_db, dict) else None
        if bounds is None or any(
            key not in DYNAMICS or isinstance(v, bool) or not isinstance(v, int | float) or not -80.0 <= v <= -10.0
            for key, v in bounds.items()
        ) or bounds.get("soft", -80.0) > bounds.get("loud", -10.0):
            raise ConfigError(
                f"LatentDiffusionConfig.dynamics_db={self.dynamics_db!r} must map 'soft' (the most a part asked soft "
                "may be) and/or 'loud' (the least a part asked loud may be) to dBFS from -80 to -10, soft <= loud "
                "(or be empty: off)"
            )
        self.dynamics_db = {key: float(v) for key, v in bounds.items()}
        if isinstance(self.guidance_rescale, bool) or not (
            isinstance(self.guidance_rescale, int | float) and 0.0 <= self.guidance_rescale <= 1.0
        ):
            raise ConfigError(
                f"LatentDiffusionConfig.guidance_rescale={self.guidance_rescale!r} must be in [0, 1] (0 = off)"
            )
        self.denoiser = as_dataclass(LatentDenoiserConfig, self.denoiser, "LatentDiffusionConfig.denoiser")
        if self.denoiser.text_encoder != self.text_encoder:  # one spec: the composite's
            self.denoiser = dataclasses.replace(self.denoiser, text_encoder=self.text_encoder)
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ConfigError(f"LatentDiffusionConfig.cond_drop_prob={self.cond_drop_prob} must be in [0, 1)")
        if isinstance(self.steps, bool) or not (isinstance(self.steps, int) and self.steps >= 1):
            raise ConfigError(f"LatentDiffusionConfig.steps={self.steps!r} must be an integer >= 1")
        if not (math.isfinite(self.guidance) and self.guidance >= 0):
            raise ConfigError(f"LatentDiffusionConfig.guidance={self.guidance} must be a number >= 0")
        if not isinstance(self.kind_guidance, dict) or any(
            kind not in KINDS or isinstance(g, bool) or not isinstance(g, int | float) or not math.isfinite(g) or g < 0
            for kind, g in self.kind_guidance.items()
        ):
            raise ConfigError(
                f"LatentDiffusionConfig.kind_guidance={self.kind_guidance!r} must map kinds of {list(KINDS)} to "
                "numbers >= 0 (or be empty: every part at `guidance`)"
            )
        self.kind_guidance = {kind: float(g) for kind, g in self.kind_guidance.items()}
        snrs = {"": self.bed_snr_db, **self.kind_bed_snr_db} if isinstance(self.kind_bed_snr_db, dict) else None
        if snrs is None or any(
            kind not in ("", *KINDS) or isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 40
            for kind, v in snrs.items()
        ):
            raise ConfigError(
                f"LatentDiffusionConfig: bed_snr_db={self.bed_snr_db!r} and kind_bed_snr_db={self.kind_bed_snr_db!r} "
                f"must be dB from 0 to 40 (kind_bed_snr_db: kinds of {list(KINDS)} to dB, or empty)"
            )
        self.bed_snr_db = float(self.bed_snr_db)
        self.kind_bed_snr_db = {kind: float(v) for kind, v in self.kind_bed_snr_db.items()}
        if not (0 < self.duration <= self.max_duration):
            raise ConfigError(
                f"LatentDiffusionConfig: need 0 < duration ({self.duration}) <= max_duration ({self.max_duration})"
            )
        if self.sample_rate <= 0:
            raise ConfigError(f"LatentDiffusionConfig.sample_rate={self.sample_rate} must be positive")
        if self.context_seconds is not None and not (
            isinstance(self.context_seconds, int | float)
            and math.isfinite(self.context_seconds)
            and 0 < self.context_seconds <= self.max_duration
        ):
            raise ConfigError(
                f"LatentDiffusionConfig.context_seconds={self.context_seconds!r} must be in (0, max_duration] "
                "(or null: generate any length in one pass)"
            )
        if self.guidance_interval is not None:
            gi = self.guidance_interval
            if not (
                isinstance(gi, list | tuple)
                and len(gi) == 2
                and all(isinstance(v, int | float) and math.isfinite(v) for v in gi)
                and 0.0 <= gi[0] <= gi[1] <= 1.0
            ):
                raise ConfigError(
                    f"LatentDiffusionConfig.guidance_interval={gi!r} must be [lo, hi] with 0 <= lo <= hi <= 1 "
                    "(or null: guidance at every step)"
                )
            self.guidance_interval = (float(gi[0]), float(gi[1]))
        if self.sample_shift is not None and not (
            isinstance(self.sample_shift, int | float)
            and math.isfinite(self.sample_shift)
            and self.sample_shift > 0
        ):
            raise ConfigError(
                f"LatentDiffusionConfig.sample_shift={self.sample_shift!r} must be a positive number (or null: "
                "the training shift)"
            )

    @property
    def prediction(self) -> str:
        return self.denoiser.prediction

    def schedule_kwargs(self, sampling: bool = False) -> dict[str, object]:
        """The forward process as ``soundsmith.sampling.diffusion.NoiseSchedule(**kwargs)`` (models do not import
        sampling; the objective and the pipeline both build their schedule from this one definition).
        ``sampling=True``: the pipeline's, whose flow shift is ``sample_shift`` when set."""
        shift = self.sample_shift if sampling and self.sample_shift is not None else self.shift
        return {
            "num_train_timesteps": self.num_train_timesteps,
            "prediction_type": self.prediction,
            "beta_schedule": self.beta_schedule,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "shift": shift,
            "timestep_sampling": self.timestep_sampling,
        }


class LatentDiffusion(LatentAudioModel):
    """Text-to-audio latent diffusion: ``forward`` is the denoiser; the rest moves between audio and latents.

    Components (``LatentDiffusion(config, components={...})``; any left out come from the config):
    ``vae`` (a ``MelVAE``: ``encode(mel) -> (mean, logvar)``, ``decode(z, frames) -> mel``, ``config.scale_factor``,
    ``latent_frames``, ``mel_config``), ``vocoder`` (``Vocoder``: log-mel ``[B, n_mels, frames] -> [B, frames * hop]``)
    and ``text_encoder``, held as in :class:`~soundsmith.models.latent_audio.LatentAudioModel`.

    Latents: the VAE's ``[B, C_vae, T']`` (``T' = ceil(frames / time_downsample)``) times its ``scale_factor``,
    viewed as ``[B, latent_channels, latent_bins, T']`` for the denoiser (``latent_channels * latent_bins == C_vae``).
    """

    def __init__(
        self, config: LatentDiffusionConfig, components: Mapping[str, Component] | None = None
    ) -> None:
        super().__init__(config, components)
        self.denoiser = LatentDenoiser(config.denoiser)

    def _check_family(self, vae: nn.Module, mel: MelConfig) -> None:
        d = self.config.denoiser
        if d.latent_channels * d.latent_bins != vae.config.latent_channels:
            raise ModelError(
                f"the VAE has {vae.config.latent_channels} latent channels but the denoiser expects "
                f"latent_channels x latent_bins = {d.latent_channels} x {d.latent_bins}; match them"
            )

    def _text_dim(self) -> tuple[int, str]:
        return self.config.denoiser.text_dim, "the denoiser expects text_dim"

    # -- audio <-> latents: the VAE's [B, C_vae, T'] viewed as the denoiser's [B, C, F, T'] -------------------

    def latent_shape(self, num_samples: int) -> tuple[int, int, int]:
        """``(latent_channels, latent_bins, T')`` of one clip."""
        d = self.config.denoiser
        return d.latent_channels, d.latent_bins, self.latent_frames(num_samples)

    @torch.no_grad()
    def audio_to_latents(self, audio: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Audio ``[B, T]`` at ``config.sample_rate`` -> scaled latents ``[B, C, F, T']`` (the posterior mean, or a
        sample drawn from ``generator`` when given)."""
        z = super().audio_to_latents(audio, generator)  # [B, C_vae, T']
        d = self.config.denoiser
        return z.reshape(z.shape[0], d.latent_channels, d.latent_bins, z.shape[-1])

    # -- text -------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        """Prompts -> ``(tokens [B, L, D], mask [B, L], pooled [B, D])`` on the model's device."""
        return self.text_embeddings(prompts)

    # -- the network -----------------------------------------------------------------------------------------

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        text_tokens: Tensor,
        text_mask: Tensor,
        pooled: Tensor,
        drop: Tensor | None = None,
        guidance: Tensor | None = None,
    ) -> Tensor:
        """The denoiser: noisy latents ``x [B, C, F, T']`` at times ``t [B]`` in [0, 1] -> prediction, same shape
        (``guidance [B]``: the guidance scales of a guidance-distilled denoiser, ``guidance_embed``)."""
        return self.denoiser(x, t, text_tokens, text_mask, pooled, drop, guidance)
