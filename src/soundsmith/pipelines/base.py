"""What every pipeline shares: the request checks, seeding, several prompts, candidates, provenance, the result.

A family's pipeline subclasses :class:`Pipeline` and implements only :meth:`Pipeline.generate` (the numbered
stages particular to the family). Every pipeline is then called the same way::

    pipe(prompt, duration=None, steps=None, guidance=None, seed=0, num_candidates=1, progress=True, **family_kwargs)

and returns a :class:`GeneratedAudio` (or a list of them, one per prompt, when ``prompt`` is a list).
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundsmith._version import __version__
from soundsmith.errors import ConfigError, TextError

DEFAULT_DURATION_S = 1.0  # seconds generated when the caller gives no duration (Pipeline.default_duration)
MAX_DURATION_S = 600.0  # the one limit on a request's duration (library, CLI and server)
MAX_CANDIDATES = 64


@dataclass
class GeneratedAudio:
    """The result of a pipeline call for one prompt.

    audio: float32 ``[N, T]`` (N candidates; candidate ``i`` drawn with seed ``seed + i``), in [-1, 1].
    meta: provenance (model, weights hash, soundsmith version, family, steps/guidance when given) and the
        family's own settings; written into saved files' metadata.
    """

    audio: np.ndarray
    sample_rate: int
    prompt: str
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path, index: int | None = None) -> list[Path]:
        """Write the candidates as audio files carrying prompt, seed and provenance in their metadata.

        With one candidate the file is ``path``; with several, ``stem-0.wav``, ``stem-1.wav``... Returns the paths.
        """
        from soundsmith.audio import save_audio

        path = Path(path)
        indices = range(len(self.audio)) if index is None else [index]
        out = []
        # candidates may come back re-ranked (best first): their own seeds and scores travel with them
        seeds = list(self.meta.get("candidate_seeds") or [self.seed + j for j in range(len(self.audio))])
        scores = self.meta.get("clap_scores")
        for i in indices:
            target = path if len(indices) == 1 else path.with_name(f"{path.stem}-{i}{path.suffix}")
            metadata = {
                k: str(v) for k, v in self.meta.items() if k not in ("candidate_seeds", "clap_scores")
            }
            metadata.update({"prompt": self.prompt, "seed": str(seeds[i])})
            if scores is not None:
                metadata["clap_score"] = f"{float(scores[i]):.4f}"
            save_audio(target, self.audio[i], self.sample_rate, metadata=metadata)
            out.append(target)
        return out


def check_request(prompt: Any, duration: Any, num_candidates: Any) -> None:
    """Validate the arguments every pipeline shares; raise a clear error naming the bad value.

    ``prompt`` may be ``""`` (unconditional generation); a prompt of only white space is an error, since it
    almost always means a quoting mistake on the command line.
    """
    if not isinstance(prompt, str):
        raise TextError(f"prompt must be text, got {type(prompt).__name__}")
    if prompt and not prompt.strip():
        raise TextError('the prompt is only white space; give a description such as "a bell rings twice"')
    if (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float))
        or not math.isfinite(duration)
        or duration <= 0
    ):
        raise ConfigError(f"duration={duration!r} must be a positive number of seconds")
    if duration > MAX_DURATION_S:
        raise ConfigError(
            f"duration={duration} s is over the {MAX_DURATION_S:.0f} s limit; generate shorter clips"
        )
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int):
        raise ConfigError(f"num_candidates={num_candidates!r} must be an integer from 1 to {MAX_CANDIDATES}")
    if not 1 <= num_candidates <= MAX_CANDIDATES:
        raise ConfigError(f"num_candidates={num_candidates!r} must be an integer from 1 to {MAX_CANDIDATES}")


@dataclass(frozen=True)
class ModelSource:
    """Where a pipeline's model came from (provenance): the name it was loaded by, its directory, weights hash."""

    name: str
    directory: str = ""
    weights_sha256: str = ""


