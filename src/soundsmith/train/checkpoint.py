"""Training checkpoints: atomic writes, safe loads, rotation, RNG state and inference-model export.

A checkpoint is ``torch.save`` of plain containers (dicts, lists, numbers, strings, tensors) and is always read
back with ``torch.load(..., weights_only=True)``, so loading one never runs pickled code.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from soundsmith.errors import SoundsmithError, TrainingError
from soundsmith.seeding import mix_seed

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
_STEP_RE = re.compile(r"^step-(\d{7,})\.ckpt$")
_TMP_MARK = ".tmp-"


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}.ckpt"


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` into a temp file beside ``path``, flush + fsync, ``os.replace``, fsync the directory.

    A reader (or a resumed run after SIGKILL) sees either the old file or the complete new one, never a part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``, on CPU); a truncated or corrupt file raises TrainingError."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise TrainingError(
            f"checkpoint {path} does not exist; check the path or start without --resume"
        ) from e
    except Exception as e:  # truncated zip, bad pickle, refused type ...
        raise TrainingError(
            f"checkpoint {path} is unreadable ({type(e).__name__}: {str(e)[:200]}); it is probably truncated or "
            "corrupt: delete it to resume from the previous checkpoint"
        ) from e
    if not isinstance(state, dict) or "step" not in state:
        raise TrainingError(
            f"checkpoint {path} is not a soundsmith training checkpoint (no 'step'); delete it"
        )
    return state


def list_checkpoints(directory: str | Path) -> list[Path]:
    """``step-XXXXXXX.ckpt`` files in ``directory``, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, skipping (with a warning) truncated or corrupt ones; None if none."""
    for path in reversed(list_checkpoints(directory)):
        try:
            return path, load_checkpoint(path)
        except TrainingError as e:
            log.warning("skipping %s", e)
    return None


def prune_checkpoints(directory: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest step checkpoints (``best.ckpt`` is never touched)."""
    paths = list_checkpoints(directory)
    removed = paths[: max(0, len(paths) - keep_last)]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def remove_stale_temp_files(directory: str | Path) -> None:
    """Temp files left by a process killed mid-write."""
    directory = Path(directory)
    if directory.is_dir():
        for p in directory.iterdir():
            if p.name.startswith(".") and _TMP_MARK in p.name:
                p.unlink(missing_ok=True)


# --- RNG state as tensors (so that weights_only loading accepts it) ---------------------------------------


def capture_rng_state() -> dict[str, torch.Tensor]:
    """This process's torch (CPU and CUDA), numpy and python ``random`` states, as tensors of fixed shapes."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_key": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_meta": torch.tensor([np_state[2], np_state[3]], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_state[4]], dtype=torch.float64),
        "python": torch.tensor(list(py_internal), dtype=torch.int64),
        "python_meta": torch.tensor([py_version, py_gauss is not None], dtype=torch.int64),
        "python_gauss": torch.tensor([py_gauss or 0.0], dtype=torch.float64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`capture_rng_state` (tensors may come back from any device)."""
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    meta = state["numpy_meta"].cpu().tolist()
    np.random.set_state(
        ("MT19937", state["numpy_key"].cpu().numpy().astype(np.uint32), int(meta[0]), int(meta[1]),
         float(state["numpy_gauss"].cpu().item()))
    )  # fmt: skip
    py_meta = state["python_meta"].cpu().tolist()
    gauss = float(state["python_gauss"].cpu().item()) if py_meta[1] else None
    random.setstate((int(py_meta[0]), tuple(int(v) for v in state["python"].cpu().tolist()), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu().to(torch.uint8))


def seed_process(seed: int, rank: int) -> None:
    """Seed the global RNGs of this process from ``(seed, rank)`` (for objectives that draw from them)."""
    value = mix_seed(seed, rank, "process", bits=32)  # np.random.seed takes 32 bits
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)


# --- inference export -------------------------------------------------------------------------------------


def export_model(model: nn.Module, directory: str | Path, extra: dict[str, Any] | None = None) -> bool:
    """Write ``directory`` as an inference model (``config.json`` + ``model.safetensors``) via the registry.

    Returns False (with a debug log) when the registry is missing or the model's family is not registered.
    """
    try:
        from soundsmith.models.registry import family_of, save_model
    except ImportError as e:
        log.debug("model export skipped: soundsmith.models.registry unavailable (%s)", e)
        return False
    try:
        family_of(model)  # before writing anything: an unregistered model leaves no half-written directory
        save_model(model, Path(directory), extra=extra)
    except (SoundsmithError, KeyError, AttributeError, TypeError) as e:
        log.debug("model export skipped for %s: %s", type(model).__name__, e)
        return False
    return True
