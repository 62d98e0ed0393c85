"""Where numba keeps the compiled kernels (``@njit(cache=True)``), so a fresh process skips the JIT compile.

numba looks for a writable cache directory in this order: ``NUMBA_CACHE_DIR`` when set, ``__pycache__`` beside the
source file, then the user cache directory (``~/.cache/numba``, or under ``XDG_CACHE_HOME``). When none is
writable (a read-only install run by a user without a home directory, say), decorating a ``cache=True`` function
raises at import time. :func:`configure` (run when this module is imported, before any kernel is decorated)
checks that chain and, only when all of it is unwritable, points numba at a per-user directory under the system
temp directory; if even that fails, :data:`ENABLED` is False and kernels decorated with ``cache=ENABLED`` compile
in memory as before. Import this module before any module that defines a cached kernel.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numba
from numba.misc.appdirs import AppDirs

_PACKAGE_DIR = Path(__file__).resolve().parent


def _writable(directory: Path) -> bool:
    """Whether files can be created in ``directory`` (created if missing), tried for real as numba does."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError:
        return False
    return True


def choose_cache_dir(package_dir: Path, user_dir: Path, temp_root: Path) -> tuple[bool, Path | None]:
    """``(caching possible, directory to give numba)``: ``(True, None)`` when numba's own chain works (``__pycache__``
    in ``package_dir``, else ``user_dir``); else ``temp_root/soundsmith-numba-<uid>`` if writable; else
    ``(False, None)``."""
    if _writable(package_dir / "__pycache__") or _writable(user_dir):
        return True, None
    fallback = temp_root / f"soundsmith-numba-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    return (True, fallback) if _writable(fallback) else (False, None)


def configure() -> bool:
    """Give numba a writable cache directory if its own chain has none; False when caching is impossible."""
    if numba.config.CACHE_DIR:  # NUMBA_CACHE_DIR set by the user: numba uses it as given
        return True
    user_dir = Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)  # numba's own user-wide choice
    enabled, directory = choose_cache_dir(_PACKAGE_DIR, user_dir, Path(tempfile.gettempdir()))
    if directory is not None:
        numba.config.CACHE_DIR = str(directory)
    return enabled


ENABLED: bool = configure()  # pass as njit(cache=ENABLED)
