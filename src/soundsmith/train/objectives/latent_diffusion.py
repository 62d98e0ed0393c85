"""Training objective for latent diffusion: denoise mel-VAE latents of the corpus, conditioned on captions.

One step: audio ``[B, T]`` -> log-mel (the VAE's front end) -> frozen VAE (posterior mean, or a sample) x its
scale factor -> latents ``[B, C, F, T']``; captions -> the shared frozen text encoder (cached by caption); then
timesteps, noise and the target from :class:`soundsmith.sampling.diffusion.NoiseSchedule` (the definition the
samplers use too), 10 % of the captions dropped for classifier-free guidance, and the MSE between the denoiser's
prediction and the target.

The frozen VAE, vocoder and text encoder are fetched through ``model.part`` (shared per process, never
submodules), so no optimizer, EMA or training checkpoint holds them.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from soundsmith.models.latent_diffusion import LatentDiffusion
from soundsmith.sampling.diffusion import DiffusionSampler, NoiseSchedule
from soundsmith.train.objectives.base import (  # noqa: F401  (pad_tokens: re-exported)
    CaptionCache,
    Objective,
    pad_tokens,
)
from soundsmith.train.objectives.clap import caption_of


class LatentDiffusionObjective(Objective):
    """``losses(batch)`` -> ``{"loss": MSE(prediction, target)}``; ``sample`` generates from batch captions.

    Randomness (timesteps, noise, dropped captions, posterior samples) comes from a generator seeded by
    ``(seed, global_step, rank)``: a step draws the same numbers however often it is recomputed.
    """

    find_unused_parameters = True  # the null text embeddings are unused in steps that drop no caption
    sample_seconds = 2.0

    def __init__(self, model: LatentDiffusion, sample_rate: int | None = None, seed: int = 0) -> None:
        super().__init__(model, sample_rate)
        self.schedule = NoiseSchedule(**model.config.schedule_kwargs())
        DiffusionSampler(
            model.config.sampler, self.schedule
        )  # a sampler that cannot run fails now, not at sample time
        self.seed = seed
        # caption -> (token vectors [L, D], pooled [D]); a MiniLM caption is ~20 x 384 floats (~30 KB)
        self._captions = CaptionCache(self._encode_rows)

    def _generator(self, salt: str) -> torch.Generator:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        key = f"{self.seed}:{self.global_step}:{rank}:{salt}".encode()
        return torch.Generator().manual_seed(zlib.crc32(key))

    def encode_captions(self, captions: list[str]) -> tuple[Tensor, Tensor, Tensor]:
        """``(tokens [B, L, D], mask [B, L], pooled [B, D])`` on the CPU, through the per-caption cache."""
        rows = self._captions(captions)
        tokens, mask = pad_tokens([r[0] for r in rows])
        return tokens, mask, torch.stack([r[1] for r in rows])

    def _encode_rows(self, captions: list[str]) -> list[tuple[Tensor, Tensor]]:
        tokens, mask, pooled = self.model.encode_text(captions)
        return [(tokens[i, mask[i]].cpu(), pooled[i].cpu()) for i in range(len(captions))]

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]  # [B, T]
        device = audio.device
        gen = self._generator("latent") if self.model.config.latent_sample else None
        batch["latents"] = self.model.audio_to_latents(audio, generator=gen).float()  # [B, C, F, T']
        captions = [caption_of(batch, i) for i in range(len(audio))]
        batch["captions"] = captions
        tokens, mask, pooled = self.encode_captions(captions)
        batch["text_tokens"], batch["text_mask"], batch["text_pooled"] = (
            tokens.to(device),
            mask.to(device),
            pooled.to(device),
        )
        return batch

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        if "latents" not in batch:
            batch = self.prepare_batch(batch)
        # randomness first: timesteps and noise, then the dropped captions
        gen = self._generator("step")
        # a guidance-distilled denoiser never runs its dropped-caption branch in one pass: train the captioned one
        # (at scale 1: what a fine-tune of it can teach without a two-branch teacher)
        drop_prob = 0.0 if self.model.config.denoiser.guidance_embed else self.model.config.cond_drop_prob
        loss, drop = self.denoising_loss(batch, gen, drop_prob=drop_prob)
        return {"loss": loss, "dropped": drop.float().mean()}

    def denoising_loss(
        self, batch: dict[str, Any], gen: torch.Generator, drop_prob: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        """``(MSE, drop mask [B])`` of the denoiser on the batch's latents, drawing the timesteps, the noise and
        then (when ``drop_prob > 0``) the dropped captions from ``gen``."""
        x0 = batch["latents"]  # [B, C, F, T']
        x_t, t, target = self.schedule.training_pair(x0, gen)
        drop = torch.zeros(x0.shape[0], dtype=torch.bool)
        if drop_prob > 0:
            drop = torch.rand(x0.shape[0], generator=gen) < drop_prob
        pred = self.model(
            x_t,
            t.float() / self.schedule.num_train_timesteps,  # the denoiser's time in [0, 1]
            batch["text_tokens"],
            batch["text_mask"],
            batch["text_pooled"],
            drop.to(x0.device) if drop_prob > 0 else None,
        )
        return F.mse_loss(pred.float(), target.float()), drop

    @torch.no_grad()
    def sample(self, batch: dict[str, Any]) -> Tensor | None:
        """Up to 2 clips of ``sample_seconds`` from the first captions of ``batch``: ``[N, T]`` float."""
        from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

        captions = batch.get("captions") or [caption_of(batch, i) for i in range(len(batch["audio"]))]
        was_training = self.model.training
        pipe = LatentDiffusionPipeline(self.model)
        try:
            clips = [
                pipe(c, duration=self.sample_seconds, seed=i, progress=False).audio[0]
                for i, c in enumerate(captions[:2])
            ]
        finally:
            self.model.train(was_training)
        return torch.from_numpy(np.stack(clips))  # [N, T]


OBJECTIVE = LatentDiffusionObjective
