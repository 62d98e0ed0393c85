"""Fine-tuning data: the user's folder of clips (or a manifest) -> checked clips with captions -> a manifest.

Captions, the first found wins: ``--caption`` for every clip; a sidecar ``<clip>.txt`` beside the clip (one caption
a line); ``captions.csv`` in the folder (columns ``file,caption``, read by the folder importer,
``soundsmith.data.importers.import_folder``); the manifest's own captions; the file name (``door_slam-03.wav`` ->
"door slam"). ``--trigger`` is appended to every caption ("a door slams" + "in the style of zapp").

Every clip is read once and checked: unreadable or not audio, too short (< :data:`MIN_SECONDS`), silent (peak under
-60 dBFS), clipped (over 1 % of samples at full scale). A bad clip is named with its reason and left out, never an
error; only a folder with no usable clip at all is.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soundsmith.audio.loudness import SILENCE_PEAK
from soundsmith.data.importers import AUDIO_EXTENSIONS, import_folder
from soundsmith.data.manifest import ManifestRow, read_manifest
from soundsmith.errors import ManifestError, SoundsmithError

log = logging.getLogger("soundsmith.finetune")

MIN_SECONDS = 0.25  # shorter clips hold under ~6 latent frames: too little to learn from
FULL_SCALE = 0.999  # a sample at or above this magnitude is at full scale
CLIPPED_SHARE = 0.01  # over 1 % of samples at full scale: clipped
SIDE_FILES = {".txt", ".csv", ".json", ".jsonl", ".md", ".yaml", ".yml"}  # not audio, not reported
MANIFEST_SUFFIXES = (".jsonl", ".json")


@dataclass
class Clip:
    """One usable clip: its file, captions (trigger included), duration and file sample rate."""

    path: Path
    captions: list[str]
    duration: float
    sample_rate: int
    id: str


@dataclass
class Skipped:
    """A clip left out: its file, why (``too short``, ``silent``, ``clipped``, ``unreadable``, ``not audio``,
    ``no caption``) and the detail."""

    path: Path
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason} ({self.detail})"


@dataclass
class ClipCheck:
    """What :func:`collect_clips` found: the usable clips and the skipped ones."""

    source: str
    clips: list[Clip] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> str:
        """``"52 clips in DATA: 49 usable, 3 skipped (1 silent, 1 too short, 1 unreadable)"``."""
        total = len(self.clips) + len(self.skipped)
        line = f"{total} clips in {self.source}: {len(self.clips)} usable, {len(self.skipped)} skipped"
        if self.skipped:
            counts = Counter(s.reason for s in self.skipped)
            line += " (" + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) + ")"
        return line


def check_audio(audio: np.ndarray, sample_rate: int) -> tuple[str, str] | None:
    """``(reason, detail)`` when mono audio ``[T]`` is unusable for fine-tuning, else None."""
    if not np.isfinite(audio).all():
        return "unreadable", "it holds NaN or infinite samples"
    seconds = audio.shape[-1] / sample_rate
    if seconds < MIN_SECONDS:
        return "too short", f"{seconds:.2f} s; at least {MIN_SECONDS:g} s"
    peak = float(np.abs(audio).max())
    if peak < SILENCE_PEAK:  # a clip whose peak is under -60 dBFS is silence
        level = 20 * np.log10(max(peak, 1e-12))
        return "silent", f"peak {level:.0f} dBFS"
    share = float((np.abs(audio) >= FULL_SCALE).mean())
    if share > CLIPPED_SHARE:
        return "clipped", f"{100 * share:.1f} % of samples at full scale; lower its gain or record it again"
    return None


def caption_from_name(path: Path, root: Path | None = None) -> str:
    """A caption from the file name (``door_slam-03.wav`` -> ``door slam``), else its folder's name; "" if none."""
    for name in (path.stem, path.parent.name if root is None or path.parent != root else ""):
        words = [w for w in re.split(r"[\s_\-.]+", name) if w and not w.isdigit()]
        if words:
            return " ".join(words)
    return ""


