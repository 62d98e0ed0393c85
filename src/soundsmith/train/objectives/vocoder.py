"""Vocoder training: mel L1 + multi-resolution STFT, then GAN (multi-period + multi-resolution discriminators).

Two optimizers: 0 trains the generator (the :class:`~soundsmith.models.vocoder.Vocoder`), 1 the discriminators
(an :class:`~soundsmith.train.optimizers.OptimizerSpec` starting at ``disc_start_step``). Before that step the
generator learns from the reconstruction losses alone (a warm-up that suits a CPU: no discriminator cost); from it
on, both play the least-squares GAN of HiFi-GAN, with feature matching. Validation reports ``loss`` = mel L1
(log-mel; the number ``best.ckpt`` follows) and ``stft`` = the multi-resolution STFT loss.

``fine_stft_weight`` > 0 adds :func:`~soundsmith.train.objectives.losses.low_band_stft_loss` (a ``fine_stft_n_fft``
-point STFT below ``fine_stft_fmax`` Hz) to the generator's loss (``fine_stft``, also reported at validation): the
mel and the three STFT resolutions above cannot tell a low note's harmonics from a buzz at the frame rate (100 Hz
and its multiples at hop 160), which the shipped vocoder adds (docs/autoencoders.md, "The frame-rate buzz").

``batch["audio"]`` ``[B, T]`` is cropped to a multiple of the hop; the mel is computed from it with the
vocoder's own ``mel_config()`` in :meth:`prepare_batch`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from soundsmith.audio import mel_spectrogram
from soundsmith.errors import TrainingError
from soundsmith.models.vocoder import Vocoder
from soundsmith.nn.discriminators import (
    MultiPeriodDiscriminator,
    MultiResolutionDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives.base import Objective
from soundsmith.train.objectives.losses import (  # noqa: F401  (STFT_LOSS_RESOLUTIONS re-exported)
    STFT_LOSS_RESOLUTIONS,
    low_band_stft_loss,
    multi_resolution_stft_loss,
)
from soundsmith.train.optimizers import OptimizerSpec

# generator-only steps before the GAN starts (on a CPU a GAN step costs ~15x a generator-only step)
DISC_START_STEP = 20000


class VocoderObjective(Objective):
    """GAN vocoder training for :class:`Vocoder` (generator = optimizer 0, discriminators = optimizer 1).

    Args:
        model: the generator.
        disc_start_step: global step at which the discriminators (and the generator's adversarial and
            feature-matching terms) start; before it the generator learns from mel L1 + MR-STFT alone
            (default: the module's ``DISC_START_STEP``).
        mel_weight, stft_weight, adv_weight, fm_weight: loss weights (HiFi-GAN's 45 / - / 1 / 2).
        fine_stft_weight, fine_stft_n_fft, fine_stft_fmax: the low-band fine STFT term (0 = off; see the module).
        disc_lr: the discriminators' LR (default ``train.lr``); disc_clip_grad_norm: their gradient clipping.
        mpd_channels, mrd_channels: discriminator widths.
    """

    def __init__(
        self,
        model: Vocoder,
        sample_rate: int | None = None,
        disc_start_step: int | None = None,
        mel_weight: float = 45.0,
        stft_weight: float = 2.5,
        adv_weight: float = 1.0,
        fm_weight: float = 2.0,
        disc_lr: float | None = None,
        disc_clip_grad_norm: float = 10.0,
        mpd_channels: tuple[int, ...] = (16, 32, 64, 128),
        mrd_channels: int = 8,
        fine_stft_weight: float = 0.0,
        fine_stft_n_fft: int = 4096,
        fine_stft_fmax: float = 1000.0,
    ) -> None:
        super().__init__(model, sample_rate)
        self.mel_config = model.mel_config()
        self.disc_start_step = DISC_START_STEP if disc_start_step is None else int(disc_start_step)
        self.weights = {"mel": mel_weight, "stft": stft_weight, "adv": adv_weight, "fm": fm_weight}
        self.weights["fine_stft"] = float(fine_stft_weight)
        nyquist = self.mel_config.sample_rate / 2
        if fine_stft_weight < 0 or fine_stft_n_fft < 256 or not 0 < fine_stft_fmax <= nyquist:
            raise TrainingError(
                f"vocoder objective: fine_stft_weight={fine_stft_weight} must be >= 0, fine_stft_n_fft="
                f"{fine_stft_n_fft} >= 256 and fine_stft_fmax={fine_stft_fmax} in (0, {nyquist:g}] Hz"
            )
        self.fine_stft = (int(fine_stft_n_fft), int(fine_stft_fmax / self.mel_config.sample_rate * fine_stft_n_fft) + 1)
        self.disc_lr, self.disc_clip_grad_norm = disc_lr, disc_clip_grad_norm
        self.mpd = MultiPeriodDiscriminator(channels=tuple(mpd_channels))
        self.mrd = MultiResolutionDiscriminator(channels=mrd_channels)
        self._fake_cache: dict[int, Tensor] = {}

    def configure_optimizers(self, cfg: TrainConfig) -> list[Optimizer | OptimizerSpec]:
        gen = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        disc_params = list(self.mpd.parameters()) + list(self.mrd.parameters())
        disc = torch.optim.AdamW(
            disc_params, lr=self.disc_lr or cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        return [
            OptimizerSpec(gen),
            OptimizerSpec(disc, start_step=self.disc_start_step, clip_grad_norm=self.disc_clip_grad_norm),
        ]

    @property
    def adversarial(self) -> bool:
        """Whether this step trains the discriminators (the engine sets ``active_optimizers``)."""
        return 1 in self.active_optimizers

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]
        if audio.dim() != 2:
            raise TrainingError(f"vocoder expects batch['audio'] of shape [B, T], got {tuple(audio.shape)}")
        hop = self.mel_config.hop_length
        length = audio.shape[1] // hop * hop
        if length < 4 * hop:
            raise TrainingError(f"vocoder needs clips of at least {4 * hop} samples, got {audio.shape[1]}")
        out = dict(batch)
        out["audio"] = audio[:, :length]  # [B, T'], T' a multiple of the hop
        out["mel"] = mel_spectrogram(out["audio"], self.mel_config)  # [B, M, T'/hop + 1]
        return out

    def _inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return batch if "mel" in batch else self.prepare_batch(batch)

    def generate(self, batch: dict[str, Any]) -> Tensor:
        """The generator's waveform for a prepared batch, cropped to the audio's length: ``[B, T']``."""
        return self.model(batch["mel"])[:, : batch["audio"].shape[1]]

    def reconstruction_losses(self, y_hat: Tensor, y: Tensor, mel: Tensor) -> dict[str, Tensor]:
        mel_hat = mel_spectrogram(y_hat, self.mel_config)
        out = {"mel": torch.mean(torch.abs(mel_hat - mel)), "stft": multi_resolution_stft_loss(y_hat, y)}
        if self.weights["fine_stft"] > 0:
            out["fine_stft"] = low_band_stft_loss(y_hat, y, *self.fine_stft)
        return out

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        batch = self._inputs(batch)
        y = batch["audio"]
        if opt_index == 0:
            return self._generator_losses(batch, y)
        if opt_index == 1:
            return self._discriminator_losses(batch, y)
        raise TrainingError(f"vocoder objective has 2 optimizers, got opt_index={opt_index}")

    def _generator_losses(self, batch: dict[str, Any], y: Tensor) -> dict[str, Tensor]:
        k = self.weights
        y_hat = self.generate(batch)  # [B, T']
        out = self.reconstruction_losses(y_hat, y, batch["mel"])
        loss = k["mel"] * out["mel"] + k["stft"] * out["stft"] + k["fine_stft"] * out.get("fine_stft", 0.0)
        if self.adversarial:
            with torch.no_grad():
                real = self.mpd(y) + self.mrd(y)
            fake = self.mpd(y_hat) + self.mrd(y_hat)
            out["adv"] = generator_adversarial_loss(fake)
            out["fm"] = feature_matching_loss(real, fake)
            loss = loss + k["adv"] * out["adv"] + k["fm"] * out["fm"]
        if self.adversarial and torch.is_grad_enabled():
            self._fake_cache = {id(y): y_hat.detach()}  # the discriminator step reuses it
        out["loss"] = loss
        return out

    def _discriminator_losses(self, batch: dict[str, Any], y: Tensor) -> dict[str, Tensor]:
        y_hat = self._fake_cache.pop(id(y), None)
        if y_hat is None:
            with torch.no_grad():
                y_hat = self.generate(batch)
        real = self.mpd(y) + self.mrd(y)
        fake = self.mpd(y_hat) + self.mrd(y_hat)
        loss = discriminator_loss(real, fake)
        return {"loss": loss, "disc": loss.detach()}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> dict[str, float]:
        """Reconstruction only: ``loss`` = mel L1 (log-mel), ``stft`` = multi-resolution STFT loss (and
        ``fine_stft`` when weighted)."""
        batch = self._inputs(batch)
        out = self.reconstruction_losses(self.generate(batch), batch["audio"], batch["mel"])
        return {"loss": float(out["mel"]), **{k: float(v) for k, v in out.items() if k != "mel"}}

    @torch.no_grad()
    def sample(self, batch: dict[str, Any]) -> Tensor | None:
        """The first (up to) 2 clips vocoded from their own mel, followed by the originals: ``[4, T]``."""
        batch = self._inputs(batch)
        n = min(2, batch["audio"].shape[0])
        return torch.cat([self.generate(batch)[:n], batch["audio"][:n]])


OBJECTIVE = VocoderObjective
