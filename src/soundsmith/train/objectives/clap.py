"""Training objective for the CLAP-style model: symmetric InfoNCE between audio and caption embeddings.

The frozen text encoder (`model.config.text_encoder`) is built on first use and kept outside the module tree,
so it is neither optimised nor saved with the weights.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from soundsmith.audio import mel_spectrogram
from soundsmith.models.clap import AudioTextContrastive
from soundsmith.train.objectives.base import CaptionCache, Objective


def contrastive_targets(captions: list[str], device: torch.device | None = None) -> Tensor:
    """`[B, B]` row-normalised targets: clips with identical captions are all positives of each other
    (avoids punishing the model for duplicate captions in a batch); the identity when captions are unique."""
    same = torch.tensor([[a == b for b in captions] for a in captions], dtype=torch.float32, device=device)
    return same / same.sum(dim=1, keepdim=True)


def clap_loss(audio: Tensor, text: Tensor, scale: Tensor, targets: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE: mean of audio->text and text->audio cross-entropy over `scale * audio @ text.T`.

    `audio [B, P]`, `text [B, P]` L2-normalised; `targets [B, B]` (default identity).
    """
    logits = scale * audio.float() @ text.float().T  # [B, B]
    if targets is None:
        targets = torch.eye(len(audio), device=audio.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T))


def caption_of(batch: dict[str, Any], i: int) -> str:
    """The item's caption, or its labels as text when it has none."""
    caption = batch["caption"][i]
    return caption if caption else (", ".join(batch["labels"][i]) or "a sound")


class ClapObjective(Objective):
    """`losses(batch)` -> `{"loss": InfoNCE, "temperature": 1/scale}`; `validate` adds in-batch recall@1."""

    find_unused_parameters = False

    def __init__(
        self, model: AudioTextContrastive, sample_rate: int | None = None, text_encoder=None
    ) -> None:
        super().__init__(model, sample_rate)
        self.mel_cfg = model.config.mel_config()
        self._text = [text_encoder]  # a list keeps the frozen encoder out of the module tree
        self._captions = CaptionCache(  # pooled caption embeddings [D] by caption
            lambda missing: list(self.text_encoder().encode(missing).pooled.float().cpu()), size=200_000
        )

    def text_encoder(self):
        if self._text[0] is None:
            from soundsmith.models.registry import text_encoder

            self._text[0] = text_encoder(self.model.config.text_encoder)
        return self._text[0]

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]  # [B, T]
        captions = [caption_of(batch, i) for i in range(len(audio))]
        batch["mel"] = mel_spectrogram(audio, self.mel_cfg)  # [B, n_mels, frames]
        batch["text_pooled"] = self.encode_captions(captions).to(audio.device)  # [B, D]
        batch["targets"] = contrastive_targets(captions, device=audio.device)
        return batch

    def encode_captions(self, captions: list[str]) -> Tensor:
        """Pooled text embeddings ``[B, D]`` (float32, CPU), through the per-caption cache."""
        return torch.stack(self._captions(captions))

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        if "text_pooled" not in batch:
            batch = self.prepare_batch(batch)
        a, t, scale = self.model(batch["mel"], batch["text_pooled"])
        return {"loss": clap_loss(a, t, scale, batch["targets"]), "temperature": 1.0 / scale.detach()}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> dict[str, float]:
        if "text_pooled" not in batch:
            batch = self.prepare_batch(batch)
        a, t, scale = self.model(batch["mel"], batch["text_pooled"])
        hit = batch["targets"].gather(1, (a @ t.T).argmax(dim=1, keepdim=True)) > 0
        return {
            "loss": float(clap_loss(a, t, scale, batch["targets"])),
            "recall_at_1": float(hit.float().mean()),
        }


OBJECTIVE = ClapObjective