def sidecar_captions(path: Path) -> list[str]:
    """The captions in ``<clip>.txt`` beside ``path`` (one a line), or []."""
    side = path.with_suffix(".txt")
    if not side.is_file():
        return []
    try:
        return [line.strip() for line in side.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        log.warning("ignoring caption file %s: %s", side, e)
        return []


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Hold back a logger's warnings (the importer's own 'skipping' lines: :class:`Skipped` names them)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def _candidates(
    data: Path, work_dir: Path, exclude: Path | None
) -> tuple[list[tuple[Path, list[str]]], list[Skipped]]:
    """``[(file, captions from the importer or manifest)]`` and the files skipped before reading them."""
    skipped: list[Skipped] = []
    if data.is_file():
        if data.suffix.lower() not in MANIFEST_SUFFIXES:
            raise ManifestError(f"{data}: DATA must be a folder of audio or a manifest (.jsonl)")
        manifest = read_manifest(data)
        rows = [r for r in manifest.rows if r.split != "test"]  # test rows stay for evaluation
        return [(r.audio_path(manifest.root).resolve(), list(r.captions)) for r in rows], skipped
    if not data.is_dir():
        raise ManifestError(f"{data}: not found; DATA is a folder of audio clips or a manifest (.jsonl)")
    csv_path = data / "captions.csv"
    files = sorted(p.resolve() for p in data.rglob("*") if p.is_file() and not p.name.startswith("."))
    if exclude is not None:
        files = [f for f in files if not f.is_relative_to(exclude)]
    imported: dict[Path, list[str]] = {}
    with _quiet("soundsmith.data"):
        try:
            manifest = import_folder(
                data,
                work_dir / "imported.jsonl",
                captions_csv=csv_path if csv_path.is_file() else None,
                valid_fraction=0.0,
                test_fraction=0.0,
            )
            imported = {r.audio_path(manifest.root).resolve(): list(r.captions) for r in manifest.rows}
        except ManifestError:
            pass  # no readable audio at all: every file is reported below
    found = []
    for f in files:
        if f in imported:
            found.append((f, imported[f]))
        elif f.suffix.lower() in AUDIO_EXTENSIONS:
            skipped.append(Skipped(f, "unreadable", "not a valid audio file; convert it to WAV or FLAC"))
        elif f.suffix.lower() not in SIDE_FILES:
            skipped.append(
                Skipped(f, "not audio", f"{f.suffix or 'no extension'}; use WAV, FLAC, OGG or MP3")
            )
    return found, skipped


def collect_clips(
    data: str | Path,
    work_dir: str | Path,
    caption: str | None = None,
    trigger: str | None = None,
    exclude: str | Path | None = None,
) -> ClipCheck:
    """Find, caption and check the clips of ``data`` (a folder or a manifest); see the module docstring.

    ``work_dir`` receives the folder importer's manifest; files under ``exclude`` (e.g. the run directory when it
    lies inside ``data``) are ignored. Each skipped clip is logged with its reason, then the summary line.
    """
    from soundsmith.audio import load_audio

    data, work_dir = Path(data), Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    found, skipped = _candidates(data, work_dir, Path(exclude).resolve() if exclude is not None else None)
    root = data.resolve() if data.is_dir() else None
    check = ClipCheck(source=str(data), skipped=skipped)
    for path, listed in found:
        captions = [caption] if caption else (sidecar_captions(path) or listed)
        if not captions:
            from_name = caption_from_name(path, root)
            captions = [from_name] if from_name else []
        if not captions:
            check.skipped.append(
                Skipped(path, "no caption", "add captions.csv, a .txt beside it, or pass --caption")
            )
            continue
        try:
            audio, sr = load_audio(path, sample_rate=None, mono=True)
        except (SoundsmithError, OSError, RuntimeError, ValueError) as e:
            check.skipped.append(Skipped(path, "unreadable", str(e).splitlines()[0][:160]))
            continue
        problem = check_audio(np.asarray(audio, dtype=np.float32), sr)
        if problem is not None:
            check.skipped.append(Skipped(path, *problem))
            continue
        if trigger:
            captions = [f"{c} {trigger}" for c in captions]
        ident = (
            path.relative_to(root).as_posix() if root is not None and path.is_relative_to(root) else str(path)
        )
        check.clips.append(Clip(path, captions, len(audio) / sr, int(sr), ident))
    for s in check.skipped:
        log.warning("%s", s)
    log.info("%s", check.summary())
    return check


def hold_out(clips: list[Clip], fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """``(train, valid)``: ``fraction`` of the clips (at least one, none under 6 clips) held out for the validation
    loss, chosen by a hash of ``(seed, clip id)`` so the same folder always gives the same split."""
    n_valid = 0 if len(clips) < 6 or fraction <= 0 else max(1, round(fraction * len(clips)))
    order = sorted(clips, key=lambda c: hashlib.sha256(f"{seed}:{c.id}".encode()).hexdigest())
    held = {id(c) for c in order[:n_valid]}
    return [c for c in clips if id(c) not in held], [c for c in clips if id(c) in held]


def clip_rows(clips: list[Clip], split: str) -> list[ManifestRow]:
    """Manifest rows of ``clips`` in ``split`` (``meta.source = "user"``)."""
    return [
        ManifestRow(
            audio=str(c.path),
            captions=list(c.captions),
            duration=c.duration,
            sample_rate=c.sample_rate,
            split=split,
            meta={"id": c.id, "source": "user"},
        )
        for c in clips
    ]


def median_seconds(clips: list[Clip]) -> float:
    return float(statistics.median(c.duration for c in clips))
