"""Manifests: JSON Lines files that list the clips of a data set, one clip a row.

A row looks like::

    {"audio": "dog/0001.wav", "captions": ["a dog barks twice"], "labels": ["dog"],
     "duration": 4.0, "sample_rate": 16000, "split": "train", "meta": {"source": "esc50"}}

``audio`` is relative to the manifest's folder (absolute paths are allowed). ``audio``, ``duration`` and
``sample_rate`` are required; ``captions`` and ``labels`` default to ``[]``, ``split`` to ``"train"``,
``meta`` to ``{}``. Any other key is an error, so a typo never passes silently.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soundsmith.errors import ManifestError
from soundsmith.fileio import write_bytes_atomic

SPLITS = ("train", "valid", "test")
MAX_LISTED_ERRORS = 20
_REQUIRED = ("audio", "duration", "sample_rate")
_KEYS = ("audio", "captions", "labels", "duration", "sample_rate", "split", "meta")


@dataclass
class ManifestRow:
    """One clip: where its audio lies, what it is, and which split it belongs to."""

    audio: str
    captions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    duration: float = 0.0  # seconds, > 0 in a valid row
    sample_rate: int = 0  # Hz of the file on disk, > 0 in a valid row
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)

    def audio_path(self, root: str | os.PathLike) -> Path:
        """The audio file's path: ``audio`` itself when absolute, else resolved against ``root``."""
        p = Path(self.audio)
        return p if p.is_absolute() else Path(root) / p

    @property
    def id(self) -> str:
        """A stable identifier: ``meta["id"]`` when given, else the ``audio`` string."""
        return str(self.meta.get("id", self.audio))

    def to_dict(self) -> dict[str, Any]:
        return {
            "audio": self.audio,
            "captions": list(self.captions),
            "labels": list(self.labels),
            "duration": float(self.duration),
            "sample_rate": int(self.sample_rate),
            "split": self.split,
            "meta": dict(self.meta),
        }


@dataclass
class Manifest:
    """The rows of one manifest file.

    ``root`` is the folder relative audio paths are resolved against (the manifest's folder).
    ``line_numbers[i]`` is the 1-based line of ``rows[i]`` in the file (for error messages).
    ``skipped`` counts clips an importer left out (e.g. missing audio); 0 for a manifest read from disk.
    """

    rows: list[ManifestRow]
    path: Path | None = None
    root: Path = field(default_factory=Path)
    line_numbers: list[int] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ManifestRow]:
        return iter(self.rows)

    def split(self, name: str) -> list[ManifestRow]:
        """The rows of split ``name`` ("train", "valid" or "test"), in file order."""
        if name not in SPLITS:
            raise ManifestError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return [r for r in self.rows if r.split == name]

    def label_set(self) -> list[str]:
        """Every label used by any row (all splits), sorted."""
        return sorted({label for r in self.rows for label in r.labels})

    def line_of(self, i: int) -> int:
        return self.line_numbers[i] if i < len(self.line_numbers) else i + 1


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _row_problems(obj: Any) -> list[str]:
    """What is wrong with one decoded JSON row (empty when it is valid)."""
    if not isinstance(obj, dict):
        return [f"expected a JSON object, got {type(obj).__name__}"]
    errs = []
    for key in _REQUIRED:
        if key not in obj:
            errs.append(f"missing key {key!r} (required: {', '.join(_REQUIRED)})")
    for key in obj:
        if key not in _KEYS:
            errs.append(
                f"unknown key {key!r}; allowed keys are {', '.join(_KEYS)} (put extra data in 'meta')"
            )
    if "audio" in obj and (not isinstance(obj["audio"], str) or not obj["audio"].strip()):
        errs.append(f"'audio' must be a non-empty path string, got {obj['audio']!r}")
    for key in ("captions", "labels"):
        if key in obj and not _is_str_list(obj[key]):
            errs.append(f"{key!r} must be a list of strings, got {obj[key]!r}")
    if "duration" in obj:
        d = obj["duration"]
        if not _is_number(d) or not math.isfinite(d) or d <= 0:
            errs.append(f"'duration' must be a number of seconds > 0, got {d!r}")
    if "sample_rate" in obj:
        sr = obj["sample_rate"]
        if not isinstance(sr, int) or isinstance(sr, bool) or sr <= 0:
            errs.append(f"'sample_rate' must be an integer > 0 (Hz), got {sr!r}")
    if "split" in obj and obj["split"] not in SPLITS:
        errs.append(f"'split' must be one of {', '.join(SPLITS)}, got {obj['split']!r}")
    if "meta" in obj and not isinstance(obj["meta"], dict):
        errs.append(f"'meta' must be a JSON object, got {obj['meta']!r}")
    return errs


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate a JSON Lines manifest; blank lines are ignored.

    Every row is checked; all problems of the file are raised together in one :class:`ManifestError`
    (the first ``MAX_LISTED_ERRORS`` listed), each naming the file and 1-based line number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"manifest {path} not found; check the path or build one with an importer"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read manifest {path}: {e}; it must be a UTF-8 JSON Lines file") from None

    rows: list[ManifestRow] = []
    lines: list[int] = []
    errors: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(
                f"line {lineno}: invalid JSON ({e.msg} at column {e.colno}); write one object per line"
            )
            continue
        problems = _row_problems(obj)
        if problems:
            errors.extend(f"line {lineno}: {p}" for p in problems)
            continue
        rows.append(
            ManifestRow(
                audio=obj["audio"],
                captions=list(obj.get("captions", [])),
                labels=list(obj.get("labels", [])),
                duration=float(obj["duration"]),
                sample_rate=int(obj["sample_rate"]),
                split=obj.get("split", "train"),
                meta=dict(obj.get("meta", {})),
            )
        )
        lines.append(lineno)
    if errors:
        listed = "\n  ".join(errors[:MAX_LISTED_ERRORS])
        more = (
            f"\n  ... and {len(errors) - MAX_LISTED_ERRORS} more" if len(errors) > MAX_LISTED_ERRORS else ""
        )
        raise ManifestError(
            f"manifest {path} has {len(errors)} problem(s); fix these rows:\n  {listed}{more}"
        )
    return Manifest(rows=rows, path=path, root=path.parent, line_numbers=lines)


