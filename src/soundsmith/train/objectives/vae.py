"""Mel VAE training: L1 reconstruction of the log-mel + a small KL term (Kingma & Welling; SD/AudioLDM-style).

``prepare_batch`` computes the log-mel ``[B, M, frames]`` of ``batch["audio"]`` with the VAE's own mel front
end. ``losses``: the latent is sampled from the posterior (reparameterised; its mean in eval mode), decoded,
cropped to ``frames``; ``loss = rec + kl_weight * kl`` with ``rec`` the mean absolute log-mel error and ``kl``
the KL divergence to N(0, I) averaged per latent element. Validation reports ``loss`` = the reconstruction L1
through the posterior mean (what ``best.ckpt`` follows) and ``kl``. No adversarial or perceptual term (not tried
yet: add one only if it measurably helps).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from soundsmith.audio import mel_spectrogram
from soundsmith.errors import TrainingError
from soundsmith.models.vae import MelVAE
from soundsmith.train.objectives.base import Objective


def kl_to_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) averaged over every element: ``[B, C, T]`` x 2 -> ``[]``."""
    return 0.5 * torch.mean(mean.square() + logvar.exp() - 1.0 - logvar)


class VAEObjective(Objective):
    """Reconstruction + KL for :class:`MelVAE`.

    Args:
        model: the VAE.
        kl_weight: weight of the per-element KL against the per-element L1 (1e-5: a nearly deterministic,
            smooth latent; its scale is fixed afterwards by ``scale_factor``).
        freeze_encoder: train the decoder alone (``objective.freeze_encoder: true`` in a run config). The latents
            of every clip stay exactly what they were, so a latent model trained on them (the default's denoiser)
            stays valid while the decoder improves.
    """

    def __init__(
        self,
        model: MelVAE,
        sample_rate: int | None = None,
        kl_weight: float = 1e-5,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__(model, sample_rate)
        self.mel_config = model.mel_config()
        self.kl_weight = kl_weight
        # the encoder runs without gradients, so the optimizer leaves it alone (its parameters keep their place in
        # the optimizer: a run resumed with the encoder frozen loads its optimizer state as saved)
        self.freeze_encoder = bool(freeze_encoder)
        self.find_unused_parameters = False

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]
        if audio.dim() != 2:
            raise TrainingError(f"mel VAE expects batch['audio'] of shape [B, T], got {tuple(audio.shape)}")
        return {**batch, "mel": mel_spectrogram(audio, self.mel_config)}  # [B, M, frames]

    def _inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return batch if "mel" in batch else self.prepare_batch(batch)

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        mel = self._inputs(batch)["mel"]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            mean, logvar = self.model.encode(mel)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.training else mean
        rec = torch.mean(torch.abs(self.model.decode(z, mel.shape[-1]) - mel))
        kl = kl_to_standard_normal(mean, logvar)
        return {"loss": rec + self.kl_weight * kl, "rec": rec.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> dict[str, float]:
        """``loss`` = log-mel L1 through the posterior mean; ``kl``."""
        mel = self._inputs(batch)["mel"]
        mean, logvar = self.model.encode(mel)
        rec = torch.mean(torch.abs(self.model.decode(mean, mel.shape[-1]) - mel))
        return {"loss": float(rec), "kl": float(kl_to_standard_normal(mean, logvar))}


OBJECTIVE = VAEObjective
