"""Reading, writing and resampling audio files.

Files go through soundfile (libsndfile) and resampling through soxr (high quality). Every problem with a
file raises :class:`~soundsmith.errors.AudioError` naming the file and saying what to do.

Arrays are channels-first: ``[T]`` for mono, ``[C, T]`` for multichannel audio.

Metadata: ``save_audio(..., metadata={"prompt": ..., "seed": ...})`` stores the whole dict as JSON in the
file's ``comment`` field (WAV INFO chunk, Vorbis comment for FLAC/OGG), the prompt also as ``title`` so
that ordinary players show it. ``read_metadata`` returns the original dict.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch

from soundsmith.errors import AudioError
from soundsmith.fileio import publish

#: Extensions that ``save_audio`` writes, with the libsndfile format and sample subtype used.
WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}
#: Extensions that ``load_audio`` reads (libsndfile decodes all of them).
READ_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

_METADATA_KEY = "soundsmith_metadata"
# More channels than this in a [C, T] array almost surely means a [T, C] array was passed.
_MAX_CHANNELS = 64
# Longest title written (the full prompt always lives in the JSON comment).
_MAX_TITLE = 1000


ArrayLike = np.ndarray | torch.Tensor


def _to_numpy(audio: ArrayLike, what: str) -> np.ndarray:
    """Any numpy array or torch tensor -> float32 numpy (detached, on the CPU)."""
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().to("cpu", torch.float32).numpy()
    if not isinstance(audio, np.ndarray):
        raise AudioError(f"{what}: expected a numpy array or torch tensor, got {type(audio).__name__}")
    return np.asarray(audio, dtype=np.float32)


def _check_rate(sample_rate: Any, what: str) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)):
        raise AudioError(f"{what}: sample rate must be a positive number, got {sample_rate!r}")
    if not sample_rate > 0 or int(sample_rate) != sample_rate:
        raise AudioError(f"{what}: sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def _check_extension(path: Path, allowed: tuple[str, ...] | list[str], verb: str) -> str:
    ext = path.suffix.lower()
    if ext not in allowed:
        raise AudioError(
            f"{path}: cannot {verb} '{ext or '(no extension)'}' files; use one of {', '.join(allowed)}"
        )
    return ext


def _check_readable(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found; check the path")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file (a directory?); pass the path of an audio file")
    _check_extension(path, READ_EXTENSIONS, "read")
    return path


def _wav_data_shortfall(path: Path) -> tuple[int, int] | None:
    """Bytes promised by a WAV file's ``data`` chunk header vs bytes present, when fewer are present.

    libsndfile silently shortens a truncated WAV, so truncation is detected here from the RIFF chunks.
    Returns ``(declared, present)`` when the data chunk is cut short, else None (also for streaming
    headers that leave the size unset, 0 or 0xFFFFFFFF, and for RF64/unknown layouts).
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return None
                present = size - (pos + 8)
                return (chunk_size, present) if present < chunk_size else None
            pos += 8 + chunk_size + (chunk_size & 1)  # chunks are word aligned
    return None


