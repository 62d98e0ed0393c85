"""Training objective for the audio tagger: multi-label binary cross-entropy over log-mel.

Optional augmentation (training only, ``objective.speed_semitones: S`` in a run config): each clip is played at a
speed of 2 ** (u / 12), u uniform in [-S, S] (pitch and tempo move together), drawn from a generator seeded by the
batch's row indices, so a resumed run replays it. It moves every instrument and event into registers the corpus
holds out, so the tagger learns classes across registers.

Mixing (``objective.mix_rate: P``, ``objective.mix_db: [low, high]``): a share P of the clips each get another clip
of the batch (the next one, rolled by a random offset) added at an RMS level u dB below their own, u uniform in
[low, high] (a negative low: louder), and take the union of both label sets. It teaches the tagger mixtures: a
quiet background under a loud foreground, an instrument under wind. Drawn from the same seeded generator, after
the speeds, so a resumed run replays it.

Beds (``objective.bed_rate: P``, ``objective.bed_db: [low, high]``, ``objective.bed_classes``): a share P of the
clips that are not themselves a bed each get a bed clip of the same batch (a clip whose labels are all
``bed_classes``: rain, wind, noise, an engine hum, the sea) added u dB below their own RMS, u uniform in [low, high],
with its label. Random partners are rarely beds (a few clips in a hundred), and a scene's bed is heard bare between
its sources, so without it the tagger learns a bed only where nothing covers it, and misses wind or hiss under a
held note (docs/evaluation.md, "Beds under sources"). Drawn after the speeds and before the mixing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from soundsmith.audio import change_speed, mel_spectrogram
from soundsmith.errors import ConfigError
from soundsmith.models.tagger import AudioTagger
from soundsmith.train.objectives.base import Objective, mix_partners, mix_settings, row_generator

# the built-in corpus's background classes (``soundsmith.data.synth.scenes.BACKGROUND_CLASSES`` and the noises)
BED_CLASSES = ("rain", "wind", "pink_noise", "white_noise", "brown_noise", "engine_hum", "seashore")


def multi_hot(labels: list[list[str]], classes: list[str], device: torch.device | None = None) -> Tensor:
    """Targets `[B, C]` from per-clip label lists; labels outside `classes` are ignored."""
    index = {name: i for i, name in enumerate(classes)}
    out = torch.zeros(len(labels), len(classes), device=device)
    for b, names in enumerate(labels):
        for name in names:
            if name in index:
                out[b, index[name]] = 1.0
    return out


def mix_clips(audio: Tensor, targets: Tensor, partner: Tensor, level_db: Tensor) -> tuple[Tensor, Tensor]:
    """Clip ``b`` plus clip ``partner[b]`` (:func:`mix_partners`); the mixed clips' targets become the union.
    ``audio [B, T]``, ``targets [B, C]``."""
    mixed, keep = mix_partners(audio, partner, level_db)
    j = partner.clamp(min=0).to(targets.device)
    union = torch.where(keep.view(-1, 1).to(targets.device), torch.maximum(targets, targets[j]), targets)
    return mixed, union


class TaggerObjective(Objective):
    """`losses(batch)` -> `{"loss": BCE}`; `validate` adds top-1 precision and F1 at threshold 0.5."""

    find_unused_parameters = False

    def __init__(
        self,
        model: AudioTagger,
        sample_rate: int | None = None,
        speed_semitones: float = 0.0,
        mix_rate: float = 0.0,
        mix_db: tuple[float, float] | list[float] = (0.0, 20.0),
        bed_rate: float = 0.0,
        bed_db: tuple[float, float] | list[float] = (6.0, 20.0),
        bed_classes: tuple[str, ...] | list[str] = BED_CLASSES,
    ) -> None:
        super().__init__(model, sample_rate)
        self.mel_cfg = model.config.mel_config()
        if not 0.0 <= speed_semitones <= 12.0:
            raise ConfigError(f"objective.speed_semitones={speed_semitones}: give 0 (off) to 12 semitones")
        self.speed_semitones = float(speed_semitones)
        self.mix_rate, self.mix_db = mix_settings(mix_rate, mix_db)
        self.bed_rate, self.bed_db = mix_settings(bed_rate, bed_db, name="bed")
        if isinstance(bed_classes, str):
            raise ConfigError(f"objective.bed_classes={bed_classes!r}: give a list of labels, e.g. [rain, wind]")
        unknown = sorted(set(bed_classes) - set(model.config.labels))
        if self.bed_rate and (unknown or not bed_classes):
            what = f"{unknown} are not among the tagger's labels" if unknown else "no label given"
            raise ConfigError(
                f"objective.bed_classes={list(bed_classes)}: {what}; list the labels of your background clips"
            )
        self.bed_classes = frozenset(bed_classes)

    def draw_speeds(self, batch: dict[str, Any], g: torch.Generator | None = None) -> Tensor:
        """Speeds ``[B]`` of the batch's clips, drawn from ``g`` (default :func:`row_generator`; 1.0 each when
        augmentation is off)."""
        n = len(batch["audio"])
        if not self.speed_semitones:
            return torch.ones(n)
        g = row_generator(batch) if g is None else g
        u = (2 * torch.rand(n, generator=g) - 1) * self.speed_semitones
        return 2.0 ** (u / 12.0)

    def draw_mixes(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(partner [n], level_db [n])``: the clip mixed into each clip (-1: none) and its level below it."""
        use = torch.rand(n, generator=g) < self.mix_rate
        offset = torch.randint(1, max(2, n), (n,), generator=g)
        level = self.mix_db[0] + (self.mix_db[1] - self.mix_db[0]) * torch.rand(n, generator=g)
        partner = (torch.arange(n) + offset) % n
        return torch.where(use & (n > 1), partner, torch.full_like(partner, -1)), level

    def draw_beds(self, labels: list[list[str]], g: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(partner [n], level_db [n])`` for the batch's ``labels``: the bed clip mixed under each clip (-1:
        none: not drawn, the clip is a bed itself, or the batch holds no bed) and its level below it."""
        n = len(labels)
        is_bed = torch.tensor([bool(ls) and set(ls) <= self.bed_classes for ls in labels])
        use = torch.rand(n, generator=g) < self.bed_rate
        pick = torch.randint(0, 1 << 30, (n,), generator=g)
        level = self.bed_db[0] + (self.bed_db[1] - self.bed_db[0]) * torch.rand(n, generator=g)
        beds = is_bed.nonzero().flatten()
        if len(beds) == 0:
            return torch.full((n,), -1, dtype=torch.long), level
        return torch.where(use & ~is_bed, beds[pick % len(beds)], torch.full_like(pick, -1)), level

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]  # [B, T]
        targets = multi_hot(batch["labels"], self.model.config.labels, device=audio.device)
        if self.training and (self.speed_semitones or self.mix_rate or self.bed_rate):
            g = row_generator(batch)
            if self.speed_semitones:
                audio = change_speed(audio, self.draw_speeds(batch, g).to(audio))
            if self.bed_rate:
                audio, targets = mix_clips(audio, targets, *self.draw_beds(batch["labels"], g))
            if self.mix_rate:
                audio, targets = mix_clips(audio, targets, *self.draw_mixes(len(audio), g))
        batch["mel"] = mel_spectrogram(audio, self.mel_cfg)  # [B, n_mels, frames]
        batch["targets"] = targets
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
