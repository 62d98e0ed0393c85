"""What the pipelines of :class:`~soundsmith.models.latent_audio.LatentAudioModel` families share.

:class:`LatentAudioPipeline` checks the model's parts once, takes its default duration and duration limit from the
config, turns a duration into an exact number of samples, refuses an empty prompt, and ends every generation the
same way: scaled VAE latents -> VAE decoder -> vocoder -> float32 audio of exactly the requested length.
A family's pipeline subclasses it and implements :meth:`Pipeline.generate` (its own sampling stages).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from soundsmith.errors import ConfigError, TextError
from soundsmith.models.latent_audio import LatentAudioModel
from soundsmith.pipelines.base import ModelSource, Pipeline


class LatentAudioPipeline(Pipeline):
    """Base of the latent-audio pipelines; ``prompt_example`` is the description an empty-prompt error suggests."""

    prompt_example: str = "a bell rings twice"

    def __init__(
        self, model: LatentAudioModel, text_encoder: Any = None, source: ModelSource | None = None
    ) -> None:
        super().__init__(model, text_encoder=text_encoder, source=source)
        model.check_parts()
        self.default_duration = float(model.config.duration)

    def num_samples(self, duration: float) -> int:
        """Samples of a clip of ``duration`` seconds at the model's rate (at least one)."""
        return max(1, int(round(duration * self.sample_rate)))

    def check_duration(self, duration: float) -> None:
        """A clear error if ``duration`` is over the model's ``max_duration``."""
        limit = self.model.config.max_duration
        if duration > limit:
            raise ConfigError(f"duration={duration} s is over this model's {limit:g} s limit")

    def check_prompt(self, prompt: str) -> None:
        """A clear error for an empty prompt (these families always condition on text)."""
        if not prompt.strip():
            raise TextError(f'the prompt is empty; describe the sound, e.g. "{self.prompt_example}"')

    def decode(self, latents: Tensor, num_samples: int, refine: Sequence[int] | None = None) -> np.ndarray:
        """Scaled latents (the model's layout) -> VAE decode -> vocoder -> float32 audio ``[B, num_samples]``, each
        row scaled down to peak at :data:`PEAK_CEILING` if it would go past it (no clipping in a 16-bit file).
        ``refine``: each row's rounds of the vocoder's refinement (default: the config's ``vocoder_refine``)."""
        model = self.model
        if refine is None or len(set(refine)) == 1:
            audio = model.latents_to_audio(latents, num_samples, None if refine is None else refine[0])
        else:  # rows decoded alone are the rows of a batch (the VAE and the vocoder are per clip)
            audio = torch.cat(
                [model.latents_to_audio(latents[i : i + 1], num_samples, r) for i, r in enumerate(refine)]
            )
        return limit_peak(audio.float().cpu().numpy())


PEAK_CEILING = 0.99


def raise_to_floor(
    audio: np.ndarray, floor_db: float, ceiling: float = PEAK_CEILING
) -> tuple[np.ndarray, list[float]]:
    """``audio [B, T]`` with every row whose RMS level is below ``floor_db`` dBFS raised to it, no row's peak
    past ``ceiling``; also each row's gain in dB (0 for rows left alone; silent rows stay silent)."""
    held = [_level_bound(row, floor_db, up=True, ceiling=ceiling) for row in np.asarray(audio, dtype=np.float32)]
    out = np.stack([row for row, _ in held]) if held else np.array(audio, dtype=np.float32, copy=True)
    return out, [gain for _, gain in held]


def hold_to_dynamics(
    clip: np.ndarray, asked: str | None, bounds: dict[str, float], ceiling: float = PEAK_CEILING
) -> tuple[np.ndarray, float]:
    """``(clip, gain in dB)``: ``clip [T]`` asked ``"soft"`` brought down to ``bounds["soft"]`` dBFS RMS when it is
    louder, asked ``"loud"`` brought up to ``bounds["loud"]`` when it is quieter (never past ``ceiling`` at its
    peak); otherwise (nothing asked, no bound for it, already within it, silent) as it is, gain 0."""
    if asked not in bounds:
        return np.asarray(clip, dtype=np.float32), 0.0
    return _level_bound(clip, bounds[asked], up=asked == "loud", ceiling=ceiling)


def _level_bound(clip: np.ndarray, bound_db: float, up: bool, ceiling: float) -> tuple[np.ndarray, float]:
    """``(clip, gain in dB)``: ``clip [T]`` raised to ``bound_db`` dBFS RMS when quieter (``up``: a floor, never
    past ``ceiling`` at its peak) or lowered to it when louder (a ceiling of level); as it is, gain 0, when
    already on the right side of it or silent."""
    from soundsmith.eval.metrics import rms_dbfs

    x = np.asarray(clip, dtype=np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak <= 0.0:
        return x, 0.0
    level = rms_dbfs(x)
    if up and level < bound_db:
        gain = max(1.0, min(10 ** ((bound_db - level) / 20), ceiling / peak))
    elif not up and level > bound_db:
        gain = 10 ** ((bound_db - level) / 20)
    else:
        return x, 0.0
    return (x * gain).astype(np.float32), round(20 * math.log10(gain), 2)


def limit_peak(audio: np.ndarray, ceiling: float = PEAK_CEILING) -> np.ndarray:
    """``audio [..., T]`` with every row whose peak exceeds ``ceiling`` scaled to peak exactly there (the others
    unchanged): a generator's output must not clip when written as PCM."""
    peak = np.abs(audio).max(axis=-1, keepdims=True) if audio.size else np.zeros(audio.shape[:-1] + (1,))
    return (audio * np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))).astype(audio.dtype, copy=False)
