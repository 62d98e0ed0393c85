"""Importers: turn a folder of audio, or a public data set's layout, into a manifest.

Each importer scans ``src``, writes the manifest to ``out`` (audio paths relative to ``out``'s folder) and
returns the :class:`Manifest` (its ``skipped`` counts clips left out, e.g. for missing audio). Durations and
sample rates are read with ``soundfile.info``; unreadable files are skipped with a warning.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from soundsmith.data.manifest import Manifest, ManifestRow, read_manifest, write_manifest
from soundsmith.errors import ManifestError

log = logging.getLogger("soundsmith.data")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _supported_extensions() -> tuple[str, ...]:
    """The audio extensions this soundfile build can read (mp3 only with libsndfile >= 1.1)."""
    formats = sf.available_formats()
    return tuple(e for e in AUDIO_EXTENSIONS if e != ".mp3" or "MP3" in formats)


def _info(path: Path) -> tuple[float, int] | None:
    """(duration s, sample rate) of an audio file, or None (with a warning) when it cannot be read."""
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises several types for bad files
        log.warning("skipping unreadable audio file %s: %s", path, e)
        return None
    if info.frames <= 0 or info.samplerate <= 0:
        log.warning("skipping empty audio file %s", path)
        return None
    return info.frames / info.samplerate, int(info.samplerate)


def _finish(out: str | os.PathLike, rows: list[ManifestRow], skipped: int, what: str) -> Manifest:
    if not rows:
        raise ManifestError(f"no readable audio found for {what}; check the source folder and its layout")
    write_manifest(out, rows)
    manifest = read_manifest(out)
    manifest.skipped = skipped
    counts = {s: len(manifest.split(s)) for s in ("train", "valid", "test")}
    log.info("wrote %s: %d clips %s, %d skipped", out, len(rows), counts, skipped)
    return manifest


def _require_dir(src: str | os.PathLike, what: str) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise ManifestError(f"{what} source folder {src} not found; pass the folder that holds the data set")
    return src


def hash_split(key: str, valid_fraction: float, test_fraction: float, seed: int = 0) -> str:
    """A deterministic split for ``key`` from a hash of (seed, key): same key, same split, on any machine."""
    if not (0 <= valid_fraction and 0 <= test_fraction and valid_fraction + test_fraction < 1):
        raise ManifestError(
            f"valid_fraction={valid_fraction} and test_fraction={test_fraction} must be >= 0 and sum to < 1"
        )
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(
            f"cannot read CSV {path}: {e}; it must be a UTF-8 CSV with a header row"
        ) from None


def _need_columns(path: Path, rows: list[dict[str, str]], columns: Iterable[str]) -> None:
    have = set(rows[0].keys()) if rows else set()
    missing = [c for c in columns if c not in have]
    if rows and missing:
        raise ManifestError(
            f"CSV {path} lacks column(s) {', '.join(missing)}; found {', '.join(sorted(have))}"
        )


# --------------------------------------------------------------------------------------------------- folder


def import_folder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    captions_csv: str | os.PathLike | None = None,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Manifest:
    """Import every audio file under ``src`` (recursively).

    Labels: the parent folder's name (none for files directly in ``src``). Captions: from ``captions_csv``
    (columns ``file,caption``; ``file`` is the path relative to ``src`` or the bare file name; several rows
    per file give several captions). Splits: :func:`hash_split` of the path relative to ``src``.
    """
    src = _require_dir(src, "import_folder")
    exts = _supported_extensions()
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    captions: dict[str, list[str]] = {}
    if captions_csv is not None:
        csv_path = Path(captions_csv)
        table = _read_csv(csv_path)
        _need_columns(csv_path, table, ("file", "caption"))
        for r in table:
            key = Path(r["file"].strip()).as_posix()
            if r["caption"].strip():
                captions.setdefault(key, []).append(r["caption"].strip())
    used: set[str] = set()
    rows, skipped = [], 0
    for f in files:
        info = _info(f)
        if info is None:
            skipped += 1
            continue
        rel = f.relative_to(src).as_posix()
        caps_key = rel if rel in captions else f.name
        used.add(caps_key)
        rows.append(
            ManifestRow(
                audio=str(f.resolve()),
                captions=list(captions.get(caps_key, [])),
                labels=[f.parent.name] if f.parent != src else [],
                duration=info[0],
                sample_rate=info[1],
                split=hash_split(rel, valid_fraction, test_fraction, seed),
                meta={"source": "folder", "id": rel},
            )
        )
    unused = sorted(set(captions) - used)
    if unused:
        log.warning(
            "%d caption file name(s) in %s match no audio file, e.g. %s", len(unused), captions_csv, unused[0]
        )
    return _finish(out, rows, skipped, f"import_folder({src})")


# ----------------------------------------------------------------------------------------------- AudioMNIST

_AUDIOMNIST_NAME = re.compile(r"^(\d)_(\d+)_(\d+)$")


def _speaker_splits(speakers: Sequence[str], valid_fraction: float, test_fraction: float, seed: int) -> dict:
    """Hold out whole speakers: a seeded shuffle, then test, valid, the rest train (at least one train)."""
    order = [speakers[i] for i in np.random.default_rng(seed).permutation(len(speakers))]
    n = len(order)

    def count(frac: float, left: int) -> int:
        k = int(round(frac * n))
        if frac > 0 and k == 0 and left >= 2:
            k = 1
        return min(k, left - 1)

    n_test = count(test_fraction, n)
    n_valid = count(valid_fraction, n - n_test)
    split = {s: "test" for s in order[:n_test]}
    split.update({s: "valid" for s in order[n_test : n_test + n_valid]})
    split.update({s: "train" for s in order[n_test + n_valid :]})
    return split


def import_audiomnist(
    src: str | os.PathLike,
    out: str | os.PathLike,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Manifest:
    """Import AudioMNIST (``NN/D_NN_K.wav``: digit, speaker, take; a ``data/`` subfolder is also accepted).

    Labels: the digit's word; caption "the digit five spoken by speaker 12"; whole speakers are held out
    for valid/test (``valid_fraction``/``test_fraction`` of the speakers, seeded shuffle).
    """
    src = _require_dir(src, "AudioMNIST")
    if not any(_AUDIOMNIST_NAME.match(p.stem) for p in src.glob("*/*.wav")) and (src / "data").is_dir():
        src = src / "data"
    found = []
    for f in sorted(src.glob("*/*.wav")):
        m = _AUDIOMNIST_NAME.match(f.stem)
        if m is None:
            log.warning("skipping %s: not an AudioMNIST name D_NN_K.wav", f)
            continue
        found.append((f, int(m.group(1)), m.group(2), int(m.group(3))))
    speakers = sorted({spk for _, _, spk, _ in found}, key=lambda s: int(s))
    splits = _speaker_splits(speakers, valid_fraction, test_fraction, seed)
    rows, skipped = [], 0
    for f, digit, speaker, take in found:
        info = _info(f)
        if info is None:
            skipped += 1
            continue
        rows.append(
            ManifestRow(
                audio=str(f.resolve()),
                captions=[f"the digit {DIGITS[digit]} spoken by speaker {int(speaker)}"],
                labels=[DIGITS[digit]],
                duration=info[0],
                sample_rate=info[1],
                split=splits[speaker],
                meta={"source": "audiomnist", "speaker": speaker, "digit": digit, "take": take, "id": f.stem},
            )
        )
    return _finish(out, rows, skipped, f"AudioMNIST at {src} (expected NN/D_NN_K.wav)")


# --------------------------------------------------------------------------------------------------- Clotho

_CLOTHO_SPLITS = {"development": "train", "validation": "valid", "evaluation": "test"}


def import_clotho(src: str | os.PathLike, out: str | os.PathLike) -> Manifest:
    """Import Clotho: ``clotho_captions_{development,validation,evaluation}.csv`` (``file_name``,
    ``caption_1``..``caption_5``) with audio in ``development/``, ``validation/``, ``evaluation/``.

    Splits: development -> train, validation -> valid, evaluation -> test. Missing audio is skipped and
    counted. A split whose CSV is absent is left out with a warning.
    """
    src = _require_dir(src, "Clotho")
    rows, skipped, any_csv = [], 0, False
    for part, split in _CLOTHO_SPLITS.items():
        csv_path = src / f"clotho_captions_{part}.csv"
        if not csv_path.is_file():
            log.warning("Clotho: %s not found; split %r left out", csv_path, split)
            continue
        any_csv = True
        table = _read_csv(csv_path)
        _need_columns(csv_path, table, ("file_name", "caption_1"))
        for r in table:
            f = src / part / r["file_name"]
            info = _info(f) if f.is_file() else None
            if info is None:
                skipped += 1
                continue
            caps = [r[k].strip() for k in sorted(r) if k.startswith("caption_") and r[k] and r[k].strip()]
            rows.append(
                ManifestRow(
                    audio=str(f.resolve()),
                    captions=caps,
                    labels=[],
                    duration=info[0],
                    sample_rate=info[1],
                    split=split,
                    meta={"source": "clotho", "id": f"{part}/{r['file_name']}"},
                )
            )
    if not any_csv:
        raise ManifestError(f"no clotho_captions_*.csv in {src}; pass the folder of the Clotho data set")
    if skipped:
        log.warning("Clotho: %d listed file(s) missing or unreadable, skipped", skipped)
    return _finish(out, rows, skipped, f"Clotho at {src}")


# ------------------------------------------------------------------------------------------------ AudioCaps

_AUDIOCAPS_SPLITS = {"train.csv": "train", "val.csv": "valid", "test.csv": "test"}


def import_audiocaps(
    src: str | os.PathLike, out: str | os.PathLike, audio_dir: str | os.PathLike | None = None
) -> Manifest:
    """Import AudioCaps: ``train.csv``, ``val.csv``, ``test.csv`` (``audiocap_id, youtube_id, start_time,
    caption``) in ``src``, audio already downloaded under ``audio_dir`` (default ``src``, searched
    recursively) as ``{youtube_id}.<ext>`` or ``{audiocap_id}.<ext>``.

    Rows that point to the same audio file are merged (their captions collected). Rows without audio are
    skipped; their count is ``manifest.skipped`` and logged.
    """
    src = _require_dir(src, "AudioCaps")
    audio_root = _require_dir(audio_dir, "AudioCaps audio") if audio_dir is not None else src
    exts = _supported_extensions()
    by_stem: dict[str, Path] = {}
    for p in sorted(audio_root.rglob("*")):
        if p.is_file() and p.suffix.lower() in exts:
            by_stem.setdefault(p.stem, p)
    clips: dict[Path, ManifestRow] = {}
    skipped, any_csv = 0, False
    for name, split in _AUDIOCAPS_SPLITS.items():
        csv_path = src / name
        if not csv_path.is_file():
            log.warning("AudioCaps: %s not found; split %r left out", csv_path, split)
            continue
        any_csv = True
        table = _read_csv(csv_path)
        _need_columns(csv_path, table, ("audiocap_id", "youtube_id", "start_time", "caption"))
        for r in table:
            f = by_stem.get(r["youtube_id"].strip()) or by_stem.get(r["audiocap_id"].strip())
            if f is None:
                skipped += 1
                continue
            if f in clips:
                row = clips[f]
                if r["caption"].strip():
                    row.captions.append(r["caption"].strip())
                row.meta["audiocap_ids"].append(r["audiocap_id"])
                continue
            info = _info(f)
            if info is None:
                skipped += 1
                continue
            clips[f] = ManifestRow(
                audio=str(f.resolve()),
                captions=[r["caption"].strip()] if r["caption"].strip() else [],
                labels=[],
                duration=info[0],
                sample_rate=info[1],
                split=split,
                meta={
                    "source": "audiocaps",
                    "id": r["youtube_id"].strip(),
                    "youtube_id": r["youtube_id"].strip(),
                    "start_time": r["start_time"].strip(),
                    "audiocap_ids": [r["audiocap_id"]],
                },
            )
    if not any_csv:
        raise ManifestError(f"no train.csv/val.csv/test.csv in {src}; pass the folder of the AudioCaps CSVs")
    if skipped:
        log.warning("AudioCaps: %d caption row(s) without audio on disk, skipped", skipped)
    return _finish(out, list(clips.values()), skipped, f"AudioCaps at {src} (audio in {audio_root})")


# --------------------------------------------------------------------------------------------------- ESC-50


def import_esc50(
    src: str | os.PathLike,
    out: str | os.PathLike,
    test_folds: Sequence[int] = (5,),
    valid_folds: Sequence[int] = (4,),
) -> Manifest:
    """Import ESC-50: ``meta/esc50.csv`` (``filename, fold, target, category, esc10, ...``) + ``audio/``.

    Labels: ``[category]``; caption "the sound of <category with underscores as spaces>"; folds in
    ``test_folds`` -> test, ``valid_folds`` -> valid, others train.
    """
    src = _require_dir(src, "ESC-50")
    csv_path = src / "meta" / "esc50.csv"
    if not csv_path.is_file():
        raise ManifestError(f"{csv_path} not found; pass the ESC-50 folder (with meta/ and audio/)")
    table = _read_csv(csv_path)
    _need_columns(csv_path, table, ("filename", "fold", "target", "category"))
    if set(test_folds) & set(valid_folds):
        raise ManifestError(
            f"ESC-50 folds {sorted(set(test_folds) & set(valid_folds))} are both test and valid"
        )
    rows, skipped = [], 0
    for r in table:
        f = src / "audio" / r["filename"]
        info = _info(f) if f.is_file() else None
        if info is None:
            skipped += 1
            continue
        try:
            fold = int(r["fold"])
        except ValueError:
            raise ManifestError(
                f"{csv_path}: fold {r['fold']!r} of {r['filename']} is not an integer"
            ) from None
        split = "test" if fold in test_folds else "valid" if fold in valid_folds else "train"
        category = r["category"].strip()
        rows.append(
            ManifestRow(
                audio=str(f.resolve()),
                captions=[f"the sound of {category.replace('_', ' ')}"],
                labels=[category],
                duration=info[0],
                sample_rate=info[1],
                split=split,
                meta={
                    "source": "esc50",
                    "id": r["filename"],
                    "fold": fold,
                    "target": int(r["target"]) if r["target"].strip().isdigit() else r["target"],
                    "esc10": r.get("esc10", "").strip().lower() == "true",
                },
            )
        )
    if skipped:
        log.warning("ESC-50: %d listed file(s) missing or unreadable, skipped", skipped)
    return _finish(out, rows, skipped, f"ESC-50 at {src}")
