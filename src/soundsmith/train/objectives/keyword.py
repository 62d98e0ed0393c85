"""Training objective for the spoken-word recognizer: cross-entropy over words + "no word", with augmentation.

Targets come from the manifest labels: a clip with exactly one ``speech_<word>`` label of the vocabulary is that
word, a clip with none is "no word", and a clip with several words (a scene) is left out of the loss.

Augmentation (training only), drawn first from a generator seeded by the batch's row indices (so a resumed run
replays it), then applied: speed (resampling by 0.85-1.15, which moves pitch and tempo together), a time shift
(+-0.25 s, zero-filled), a "no word" clip of the same batch mixed into half the clips (``mix_rate`` 0.5), 0-20 dB
below (``mix_db``; a negative low lets it be louder than the word, as instruments in scenes are), white or pink
noise (10-40 dB below), gain (+-10 dB); then on the log-mel a frequency warp (vocal-tract-length perturbation,
0.9-1.1) and one frequency and one time mask (SpecAugment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from soundsmith.audio import change_speed
from soundsmith.models.keyword import KeywordSpotter
from soundsmith.train.objectives.base import Objective, mix_partners, mix_settings, row_generator

IGNORE = -100


def keyword_targets(labels: list[list[str]], words: list[str], device: torch.device | None = None) -> Tensor:
    """Class ids ``[B]``: the word's index, ``len(words)`` for no word, ``IGNORE`` for several words."""
    index = {f"speech_{w}": i for i, w in enumerate(words)}
    out = []
    for names in labels:
        spoken = [n for n in names if n.startswith("speech_")]
        if not spoken:
            out.append(len(words))
        elif len(spoken) == 1 and spoken[0] in index:
            out.append(index[spoken[0]])
        else:
            out.append(IGNORE)
    return torch.tensor(out, dtype=torch.long, device=device)


