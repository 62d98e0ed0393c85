"""Training objective for the audio tagger: multi-label binary cross-entropy over log-mel."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from soundsmith.audio import mel_spectrogram
from soundsmith.models.tagger import AudioTagger
from soundsmith.train.objectives.base import Objective


def multi_hot(labels: list[list[str]], classes: list[str], device: torch.device | None = None) -> Tensor:
    """Targets `[B, C]` from per-clip label lists; labels outside `classes` are ignored."""
    index = {name: i for i, name in enumerate(classes)}
    out = torch.zeros(len(labels), len(classes), device=device)
    for b, names in enumerate(labels):
        for name in names:
            if name in index:
                out[b, index[name]] = 1.0
    return out


class TaggerObjective(Objective):
    """`losses(batch)` -> `{"loss": BCE}`; `validate` adds top-1 precision and F1 at threshold 0.5."""

    find_unused_parameters = False

    def __init__(self, model: AudioTagger, sample_rate: int | None = None) -> None:
        super().__init__(model, sample_rate)
        self.mel_cfg = model.config.mel_config()

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]  # [B, T]
        batch["mel"] = mel_spectrogram(audio, self.mel_cfg)  # [B, n_mels, frames]
        batch["targets"] = multi_hot(batch["labels"], self.model.config.labels, device=audio.device)
        return batch

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        if "targets" not in batch:
            batch = self.prepare_batch(batch)
        logits = self.model(batch["mel"])  # [B, C]
        return {"loss": F.binary_cross_entropy_with_logits(logits.float(), batch["targets"])}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> dict[str, float]:
        if "targets" not in batch:
            batch = self.prepare_batch(batch)
        logits = self.model(batch["mel"]).float()
        targets = batch["targets"]
        pred = logits.sigmoid() >= 0.5
        tp = (pred & targets.bool()).sum().float()
        f1 = 2 * tp / (pred.sum() + targets.sum()).clamp(min=1)
        top1 = targets.gather(1, logits.argmax(dim=1, keepdim=True)).mean()
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        return {"loss": float(loss), "top1_precision": float(top1), "f1": float(f1)}


OBJECTIVE = TaggerObjective
