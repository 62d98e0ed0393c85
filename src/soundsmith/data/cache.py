"""A content-addressed on-disk cache for features computed from audio files (mel now, latents later).

An entry's key is a hash of JSON-able key parts, which always include a hash of the source file's *bytes*
and the feature's configuration, so an edited file or a changed config never reads stale features.
Hashing the bytes is memoised in memory per (path, mtime, size), so a file is read for hashing once per
process as long as it is not touched. Arrays are stored as ``.npy`` (read with ``allow_pickle=False``),
dicts of arrays as ``.safetensors``; every write is atomic (temporary file + rename), so concurrent
workers at worst compute the same entry twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from soundsmith.fileio import publish

log = logging.getLogger("soundsmith.data")

CACHE_VERSION = 1  # bump when the stored layout or feature code changes meaning
Array = np.ndarray
Value = Array | dict[str, Array]


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x)


def _jsonable(x: Any) -> Any:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {"__type__": type(x).__name__, **{k: _jsonable(v) for k, v in dataclasses.asdict(x).items()}}
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.generic):
        return x.item()
    return x


class FeatureCache:
    """Features stored under ``directory/<2 hex>/<key>.{npy,safetensors}``.

    ``hits`` and ``misses`` count lookups made through this object (per process).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._file_hashes: dict[tuple[str, int, int], str] = {}
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------ keys
    def file_hash(self, path: str | os.PathLike) -> str:
        """blake2b of the file's bytes, memoised per (absolute path, mtime_ns, size)."""
        p = os.path.abspath(path)
        st = os.stat(p)
        memo_key = (p, st.st_mtime_ns, st.st_size)
        digest = self._file_hashes.get(memo_key)
        if digest is None:
            h = hashlib.blake2b(digest_size=20)
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
            self._file_hashes[memo_key] = digest
        return digest

    def key(self, key_parts: Any) -> str:
        """A hex key from JSON-able parts (dicts, lists, numbers, strings, dataclasses such as MelConfig)."""
        blob = json.dumps({"v": CACHE_VERSION, "parts": _jsonable(key_parts)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def feature_key(self, path: str | os.PathLike, feature: str, config: Any) -> str:
        """The key of feature ``feature`` of audio file ``path`` computed with ``config``."""
        return self.key({"file": self.file_hash(path), "feature": feature, "config": config})

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / key[:2] / f"{key}{suffix}"

    # --------------------------------------------------------------- get/put
    def get(self, key: str, mmap: bool = False) -> Value | None:
        """The stored value for ``key``, or None (also for an unreadable entry, which is then removed)."""
        npy, st = self._path(key, ".npy"), self._path(key, ".safetensors")
        try:
            if npy.exists():
                return np.load(npy, allow_pickle=False, mmap_mode="r" if mmap else None)
            if st.exists():
                from safetensors.numpy import load_file

                return load_file(str(st))
        except Exception as e:  # a truncated or foreign file: drop it and recompute
            log.warning("feature cache entry %s unreadable (%s); recomputing it", key, e)
            for p in (npy, st):
                p.unlink(missing_ok=True)
        return None

    def put(self, key: str, value: Value) -> Value:
        """Store ``value`` (array, torch tensor, or dict of them) under ``key`` atomically; returns numpy."""
        if isinstance(value, Mapping):
            arrays = {str(k): _to_numpy(v) for k, v in value.items()}
            target = self._path(key, ".safetensors")
            target.parent.mkdir(parents=True, exist_ok=True)
            from safetensors.numpy import save

            data = save(arrays)
            self._atomic_write(target, lambda f: f.write(data))
            return arrays
        array = _to_numpy(value)
        if array.dtype == object:
            raise TypeError("FeatureCache stores numeric arrays only, not object arrays")
        target = self._path(key, ".npy")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(target, lambda f: np.save(f, array, allow_pickle=False))
        return array

    def get_or_compute(self, key_parts: Any, fn: Callable[[], Any], mmap: bool = False) -> Value:
        """The cached value for ``key_parts``, computing it with ``fn()`` (and storing it) on a miss.

        Include everything the value depends on in ``key_parts`` (use :meth:`file_hash` for source files).
        With ``mmap=True`` a hit on an ``.npy`` entry is memory-mapped read-only (cheap to slice).
        """
        key = key_parts if isinstance(key_parts, str) else self.key(key_parts)
        value = self.get(key, mmap=mmap)
        if value is not None:
            self.hits += 1
            return value
        self.misses += 1
        return self.put(key, fn())

    def _atomic_write(self, target: Path, write: Callable[[Any], Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem[:16]}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            publish(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.directory)!r}, hits={self.hits}, misses={self.misses})"