def write_manifest(
    path: str | os.PathLike, rows: Iterable[ManifestRow], root: str | os.PathLike | None = None
) -> Path:
    """Write ``rows`` as JSON Lines to ``path`` atomically (temporary file + rename).

    Audio paths are written relative to the manifest's folder. A relative ``row.audio`` is taken to be
    relative to ``root`` (default: the manifest's folder), so rows read from another manifest can be
    written elsewhere by passing that manifest's ``root``.
    """
    path = Path(path)
    folder = path.parent.resolve()
    base = Path(root).resolve() if root is not None else folder
    folder.mkdir(parents=True, exist_ok=True)
    out_lines = []
    for i, row in enumerate(rows):
        problems = _row_problems(row.to_dict()) if isinstance(row, ManifestRow) else ["not a ManifestRow"]
        if problems:
            raise ManifestError(f"cannot write row {i + 1} to manifest {path}: {'; '.join(problems)}")
        d = row.to_dict()
        audio = Path(row.audio)
        absolute = audio if audio.is_absolute() else base / audio
        d["audio"] = Path(os.path.relpath(os.path.abspath(absolute), folder)).as_posix()
        out_lines.append(json.dumps(d, ensure_ascii=False))
    write_bytes_atomic(path, ("\n".join(out_lines) + ("\n" if out_lines else "")).encode("utf-8"))
    return path


@dataclass
class Problem:
    """A problem with one row's audio found by :func:`check_manifest` (``row`` is the 1-based line)."""

    row: int
    audio: str
    message: str

    def __str__(self) -> str:
        return f"line {self.row} ({self.audio}): {self.message}"


def check_manifest(path: str | os.PathLike, duration_tolerance: float = 0.1) -> list[Problem]:
    """Open every audio file of a manifest and report what is wrong with each.

    Finds missing, unreadable, empty and NaN/Inf files, sample rates that differ from the row and durations
    that differ by more than ``duration_tolerance`` seconds. Never raises for a bad audio file; raises
    :class:`ManifestError` only when the manifest itself cannot be read.
    """
    import soundfile as sf

    from soundsmith.audio import load_audio
    from soundsmith.errors import AudioError

    manifest = read_manifest(path)
    problems: list[Problem] = []
    for i, row in enumerate(manifest.rows):
        line = manifest.line_of(i)
        file = row.audio_path(manifest.root)
        if not file.is_file():
            problems.append(Problem(line, row.audio, f"file not found: {file}"))
            continue
        try:
            info = sf.info(str(file))
        except Exception as e:  # soundfile raises several types for bad files
            problems.append(Problem(line, row.audio, f"unreadable audio: {e}"))
            continue
        if info.frames == 0:
            problems.append(Problem(line, row.audio, "empty audio (0 samples)"))
            continue
        if info.samplerate != row.sample_rate:
            problems.append(
                Problem(
                    line, row.audio, f"sample rate {info.samplerate} Hz but the row says {row.sample_rate} Hz"
                )
            )
        actual = info.frames / info.samplerate
        if abs(actual - row.duration) > duration_tolerance:
            problems.append(
                Problem(line, row.audio, f"duration {actual:.3f} s but the row says {row.duration:.3f} s")
            )
        try:
            load_audio(file, mono=False)
        except AudioError as e:
            problems.append(Problem(line, row.audio, str(e)))
        except Exception as e:
            problems.append(Problem(line, row.audio, f"unreadable audio: {e}"))
    return problems
