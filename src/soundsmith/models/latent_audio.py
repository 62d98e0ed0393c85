"""What the composites that work in a mel VAE's latent space share: frozen VAE + vocoder + text encoder.

:class:`LatentAudioModel` is the base of :class:`~soundsmith.models.latent_diffusion.LatentDiffusion` and
:class:`~soundsmith.models.ganmix.GANmix`. It holds the three frozen parts (by default the config's ``vae`` and
``vocoder`` shipped names and its ``text_encoder`` spec; modules given as components, as in tests, are frozen too),
checks once that they fit together, and moves between audio and latents:

audio ``[B, T]`` -> log-mel -> VAE posterior -> scaled latents ``[B, C_vae, T']`` -> VAE decoder -> log-mel ->
vocoder -> audio of exactly the requested number of samples.

A family adds its trainable network as a plain submodule after ``super().__init__`` (so state-dict keys are
``<network>.*``), its own checks in :meth:`LatentAudioModel._check_family`, and says which text size its network
expects in :meth:`LatentAudioModel._text_dim`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from soundsmith.audio import MelConfig, mel_spectrogram
from soundsmith.errors import ModelError
from soundsmith.models.composite import Component, CompositeModel
from soundsmith.models.registry import ShippedRef, TextEncoderSpec

PARTS = ("vae", "vocoder", "text_encoder")


class LatentAudioModel(CompositeModel):
    """Base of the composites built on a frozen mel VAE, vocoder and text encoder (see the module docstring).

    ``config`` needs ``vae``, ``vocoder`` (shipped names or directories), ``text_encoder`` (a spec),
    ``sample_rate`` and ``vocoder_refine``. Components given in ``components`` replace the config's; any other name is an error.
    """

    def __init__(self, config: Any, components: Mapping[str, Component] | None = None) -> None:
        parts: dict[str, Component] = {
            "vae": ShippedRef(config.vae),
            "vocoder": ShippedRef(config.vocoder),
            "text_encoder": TextEncoderSpec(config.text_encoder),
            **dict(components or {}),
        }
        unknown = sorted(set(parts) - set(PARTS))
        if unknown:
            raise ModelError(
                f"{type(self).__name__} has no component {unknown[0]!r}; its components: {', '.join(PARTS)}"
            )
        super().__init__(config, parts)
        for module in self.components.values():  # frozen parts given as modules stay frozen
            module.requires_grad_(False)
        self._checked = False

    # -- parts -----------------------------------------------------------------------------------------------

    @property
    def vae(self) -> nn.Module:
        return self.part("vae")

    @property
    def vocoder(self) -> nn.Module:
        return self.part("vocoder")

    @property
    def text_encoder(self) -> nn.Module:
        return self.part("text_encoder")

    def mel_config(self) -> MelConfig:
        """The mel front end shared by the VAE and the vocoder (checked to agree on first use)."""
        self.check_parts()
        return self.vae.mel_config()

    def check_parts(self) -> None:
        """One clear error if the VAE, vocoder, text encoder and the family's network do not fit together."""
        if self._checked:
            return
        c, vae = self.config, self.vae
        mel, voc_mel = vae.mel_config(), self.vocoder.mel_config()
        if voc_mel != mel:
            diffs = [
                f.name
                for f in dataclasses.fields(MelConfig)
                if getattr(mel, f.name) != getattr(voc_mel, f.name)
            ]
            raise ModelError(
                f"the VAE and the vocoder use different mel front ends ({', '.join(diffs)} differ); "
                "pair a vocoder trained on the VAE's mel settings"
            )
        if mel.sample_rate != c.sample_rate:
            raise ModelError(
                f"the VAE works at {mel.sample_rate} Hz but the model's sample_rate is {c.sample_rate}; set them equal"
            )
        self._check_family(vae, mel)
        text_dim, expects = self._text_dim()
        if self.text_encoder.dim != text_dim:
            raise ModelError(
                f"text encoder {c.text_encoder!r} gives {self.text_encoder.dim}-d embeddings but {expects}={text_dim}"
            )
        self._checked = True

    def _check_family(self, vae: nn.Module, mel: MelConfig) -> None:
        """The family's own checks of its network against the VAE (``mel``: the shared front end); raise
        ``ModelError`` with what to set."""

    def _text_dim(self) -> tuple[int, str]:
        """The pooled/token text size the family's network expects, and how an error names that setting."""
        raise NotImplementedError

    # -- audio <-> latents -----------------------------------------------------------------------------------

    def mel_frames(self, num_samples: int) -> int:
        """Mel frames of a clip of ``num_samples`` samples (centred STFT: ``T // hop + 1``)."""
        return num_samples // self.mel_config().hop_length + 1

    def latent_frames(self, num_samples: int) -> int:
        """Latent length ``T'`` of a clip of ``num_samples`` samples."""
        return int(self.vae.latent_frames(self.mel_frames(num_samples)))

    @torch.no_grad()
    def audio_to_latents(self, audio: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Audio ``[B, T]`` at ``config.sample_rate`` -> scaled VAE latents ``[B, C_vae, T']`` (the posterior mean,
        or a sample drawn from ``generator`` when given)."""
        mel = mel_spectrogram(audio, self.mel_config())  # [B, n_mels, frames]
        vae = self.vae
        mean, logvar = vae.encode(mel)  # [B, C_vae, T']
        z = mean
        if generator is not None:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
            z = mean + torch.exp(0.5 * logvar) * noise
        return z * vae.config.scale_factor

    @torch.no_grad()
    def latents_to_mel(self, latents: Tensor, frames: int | None = None) -> Tensor:
        """Scaled latents ``[B, C_vae, T']`` (or any ``[B, ..., T']`` view of them) -> log-mel ``[B, n_mels, frames]``
        through the VAE decoder."""
        vae = self.vae
        z = latents.reshape(latents.shape[0], -1, latents.shape[-1]) / vae.config.scale_factor
        return vae.decode(z.to(next(vae.parameters()).dtype), frames)

    @torch.no_grad()
    def mel_to_audio(self, mel: Tensor, num_samples: int, refine: int | None = None) -> Tensor:
        """Log-mel ``[B, n_mels, frames]`` -> audio ``[B, num_samples]`` through the vocoder (cropped or padded),
        held to the mel by ``refine`` rounds (default: the config's ``vocoder_refine``)."""
        refine = self.config.vocoder_refine if refine is None else refine
        return self.vocoder.vocode(mel, length=num_samples, refine=refine)

    @torch.no_grad()
    def latents_to_audio(self, latents: Tensor, num_samples: int, refine: int | None = None) -> Tensor:
        """Scaled latents ``[B, C_vae, T']`` (or a view) -> audio ``[B, num_samples]`` (VAE decode, then vocoder;
        ``refine``: see :meth:`mel_to_audio`)."""
        mel = self.latents_to_mel(latents, self.mel_frames(num_samples))
        return self.mel_to_audio(mel, num_samples, refine)

    @torch.no_grad()
    def round_trip(self, audio: Tensor) -> Tensor:
        """Audio ``[B, T]`` -> VAE (posterior mean) -> vocoder -> ``[B, T]``: what the model keeps of a sound."""
        return self.latents_to_audio(self.audio_to_latents(audio), audio.shape[-1])

    # -- text -------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def text_embeddings(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
        """Prompts -> ``(tokens [B, L, D], mask [B, L], pooled [B, D])`` on the model's device."""
        self.check_parts()
        emb = self.text_encoder.encode(list(prompts))
        device = self._device()
        return emb.tokens.float().to(device), emb.mask.to(device), emb.pooled.float().to(device)

    @torch.no_grad()
    def pooled_text(self, prompts: Sequence[str]) -> Tensor:
        """Prompts -> pooled embeddings ``[B, D]`` on the model's device."""
        self.check_parts()
        return self.text_encoder.encode(list(prompts)).pooled.float().to(self._device())
