"""Frozen text encoders (conditioners) that turn prompts into token and pooled embeddings.

``build_text_encoder(spec)`` builds one from a spec string: ``hashed[:DIM[:SEED]]`` (weight-free),
``minilm`` (default, all-MiniLM-L6-v2 shipped in a PyPI package), ``t5:PATH``, ``clap:PATH``.
Importing this package does not import transformers; the pretrained encoders load it when built.
"""

from soundsmith.text.base import MAX_PROMPT_CHARS, TextEmbedding, TextEncoder, check_prompts
from soundsmith.text.hashed import HashedTextEncoder
from soundsmith.text.registry import VALID_SPECS, build_text_encoder

_LAZY = ("MiniLMEncoder", "T5Encoder", "ClapTextEncoder", "clear_text_encoder_cache", "minilm_path")


def __getattr__(name: str):
    # The transformer-backed encoders live in hf.py, imported on first use (transformers is slow to import).
    if name in _LAZY:
        from soundsmith.text import hf

        return getattr(hf, name)
    raise AttributeError(f"module 'soundsmith.text' has no attribute {name!r}")


__all__ = [
    "MAX_PROMPT_CHARS",
    "VALID_SPECS",
    "ClapTextEncoder",
    "HashedTextEncoder",
    "MiniLMEncoder",
    "T5Encoder",
    "TextEmbedding",
    "TextEncoder",
    "build_text_encoder",
    "check_prompts",
    "clear_text_encoder_cache",
    "minilm_path",
]
