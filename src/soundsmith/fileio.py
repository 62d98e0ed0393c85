"""Publishing files atomically: write to a temporary file beside the target, then rename it into place.

``tempfile.mkstemp`` creates files readable by their owner only (0600); :func:`publish` gives the finished file
the permissions a plain ``open(path, "w")`` would have (0666 less the process umask) before renaming it, so
generated audio, manifests and model files are readable like any other file the user writes.
"""

from __future__ import annotations

import os
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: the umask is process-wide and changing it afterwards is not supported here.
DEFAULT_FILE_MODE = 0o666 & ~_umask()


def publish(tmp: str | Path, path: str | Path) -> None:
    """Give ``tmp`` ordinary file permissions and atomically rename it to ``path``."""
    os.chmod(tmp, DEFAULT_FILE_MODE)
    os.replace(tmp, path)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file beside it, fsync, :func:`publish`.

    A crash leaves either the old file or the new one, never part of it, and no temp file on error.
    """
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
