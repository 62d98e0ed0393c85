"""Token LM training: cross-entropy of the next pattern step's codes, with caption dropout for guidance.

One step: audio ``[B, T]`` -> frozen codec -> codes ``[B, K, T']`` -> interleaving pattern -> sequence
``[B, K, S]``; the network reads the sequence shifted right by one step (a start column of special tokens) and
predicts each step's ``K`` codes. The loss is the mean cross-entropy over the slots that hold a code (the
pattern's padding slots are not predicted). ``cond_drop_prob`` of the captions are replaced by the null text,
drawn from a generator seeded by ``(seed, global_step)``.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from soundsmith.models.token_lm import TokenLM, build_pattern, valid_mask
from soundsmith.train.objectives.base import CaptionCache, Objective, pad_tokens
from soundsmith.train.objectives.clap import caption_of


class TokenLMObjective(Objective):
    """``losses(batch)`` -> ``{"loss": CE over valid slots, "dropped": fraction of null captions}``."""

    find_unused_parameters = True  # the null text is unused in steps that drop no caption
    sample_seconds = 2.0

    def __init__(self, model: TokenLM, sample_rate: int | None = None, seed: int = 0) -> None:
        super().__init__(model, sample_rate)
        self.seed = seed
        self._captions = CaptionCache(self._encode_rows)  # caption -> its token vectors [L, D]

    def encode_captions(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """``(tokens [B, L, D], mask [B, L])`` on the CPU, through a per-caption cache."""
        return pad_tokens(self._captions(captions))

    def _encode_rows(self, captions: list[str]) -> list[Tensor]:
        tokens, mask = self.model.encode_text(captions)
        return [tokens[i, mask[i]].cpu() for i in range(len(captions))]

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]  # [B, T]
        batch["codes"] = codes = self.model.audio_to_codes(audio)  # [B, K, T']
        batch["seq"] = build_pattern(codes, self.model.config.pattern, self.model.config.special)  # [B, K, S]
        captions = [caption_of(batch, i) for i in range(len(audio))]
        batch["captions"] = captions
        tokens, mask = self.encode_captions(captions)
        batch["text_tokens"], batch["text_mask"] = tokens.to(audio.device), mask.to(audio.device)
        return batch

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        if "seq" not in batch:
            batch = self.prepare_batch(batch)
        seq, codes = batch["seq"], batch["codes"]  # [B, K, S], [B, K, T']
        B, K, T = codes.shape
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        gen = torch.Generator().manual_seed(
            zlib.crc32(f"{self.seed}:{self.global_step}:{rank}:drop".encode())
        )
        drop = (torch.rand(B, generator=gen) < self.model.config.cond_drop_prob).to(seq.device)
        logits = self.model(self.model.inputs_for(seq), batch["text_tokens"], batch["text_mask"], drop)
        valid = valid_mask(self.model.config.pattern, K, T, seq.device)[None].expand(B, K, -1)  # [B, K, S]
        loss = F.cross_entropy(logits[valid].float(), seq[valid])
        return {"loss": loss, "dropped": drop.float().mean()}

    @torch.no_grad()
    def sample(self, batch: dict[str, Any]) -> Tensor | None:
        """Up to 2 clips of ``sample_seconds`` from the batch's first captions: ``[N, T]``."""
        from soundsmith.pipelines.token_lm import TokenLMPipeline

        captions = batch.get("captions") or [caption_of(batch, i) for i in range(len(batch["audio"]))]
        was_training = self.model.training
        pipe = TokenLMPipeline(self.model)
        try:
            clips = [
                torch.from_numpy(pipe(c, duration=self.sample_seconds, seed=i, progress=False).audio[0])
                for i, c in enumerate(captions[:2])
            ]
        finally:
            self.model.train(was_training)
        return torch.stack(clips)


OBJECTIVE = TokenLMObjective