def state_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over a model's state dict (names and bytes, in order): the weights hash of an unsaved model."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Pipeline(ABC):
    """Base of the inference pipelines: prompt(s) in, :class:`GeneratedAudio` out.

    Subclasses set :attr:`family` and implement :meth:`generate`. The constructor takes the model, optionally its
    frozen text encoder (by default the shared one its ``config.text_encoder`` names, on the model's device) and
    the model's :class:`ModelSource` (the loader passes it; provenance then names the model and its file hash).
    """

    family: str = ""
    default_duration: float = DEFAULT_DURATION_S

    def __init__(
        self, model: torch.nn.Module, text_encoder: Any = None, source: ModelSource | None = None
    ) -> None:
        self.model = model.eval()
        spec = getattr(getattr(model, "config", None), "text_encoder", "") or ""
        if text_encoder is None and spec:
            from soundsmith.models.registry import text_encoder as shared_text_encoder

            text_encoder = shared_text_encoder(spec, self.device)
        self.text_encoder = text_encoder
        self.source = source
        self._weights_hash = source.weights_sha256 if source is not None else ""

    @property
    def device(self) -> torch.device:
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.sample_rate)

    def provenance(self, steps: int | None = None, guidance: float | None = None) -> dict[str, Any]:
        """What made the audio: model name, weights hash, soundsmith version, family, and steps/guidance if given."""
        if not self._weights_hash:
            self._weights_hash = state_sha256(self.model)
        meta: dict[str, Any] = {
            "family": self.family,
            "model": self.source.name
            if self.source is not None
            else f"(unsaved {type(self.model).__name__})",
            "weights_sha256": self._weights_hash,
            "soundsmith_version": __version__,
        }
        if steps is not None:
            meta["steps"] = steps
        if guidance is not None:
            meta["guidance"] = guidance
        return meta

    def __call__(
        self,
        prompt: str | Sequence[str] = "",
        duration: float | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        num_candidates: int = 1,
        progress: bool = True,
        **family_kwargs: Any,
    ) -> GeneratedAudio | list[GeneratedAudio]:
        """Generate ``num_candidates`` clips of ``duration`` seconds for ``prompt``.

        ``prompt`` may be a list: the result is then a list with one :class:`GeneratedAudio` per prompt, each equal
        to the call with that prompt alone (every prompt uses the same ``seed``). Candidate ``i`` of a prompt uses
        seed ``seed + i``, so candidates equal single runs.
        """
        # 1. validate the request before any work
        single = isinstance(prompt, str)
        prompts = [prompt] if single or not isinstance(prompt, (list, tuple)) else list(prompt)
        if not prompts:
            raise TextError("the list of prompts is empty; give at least one prompt")
        duration = self.default_duration if duration is None else duration
        for p in prompts:
            check_request(p, duration, num_candidates)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed={seed!r} must be an integer")

        # 2. one generation per prompt; candidate i draws from seed + i
        seeds = [int(seed) + i for i in range(num_candidates)]
        results = []
        for p in prompts:
            audio, meta = self.generate(
                p, duration, steps=steps, guidance=guidance, seeds=seeds, progress=progress, **family_kwargs
            )  # [N, T]
            # 3. the result with its provenance
            results.append(
                GeneratedAudio(
                    audio=audio,
                    sample_rate=self.sample_rate,
                    prompt=p,
                    seed=int(seed),
                    meta={**self.provenance(steps, guidance), **meta},
                )
            )
        return results[0] if single else results

    @abstractmethod
    def generate(
        self,
        prompt: str,
        duration: float,
        *,
        steps: int | None,
        guidance: float | None,
        seeds: list[int],
        progress: bool,
        **family_kwargs: Any,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """One validated prompt -> (float32 audio ``[len(seeds), T]``, the family's metadata).

        Candidate ``i`` must depend only on ``seeds[i]`` (so candidates equal single runs).
        """
