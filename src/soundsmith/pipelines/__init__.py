"""Inference pipelines: text (or other conditioning) in, waveform out; one per family, same call signature.

Every pipeline subclasses :class:`Pipeline` (``pipelines/base.py``) and is called as ``pipe(prompt,
duration=None, steps=None, guidance=None, seed=0, num_candidates=1, progress=True, **family_kwargs)``; it returns a
:class:`GeneratedAudio` (a list of them for a list of prompts). :func:`load_pipeline` (= ``soundsmith.load``) finds
a family's pipeline through its declaration in ``soundsmith.families``.
"""

from soundsmith.pipelines.base import (
    DEFAULT_DURATION_S,
    MAX_CANDIDATES,
    MAX_DURATION_S,
    GeneratedAudio,
    ModelSource,
    Pipeline,
    check_request,
)
from soundsmith.pipelines.loader import generator_families, has_pipeline, load, load_pipeline, pipeline_for

__all__ = [
    "DEFAULT_DURATION_S",
    "MAX_CANDIDATES",
    "MAX_DURATION_S",
    "GeneratedAudio",
    "ModelSource",
    "Pipeline",
    "check_request",
    "generator_families",
    "has_pipeline",
    "load",
    "load_pipeline",
    "pipeline_for",
]
