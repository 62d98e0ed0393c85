"""Training objective for the audio tagger: multi-label binary cross-entropy over log-mel.

Optional augmentation (training only, ``objective.speed_semitones: S`` in a run config): each clip is played at a
speed of 2 ** (u / 12), u uniform in [-S, S] (pitch and tempo move together), drawn from a generator seeded by the
batch's row indices, so a resumed run replays it. It moves every instrument and event into registers the corpus
holds out, so the tagger learns classes across registers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from soundsmith.audio import change_speed, mel_spectrogram
from soundsmith.errors import ConfigError
from soundsmith.models.tagger import AudioTagger
from soundsmith.train.objectives.base import Objective, row_generator


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

    def __init__(
        self, model: AudioTagger, sample_rate: int | None = None, speed_semitones: float = 0.0
    ) -> None:
        super().__init__(model, sample_rate)
        self.mel_cfg = model.config.mel_config()
        if not 0.0 <= speed_semitones <= 12.0:
            raise ConfigError(f"objective.speed_semitones={speed_semitones}: give 0 (off) to 12 semitones")
        self.speed_semitones = float(speed_semitones)

    def draw_speeds(self, batch: dict[str, Any]) -> Tensor:
        """Speeds ``[B]`` of the batch's clips, drawn from :func:`row_generator` (1.0 each when augmentation is off)."""
        n = len(batch["audio"])
        if not self.speed_semitones:
            return torch.ones(n)
        u = (2 * torch.rand(n, generator=row_generator(batch)) - 1) * self.speed_semitones
        return 2.0 ** (u / 12.0)

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]  # [B, T]
        if self.training and self.speed_semitones:
            audio = change_speed(audio, self.draw_speeds(batch).to(audio))
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