def _open(path: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(str(path))
    except sf.LibsndfileError as err:
        raise AudioError(
            f"{path}: cannot decode the file (corrupt, truncated or not audio): {err.error_string}; "
            "re-export or replace it"
        ) from err
    except (OSError, RuntimeError) as err:
        raise AudioError(f"{path}: cannot open the file: {err}") from err


def load_audio(
    path: str | os.PathLike, sample_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 in [-1, 1].

    Args:
        path: a .wav, .flac, .ogg (also .mp3, .aiff) file.
        sample_rate: resample to this rate (soxr, high quality); None keeps the file's rate.
        mono: mix the channels down by their mean.

    Returns:
        ``(audio, sample_rate)`` with audio ``[T]`` when mono, else ``[C, T]`` (``[1, T]`` for a mono file).

    Raises:
        AudioError: missing, unsupported, unreadable, truncated or empty file; zero sample rate;
            NaN/Inf samples; a ``sample_rate`` argument that is not positive.
    """
    path = _check_readable(path)
    if sample_rate is not None:
        sample_rate = _check_rate(sample_rate, f"load_audio({path})")
    if path.suffix.lower() == ".wav":
        shortfall = _wav_data_shortfall(path)
        if shortfall is not None:
            declared, present = shortfall
            raise AudioError(
                f"{path}: truncated WAV file: header promises {declared} bytes of samples but only "
                f"{present} are present; re-export or replace the file"
            )
    with _open(path) as f:
        if f.samplerate <= 0:
            raise AudioError(f"{path}: invalid sample rate {f.samplerate} in the header; re-export the file")
        if f.frames == 0:
            raise AudioError(f"{path}: empty audio file (zero frames); remove it or replace it")
        file_rate, declared = f.samplerate, f.frames
        try:
            data = f.read(dtype="float32", always_2d=True)  # [T, C]
        except sf.LibsndfileError as err:
            raise AudioError(f"{path}: cannot decode the samples (corrupt or truncated): {err}") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio file (zero frames decoded); remove it or replace it")
    if data.shape[0] < declared and path.suffix.lower() != ".mp3":  # mp3 frame counts are estimates
        raise AudioError(
            f"{path}: truncated file: header promises {declared} frames, only {data.shape[0]} decoded; "
            "re-export or replace the file"
        )
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or Inf samples; fix or replace the file")
    audio = np.ascontiguousarray(data.T)  # [C, T]
    if mono:
        audio = audio.mean(axis=0)  # [T]
    if sample_rate is not None and sample_rate != file_rate:
        audio = resample(audio, file_rate, sample_rate)
        file_rate = sample_rate
    return audio.astype(np.float32, copy=False), file_rate


def resample(audio: ArrayLike, orig_sr: int, target_sr: int) -> ArrayLike:
    """Resample ``[T]`` or ``[C, T]`` audio with soxr (high quality).

    Output length is ``T * target_sr / orig_sr`` rounded to the nearest integer, ties up (soxr's own length
    rounds ties either way: 3,000 samples 24 -> 44.1 kHz gave 5,512 where 2 samples 44.1 -> 11.025 kHz gave 1; its
    output is cropped or edge-padded by that one sample). A numpy input gives float32 numpy, a torch input a float32
    tensor on the input's device (the work runs on the CPU).
    """
    orig_sr = _check_rate(orig_sr, "resample orig_sr")
    target_sr = _check_rate(target_sr, "resample target_sr")
    device = audio.device if isinstance(audio, torch.Tensor) else None
    x = _to_numpy(audio, "resample")
    if x.ndim not in (1, 2):
        raise AudioError(f"resample: expected audio [T] or [C, T], got shape {tuple(x.shape)}")
    if orig_sr == target_sr:
        out = x.copy()
    elif x.ndim == 1:
        out = soxr.resample(x, orig_sr, target_sr, quality="HQ")
    else:
        out = soxr.resample(np.ascontiguousarray(x.T), orig_sr, target_sr, quality="HQ").T  # [C, T']
    want = (2 * x.shape[-1] * target_sr + orig_sr) // (2 * orig_sr)  # round half up, exactly
    if out.shape[-1] > want:
        out = out[..., :want]
    elif 0 < out.shape[-1] < want:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, want - out.shape[-1])], mode="edge")
    out = np.ascontiguousarray(out, dtype=np.float32)
    return torch.from_numpy(out).to(device) if device is not None else out


def _encode_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """The soundfile string fields that carry ``metadata``: JSON in ``comment``, prompt in ``title``."""
    clean: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise AudioError(f"save_audio metadata: keys must be strings, got {key!r}")
        clean[key] = value if isinstance(value, str) else str(value)
    fields = {
        "comment": json.dumps({_METADATA_KEY: clean}, ensure_ascii=True, sort_keys=True),
        "software": "soundsmith",
    }
    if clean.get("prompt"):
        fields["title"] = clean["prompt"][:_MAX_TITLE]
    return fields


def save_audio(
    path: str | os.PathLike,
    audio: ArrayLike,
    sample_rate: int,
    metadata: dict[str, Any] | None = None,
    *,
    subtype: str | None = None,
) -> Path:
    """Write ``[T]`` or ``[C, T]`` audio (numpy or torch) atomically; the format comes from the extension.

    Parent directories are created. The file is written to a temporary file in the same directory and
    renamed into place, so a crash never leaves half a file. ``metadata`` values are stored as
    ``str(value)`` (see the module docstring); WAV allows about 2,000 characters per field, FLAC and
    OGG much more. ``subtype`` overrides the sample format (default PCM_16 for WAV/FLAC, VORBIS for OGG;
    e.g. "FLOAT" for lossless float WAV). Samples outside [-1, 1] are clipped by PCM formats.

    Returns the path written. Raises AudioError for an unsupported extension, a non-positive rate,
    empty audio, a wrong shape, NaN/Inf samples or metadata that the format cannot hold.
    """
    path = Path(path)
    ext = _check_extension(path, tuple(WRITE_FORMATS), "write")
    sample_rate = _check_rate(sample_rate, f"save_audio({path})")
    x = _to_numpy(audio, f"save_audio({path})")
    if x.ndim == 1:
        x = x[None]  # [1, T]
    if x.ndim != 2 or x.shape[0] > _MAX_CHANNELS:
        raise AudioError(
            f"save_audio({path}): expected audio [T] or [C, T] with at most {_MAX_CHANNELS} channels, "
            f"got shape {tuple(x.shape)}; transpose a [T, C] array"
        )
    if x.shape[1] == 0:
        raise AudioError(f"save_audio({path}): audio is empty (zero samples); nothing to write")
    if not np.isfinite(x).all():
        raise AudioError(f"save_audio({path}): audio contains NaN or Inf samples; fix the model output first")
    fmt, default_subtype = WRITE_FORMATS[ext]
    fields = _encode_metadata(metadata) if metadata else {}

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{ext}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            with sf.SoundFile(
                str(tmp), "w", sample_rate, x.shape[0], subtype=subtype or default_subtype, format=fmt
            ) as f:
                for name, value in fields.items():
                    setattr(f, name, value)
                f.write(np.ascontiguousarray(x.T))  # soundfile wants [T, C]
        except (sf.LibsndfileError, ValueError, TypeError) as err:
            raise AudioError(f"save_audio({path}): cannot write the file: {err}") from err
        if fields and _read_fields(tmp).get("comment") != fields["comment"]:
            raise AudioError(
                f"save_audio({path}): the metadata is too large for {fmt} "
                "(WAV holds about 2,000 characters per field); shorten it or save as .flac/.ogg"
            )
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _read_fields(path: Path) -> dict[str, str]:
    with _open(path) as f:
        return dict(f.copy_metadata())


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata dict given to ``save_audio``; for other files, their string fields (title, ...)."""
    path = _check_readable(path)
    fields = _read_fields(path)
    try:
        payload = json.loads(fields.get("comment", ""))
    except json.JSONDecodeError:
        return fields
    if isinstance(payload, dict) and isinstance(payload.get(_METADATA_KEY), dict):
        return {str(k): str(v) for k, v in payload[_METADATA_KEY].items()}
    return fields
