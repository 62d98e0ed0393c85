"""Codec training: waveform L1 + log-mel L1 + multi-resolution STFT + RVQ commitment, then GAN (the vocoder's
discriminators).

Two optimizers, as the vocoder's: 0 trains the codec (encoder, decoder; the codebooks follow by EMA inside the
forward pass), 1 the multi-period + multi-resolution discriminators of ``soundsmith.nn.discriminators``, an
:class:`~soundsmith.train.optimizers.OptimizerSpec` that starts at ``disc_start_step``. Quantizer dropout: with
probability ``quantizer_dropout`` a step uses only the first ``n_q ~ U{1..N}`` codebooks (drawn first, from a
generator seeded by ``(seed, step)``), so any prefix of the codebooks decodes well (lower bitrate at inference).

Generator loss: ``l1_weight * mean|y - y_hat| + mel_weight * mean|logmel(y_hat) - logmel(y)| + stft_weight *
MRSTFT(y_hat, y) + commit_weight * commit`` (+ ``adv_weight * adv + fm_weight * fm`` once the discriminators
run): the mel and MR-STFT weights are the vocoder's (mel 45 is HiFi-GAN's). The log-mel term uses the project's
mel front end, floored at ``mel_floor`` (1e-5; 1e-4 did no better in stop 27's side-by-side runs,
docs/codec_lm.md). ``decoder_init`` names a vocoder whose layers the codec's iSTFT decoder starts from (the base
preset's: the shipped one).
``decoder_only`` freezes the encoder and the codebooks (no gradient, no EMA moves, no restarts, no quantizer dropout)
so that only the decoder learns: the tokens a trained codec gives stay the same, and a token LM trained on them
keeps working with the tuned decoder (the GAN phase resumed on a codec whose tokens are in use). The commitment
term is then a constant and leaves the loss.
Validation reports ``loss`` = log-mel L1 with every codebook (``best.ckpt`` follows it) and ``stft``.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from soundsmith.audio import MelConfig, mel_spectrogram
from soundsmith.errors import TrainingError
from soundsmith.models.codec import Codec, CodecOutput
from soundsmith.nn.discriminators import (
    MultiPeriodDiscriminator,
    MultiResolutionDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives.base import Objective
from soundsmith.train.objectives.losses import multi_resolution_stft_loss
from soundsmith.train.optimizers import OptimizerSpec

DISC_START_STEP = 20000  # codec-only steps before the GAN (a GAN step costs many codec-only steps on a CPU)


class CodecObjective(Objective):
    """Codec (optimizer 0) + discriminators (optimizer 1). Weights follow EnCodec's balance loosely."""

    def __init__(
        self,
        model: Codec,
        sample_rate: int | None = None,
        disc_start_step: int | None = None,
        l1_weight: float = 1.0,
        mel_weight: float = 45.0,
        stft_weight: float = 2.5,
        commit_weight: float = 1.0,
        adv_weight: float = 1.0,
        fm_weight: float = 2.0,
        quantizer_dropout: float = 0.5,
        seed: int = 0,
        disc_clip_grad_norm: float = 10.0,
        mpd_channels: tuple[int, ...] = (16, 32, 64, 128),
        mrd_channels: int = 8,
        mel_floor: float = 1e-5,
        decoder_init: str | None = None,
        decoder_only: bool = False,
    ) -> None:
        super().__init__(model, sample_rate)
        self.disc_start_step = DISC_START_STEP if disc_start_step is None else int(disc_start_step)
        self.weights = {
            "l1": l1_weight,
            "mel": mel_weight,
            "stft": stft_weight,
            "commit": commit_weight,
            "adv": adv_weight,
            "fm": fm_weight,
        }
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise TrainingError(f"quantizer_dropout={quantizer_dropout} must be in [0, 1]")
        self.quantizer_dropout, self.seed = quantizer_dropout, seed
        self.mel_config = MelConfig.at_rate(model.config.sample_rate)  # the project's front end
        if not mel_floor > 0:
            raise TrainingError(f"mel_floor={mel_floor} must be positive")
        self.mel_floor = float(mel_floor)
        if decoder_init:  # before any resume, which then loads the run's own weights over these
            from soundsmith.models.registry import load_model

            model.init_decoder_from(load_model(decoder_init), f"decoder_init={decoder_init!r}")
        self.decoder_only = bool(decoder_only)
        self.disc_clip_grad_norm = disc_clip_grad_norm
        self.mpd = MultiPeriodDiscriminator(channels=tuple(mpd_channels))
        self.mrd = MultiResolutionDiscriminator(channels=mrd_channels)
        self._fake_cache: dict[int, Tensor] = {}

    def configure_optimizers(self, cfg: TrainConfig) -> list[Optimizer | OptimizerSpec]:
        gen = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=0.0)
        disc_params = list(self.mpd.parameters()) + list(self.mrd.parameters())
        disc = torch.optim.AdamW(disc_params, lr=cfg.lr, betas=cfg.betas, weight_decay=0.0)
        return [
            OptimizerSpec(gen),
            OptimizerSpec(disc, start_step=self.disc_start_step, clip_grad_norm=self.disc_clip_grad_norm),
        ]

    @property
    def adversarial(self) -> bool:
        return 1 in self.active_optimizers

    def draw_n_q(self) -> int | None:
        """The codebooks this step uses (None = all), a pure function of ``(seed, global_step)``."""
        gen = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:{self.global_step}:n_q".encode()))
        u, pick = (
            torch.rand((), generator=gen),
            torch.randint(1, self.model.config.num_quantizers + 1, (), generator=gen),
        )
        return int(pick) if float(u) < self.quantizer_dropout else None

    def reconstruction_losses(self, y_hat: Tensor, y: Tensor, commit: Tensor) -> dict[str, Tensor]:
        mel_hat, mel = (mel_spectrogram(a, self.mel_config, floor=self.mel_floor) for a in (y_hat, y))
        return {
            "l1": torch.mean(torch.abs(y_hat - y)),
            "mel": torch.mean(torch.abs(mel_hat - mel)),
            "stft": multi_resolution_stft_loss(y_hat, y),
            "commit": commit,
        }

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        y = batch["audio"]  # [B, T]
        if y.dim() != 2:
            raise TrainingError(f"codec expects batch['audio'] of shape [B, T], got {tuple(y.shape)}")
        if opt_index == 0:
            return self._codec_losses(y)
        if opt_index == 1:
            return self._discriminator_losses(y)
        raise TrainingError(f"codec objective has 2 optimizers, got opt_index={opt_index}")

    def _forward(self, y: Tensor, n_q: int | None) -> CodecOutput:
        """The codec's forward pass; with ``decoder_only`` the encoder and codebooks run frozen (eval mode: no EMA
        moves or restarts) and without gradient, and only the decoder is differentiated."""
        if not self.decoder_only:
            return self.model(y, n_q)
        model = self.model
        if not all(bool(layer.initialized) for layer in model.quantizer.layers):
            raise TrainingError(
                "decoder_only freezes the codebooks, and this codec's have never been trained: resume (--resume) a "
                "codec run whose codebooks are trained, or train the whole codec first (decoder_only=false)"
            )
        model.encoder.eval()
        model.quantizer.eval()
        with torch.no_grad():
            latent = model.embed(y)
            q, codes, commit = model.quantizer(latent, None)
        return CodecOutput(model.decode_latent(q, y.shape[-1]), codes, commit, latent)

    def _codec_losses(self, y: Tensor) -> dict[str, Tensor]:
        k = self.weights
        n_q = self.draw_n_q() if self.model.training and not self.decoder_only else None
        out = self._forward(y, n_q)
        parts = self.reconstruction_losses(out.audio, y, out.commit_loss)
        loss = k["l1"] * parts["l1"] + k["mel"] * parts["mel"] + k["stft"] * parts["stft"]
        if not self.decoder_only:
            loss = loss + k["commit"] * parts["commit"]
        if self.adversarial:
            with torch.no_grad():
                real = self.mpd(y) + self.mrd(y)
            fake = self.mpd(out.audio) + self.mrd(out.audio)
            parts["adv"] = generator_adversarial_loss(fake)
            parts["fm"] = feature_matching_loss(real, fake)
            loss = loss + k["adv"] * parts["adv"] + k["fm"] * parts["fm"]
            if torch.is_grad_enabled():
                self._fake_cache = {id(y): out.audio.detach()}
        parts["loss"] = loss
        parts["n_q"] = torch.tensor(float(n_q or self.model.config.num_quantizers))
        return parts

    def _discriminator_losses(self, y: Tensor) -> dict[str, Tensor]:
        y_hat = self._fake_cache.pop(id(y), None)
        if y_hat is None:
            with torch.no_grad():
                y_hat = self._forward(y, None).audio
        loss = discriminator_loss(self.mpd(y) + self.mrd(y), self.mpd(y_hat) + self.mrd(y_hat))
        return {"loss": loss, "disc": loss.detach()}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> dict[str, float]:
        """Every codebook: ``loss`` = log-mel L1, ``stft`` (MR-STFT), ``l1``, ``commit``."""
        y = batch["audio"]
        out = self.model(y)
        parts = self.reconstruction_losses(out.audio, y, out.commit_loss)
        return {
            "loss": float(parts["mel"]),
            "stft": float(parts["stft"]),
            "l1": float(parts["l1"]),
            "commit": float(parts["commit"]),
        }

    @torch.no_grad()
    def sample(self, batch: dict[str, Any]) -> Tensor | None:
        """Up to 2 reconstructions followed by the originals: ``[4, T]``."""
        y = batch["audio"][:2]
        return torch.cat([self.model(y).audio, y])


OBJECTIVE = CodecObjective