@dataclass
class AugmentDraws:
    """Per-clip random parameters of one batch (all ``[B]``)."""

    speed: Tensor
    shift: Tensor  # samples
    mix_with: Tensor  # index of the no-word clip mixed in, -1 for none
    mix_db: Tensor
    noise_kind: Tensor  # 0 none, 1 white, 2 pink
    noise_db: Tensor
    gain_db: Tensor
    warp: Tensor
    freq_mask: Tensor  # [B, 2] start, width (bins)
    time_mask: Tensor  # [B, 2] start, width (frames)


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def draw_augment(
    g: torch.Generator,
    targets: Tensor,
    n_words: int,
    sample_rate: int,
    n_mels: int,
    n_frames: int,
    mix_rate: float = 0.5,
    mix_db: tuple[float, float] = (0.0, 20.0),
) -> AugmentDraws:
    """Draw every augmentation parameter of a batch with ``targets [B]`` from ``g``: a no-word clip is mixed into
    a share ``mix_rate`` of the clips, ``mix_db`` (low, high) dB below the clip (a negative low: louder)."""
    B = targets.shape[0]
    no_word = torch.nonzero(targets.cpu() == n_words).flatten()
    mix_with = torch.full((B,), -1, dtype=torch.long)
    pick = torch.randint(0, max(1, no_word.numel()), (B,), generator=g)
    use_mix = torch.rand(B, generator=g) < mix_rate
    if no_word.numel():
        mix_with = torch.where(use_mix, no_word[pick], mix_with)
    fw = torch.randint(0, 7, (B,), generator=g)
    tw = torch.randint(0, 21, (B,), generator=g)
    return AugmentDraws(
        speed=_uniform(g, B, 0.85, 1.15),
        shift=torch.randint(-sample_rate // 4, sample_rate // 4 + 1, (B,), generator=g),
        mix_with=mix_with,
        mix_db=_uniform(g, B, float(mix_db[0]), float(mix_db[1])),
        noise_kind=torch.randint(0, 3, (B,), generator=g),
        noise_db=_uniform(g, B, 10.0, 40.0),
        gain_db=_uniform(g, B, -10.0, 10.0),
        warp=_uniform(g, B, 0.9, 1.1),
        freq_mask=torch.stack([(torch.rand(B, generator=g) * (n_mels - fw)).long(), fw], dim=1),
        time_mask=torch.stack(
            [(torch.rand(B, generator=g) * (n_frames - tw).clamp(min=1)).long(), tw], dim=1
        ),
    )


def _rms(x: Tensor) -> Tensor:
    return x.pow(2).mean(dim=-1).sqrt().clamp(min=1e-8)


def augment_audio(audio: Tensor, d: AugmentDraws, g: torch.Generator) -> Tensor:
    """Apply the waveform augmentations to ``audio [B, T]``; returns ``[B, T]``."""
    B, T = audio.shape
    out = torch.zeros_like(audio)
    fast = change_speed(audio, d.speed.to(audio))  # [B, T], zero past each clip's new end
    for b in range(B):
        x = fast[b]
        s = int(d.shift[b])
        if s >= 0:
            out[b, s : s + x.shape[0]] = x[: T - s]
        else:
            out[b, : x.shape[0] + s] = x[-s:]
    mixed, _ = mix_partners(out, d.mix_with, d.mix_db)
    level = _rms(out)  # [B]
    noise = torch.randn(B, T, generator=g).to(audio)
    pink = torch.fft.irfft(
        torch.fft.rfft(noise, dim=-1) / torch.arange(1, T // 2 + 2, device=audio.device).sqrt(), n=T, dim=-1
    )
    noise = torch.where((d.noise_kind == 2).to(audio.device).view(B, 1), pink, noise)
    noise = noise * (level / _rms(noise) * 10 ** (-d.noise_db.to(audio) / 20)).view(B, 1)
    mixed = mixed + noise * (d.noise_kind > 0).to(audio).view(B, 1)
    return mixed * (10 ** (d.gain_db.to(audio) / 20)).view(B, 1)


def augment_mel(mel: Tensor, d: AugmentDraws) -> Tensor:
    """Frequency warp and masks on log-mel ``[B, M, F]``; masked cells take the clip's minimum."""
    B, M, Fr = mel.shape
    out = mel.clone()
    for b in range(B):
        w = float(d.warp[b])
        src = torch.clamp(torch.arange(M, dtype=mel.dtype, device=mel.device) / w, max=M - 1)
        lo = src.floor().long()
        hi = torch.clamp(lo + 1, max=M - 1)
        frac = (src - lo).view(M, 1)
        out[b] = mel[b, lo] * (1 - frac) + mel[b, hi] * frac
        floor = out[b].min()
        f0, fw = int(d.freq_mask[b, 0]), int(d.freq_mask[b, 1])
        t0, tw = int(d.time_mask[b, 0]), int(d.time_mask[b, 1])
        out[b, f0 : f0 + fw, :] = floor
        out[b, :, t0 : t0 + tw] = floor
    return out


class KeywordObjective(Objective):
    """``losses(batch) -> {"loss": cross-entropy}``; ``validate`` adds accuracy (clips with a target)."""

    find_unused_parameters = False

    def __init__(
        self,
        model: KeywordSpotter,
        sample_rate: int | None = None,
        label_smoothing: float = 0.05,
        mix_rate: float = 0.5,
        mix_db: tuple[float, float] | list[float] = (0.0, 20.0),
    ):
        super().__init__(model, sample_rate)
        self.label_smoothing = label_smoothing
        self.mix_rate, self.mix_db = mix_settings(mix_rate, mix_db)

    @torch.no_grad()
    def prepare_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"]  # [B, T]
        cfg = self.model.config
        targets = keyword_targets(batch["labels"], cfg.words, device=audio.device)
        if self.training:
            g = row_generator(batch)
            frames = audio.shape[1] // cfg.mel.hop_length + 1
            d = draw_augment(
                g, targets, len(cfg.words), cfg.mel.sample_rate, cfg.mel.n_mels, frames, self.mix_rate, self.mix_db
            )
            mel = augment_mel(self.model.features(augment_audio(audio, d, g)), d)
        else:
            mel = self.model.features(audio)
        batch["kw_mel"] = mel  # [B, n_mels, frames]
        batch["kw_targets"] = targets
        return batch

    def losses(self, batch: dict[str, Any], opt_index: int = 0) -> dict[str, Tensor]:
        if "kw_targets" not in batch:
            batch = self.prepare_batch(batch)
        logits = self.model.forward_mel(batch["kw_mel"]).float()  # [B, K + 1]
        targets = batch["kw_targets"]
        if not bool((targets != IGNORE).any()):
            return {"loss": logits.sum() * 0.0}
        loss = F.cross_entropy(logits, targets, ignore_index=IGNORE, label_smoothing=self.label_smoothing)
        return {"loss": loss}

    @torch.no_grad()
    def validate(self, batch: dict[str, Any]) -> dict[str, float]:
        if "kw_targets" not in batch:
            batch = self.prepare_batch(batch)
        logits = self.model.forward_mel(batch["kw_mel"]).float()
        targets = batch["kw_targets"]
        keep = targets != IGNORE
        if not bool(keep.any()):
            return {}
        loss = F.cross_entropy(logits[keep], targets[keep])
        acc = (logits[keep].argmax(dim=-1) == targets[keep]).float().mean()
        return {"loss": float(loss), "accuracy": float(acc)}


OBJECTIVE = KeywordObjective
