"""Inference pipelines: text (or other conditioning) in, waveform out; one per family, same call signature.

Every pipeline is called as ``pipe(prompt, duration=..., steps=None, guidance=None, seed=0, num_candidates=1,
**family_kwargs)`` and returns a :class:`GeneratedAudio`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class GeneratedAudio:
    """The result of a pipeline call.

    audio: float32 ``[N, T]`` (N candidates), in [-1, 1].
    """

    audio: np.ndarray
    sample_rate: int
    prompt: str
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path, index: int | None = None) -> list[Path]:
        """Write the candidates as audio files carrying prompt, seed and model in their metadata.

        With one candidate the file is ``path``; with several, ``stem-0.wav``, ``stem-1.wav``... Returns the paths.
        """
        from soundsmith.audio import save_audio

        path = Path(path)
        indices = range(len(self.audio)) if index is None else [index]
        out = []
        for i in indices:
            target = path if len(indices) == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")
            metadata = {"prompt": self.prompt, "seed": str(self.seed)}
            metadata.update({k: str(v) for k, v in self.meta.items()})
            save_audio(target, self.audio[i], self.sample_rate, metadata=metadata)
            out.append(target)
        return out


MAX_DURATION_S = 600.0
MAX_CANDIDATES = 64


def check_request(prompt: Any, duration: float, num_candidates: int) -> None:
    """Validate the arguments every pipeline shares; raise a clear error naming the bad value.

    ``prompt`` may be ``""`` (unconditional generation); a prompt of only white space is an error, since it
    almost always means a quoting mistake on the command line.
    """
    import math

    from soundsmith.errors import ConfigError, TextError

    if not isinstance(prompt, str):
        raise TextError(f"prompt must be text, got {type(prompt).__name__}")
    if prompt and not prompt.strip():
        raise TextError('the prompt is only white space; give a description such as "a bell rings twice"')
    if not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration <= 0:
        raise ConfigError(f"duration={duration!r} must be a positive number of seconds")
    if duration > MAX_DURATION_S:
        raise ConfigError(
            f"duration={duration} s is over the {MAX_DURATION_S:.0f} s limit; generate shorter clips"
        )
    if not isinstance(num_candidates, int) or not 1 <= num_candidates <= MAX_CANDIDATES:
        raise ConfigError(f"num_candidates={num_candidates!r} must be an integer from 1 to {MAX_CANDIDATES}")


PIPELINES: dict[str, str] = {
    "wavenet": "soundsmith.pipelines.wavenet:WaveNetPipeline",
}


def has_pipeline(family: str) -> bool:
    return family in PIPELINES


def pipeline_for(model: Any, family: str, device: str = "cpu") -> Any:
    """Wrap a loaded model of ``family`` in its inference pipeline (building its text encoder, if any)."""
    import importlib

    from soundsmith.errors import ModelError

    if family not in PIPELINES:
        raise ModelError(
            f"model family {family!r} does not generate audio; families that generate: {sorted(PIPELINES)}"
        )
    module, cls_name = PIPELINES[family].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    text_spec = getattr(model.config, "text_encoder", "") or ""
    text_encoder = None
    if text_spec:
        from soundsmith.text import build_text_encoder

        text_encoder = build_text_encoder(text_spec).to(device)
    return cls(model, text_encoder=text_encoder)


def load_pipeline(name_or_path: str | Path, device: str = "cpu") -> Any:
    """Load a model directory / run directory / shipped name and return its pipeline."""
    from soundsmith.models.registry import load_model, read_model_config, resolve_model_dir

    directory = resolve_model_dir(name_or_path)
    family = read_model_config(directory)["family"]
    model = load_model(directory, device=device)
    return pipeline_for(model, family, device=device)
