"""One way to derive a seed from several parts (run seed, epoch, rank, a purpose tag).

Every generator in soundsmith that depends on more than one number gets its seed from :func:`mix_seed`, so that
``(seed=1, epoch=0)`` and ``(seed=0, epoch=1_000_003)`` never collide the way a hand-written
``seed * 1_000_003 + epoch`` does, and so that two generators of one run (the batch order and the loader
workers, say) draw independent streams when a purpose tag tells them apart.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _encode(part: int | str) -> str:
    if isinstance(part, str):
        return "s" + repr(part)
    if isinstance(part, (bool, np.bool_)) or not isinstance(part, (int, np.integer)) or part < 0:
        raise ValueError(f"mix_seed parts are non-negative integers or strings, got {part!r}")
    return "i" + str(int(part))


def mix_seed(*parts: int | str, bits: int = 63) -> int:
    """A seed in ``[0, 2**bits)`` that is a pure function of ``parts`` (order matters).

    The parts are written out unambiguously (``(1, 0)``, ``(1,)`` and ``(10,)`` all differ) and hashed with
    BLAKE2b, so nearby inputs give unrelated seeds. (numpy's ``SeedSequence`` is not used: it reads ``[1]`` and
    ``[1, 0]``, or ``[2**32]`` and ``[0, 1]``, as the same entropy.) A string part is a purpose tag, e.g.
    ``mix_seed(seed, epoch, "batches")``. ``bits`` <= 64: 63 (the default) fits ``torch.Generator.manual_seed``;
    use 32 for ``np.random.seed``.
    """
    if not parts:
        raise ValueError("mix_seed needs at least one part")
    if not 1 <= bits <= 64:
        raise ValueError(f"mix_seed bits={bits}: use 1..64")
    text = ",".join(_encode(p) for p in parts).encode()
    value = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
    return value >> (64 - bits)


__all__ = ["mix_seed"]
