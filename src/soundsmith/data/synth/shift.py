"""Register augmentation: pitched clips of the corpus played an octave (or ``k`` semitones) up or down, recaptioned.

A clip played ``2 ** (k / 12)`` times faster (soxr resampling, so pitch and tempo move together) is the same sound
``k`` semitones higher: its annotation moves with it (``midi_pitch``, ``note``, ``notes``, ``note_events``, the
``register`` its new pitch falls in, onsets and offsets, the tempo), and its captions are drawn again from the moved
annotation with :func:`~soundsmith.data.synth.captions.caption_clip`. This teaches a model register as an attribute
of its own: the corpus renders some classes only in some registers in training (``corpus.HELD_OUT_EVENT_REGISTERS``,
``corpus.held_out_register``) and asks for the others in its test split, so a model trained with these clips has
heard shifted versions of the held-out combinations (results with it must say so).

Only clips of one pitched event (events: ``events.PITCHED``; one instrument phrase) are shifted; a shift is refused
(``None``) when the new pitch falls outside every register, or when slowing the clip down would push a counted
event past its end (the count would be wrong).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from soundsmith.data.synth.captions import caption_clip
from soundsmith.data.synth.corpus import labels_of
from soundsmith.data.synth.dsp import midi_to_note
from soundsmith.data.synth.events import REGISTERS
from soundsmith.data.synth.instruments import INSTRUMENTS, TEMPOS, register_range
from soundsmith.errors import ConfigError

SHIFTABLE_FAMILIES = ("events", "instruments")
OCTAVES = (-12, 12)


def speed_of(semitones: int) -> float:
    """How many times faster a clip plays to sound ``semitones`` higher."""
    return float(2.0 ** (semitones / 12.0))


def register_of(event: dict[str, Any], midi: int) -> str | None:
    """The register ``midi`` falls in for ``event`` (an instrument's thirds of its range, else the event
    registers), or ``None`` when it is outside all of them."""
    if "instrument" in event:
        ranges = {r: register_range(event["instrument"], r) for r in ("low", "middle", "high")}
    else:
        ranges = dict(REGISTERS)
    return next((r for r, (lo, hi) in ranges.items() if lo <= midi <= hi), None)


def _tempo_of(bpm: float) -> str | None:
    return next((name for name, (lo, hi) in TEMPOS.items() if lo <= bpm <= hi), None)


def shift_events(
    family: str, events: list[dict[str, Any]], semitones: int, duration: float
) -> list[dict[str, Any]] | None:
    """The annotation of a ``duration`` s clip of ``family`` played ``semitones`` higher, or ``None`` when the
    clip cannot be shifted that far (see the module docstring). ``events`` is not modified."""
    if (
        family not in SHIFTABLE_FAMILIES
        or len(events) != 1
        or "midi_pitch" not in events[0]
        or semitones == 0
    ):
        return None
    if "instrument" in events[0] and events[0]["instrument"] not in INSTRUMENTS:
        return None
    speed = speed_of(semitones)
    ev = copy.deepcopy(events[0])
    midi = int(ev["midi_pitch"]) + semitones
    register = register_of(ev, midi)
    if register is None:
        return None
    overrun = float(ev["offset"]) / speed > duration + 1e-6
    if "note_events" in ev:
        moved = [[on / speed, off / speed, int(p) + semitones] for on, off, p in ev["note_events"]]
        overrun = overrun or any(off > duration + 1e-6 for _, off, _ in moved)
        ev["note_events"] = [
            [round(on, 3), round(min(off, duration), 3), p] for on, off, p in moved if on < duration
        ]
    if overrun and "count" in ev:
        return None
    ev["midi_pitch"], ev["note"], ev["register"] = midi, midi_to_note(midi), register
    if "notes" in ev:
        ev["notes"] = [int(p) + semitones for p in ev["notes"]]
    ev["onset"] = round(float(ev["onset"]) / speed, 3)
    ev["offset"] = round(min(float(ev["offset"]) / speed, duration), 3)
    if ev["onset"] >= duration:
        return None
    if "tempo_bpm" in ev:
        bpm = float(ev["tempo_bpm"]) * speed
        tempo = _tempo_of(bpm)
        ev["tempo_bpm"] = int(round(bpm))
        if tempo is None:  # between or beyond the named tempos: the captions say none
            ev.pop("tempo", None)
        else:
            ev["tempo"] = tempo
    return [ev]


def shift_audio(audio: np.ndarray, sample_rate: int, semitones: int) -> np.ndarray:
    """``audio [T]`` played ``semitones`` higher (soxr resampling), cut or zero-padded back to ``T`` samples."""
    from soundsmith.audio import resample

    target = int(round(sample_rate / speed_of(semitones)))
    moved = np.asarray(resample(np.asarray(audio, dtype=np.float32), sample_rate, target), dtype=np.float32)
    out = np.zeros(len(audio), dtype=np.float32)
    out[: min(len(moved), len(out))] = moved[: len(out)]
    return out


def shift_corpus(
    manifest: str | Path,
    out_dir: str | Path,
    semitones: tuple[int, ...] = OCTAVES,
    split: str = "train",
    seed: int = 0,
    limit: int | None = None,
    change_register: bool = True,
    with_source: bool = False,
    every_shift: bool = False,
) -> Path:
    """Write a shifted copy of every shiftable ``split`` clip of ``manifest`` into ``out_dir`` (``audio/`` and
    ``manifest.jsonl``, rows in ``split``) and return the manifest's path.

    Each clip gets one shift (``every_shift``: one copy per allowed shift), drawn (seeded by ``seed`` and the
    clip's position) from those of ``semitones`` its
    annotation allows (with ``change_register``, only those that move it into another register); clips that allow
    none are left out. ``meta`` records ``shifted_from`` (the source clip's id)
    and ``shift_semitones``. ``with_source``: the manifest also lists every row of ``manifest`` (all splits, audio
    where it lies), ready to train on.
    """
    from soundsmith.audio import load_audio, save_audio
    from soundsmith.data.manifest import ManifestRow, read_manifest, write_manifest

    if not semitones or any(not isinstance(k, int) or k == 0 or abs(k) > 24 for k in semitones):
        raise ConfigError(f"semitones={semitones!r}: give non-zero whole shifts of at most 24 semitones")
    source = read_manifest(manifest)
    out_dir = Path(out_dir)
    rows: list[ManifestRow] = []
    for index, row in enumerate(source.rows):
        if row.split != split or row.meta.get("family") not in SHIFTABLE_FAMILIES:
            continue
        rng = np.random.default_rng([seed, index])
        options = {
            k: shift_events(row.meta["family"], row.meta["events"], k, row.duration) for k in semitones
        }
        options = {
            k: ev
            for k, ev in options.items()
            if ev is not None
            and not (change_register and ev[0]["register"] == row.meta["events"][0]["register"])
        }
        if not options:
            continue
        chosen = sorted(options) if every_shift else [sorted(options)[int(rng.integers(0, len(options)))]]
        audio, sr = load_audio(row.audio_path(source.root))
        for k in chosen:
            events = options[k]
            captions, template_ids = caption_clip(row.meta["family"], events, rng, held_out=False)
            rel = f"audio/{index:06d}{k:+d}.wav"
            save_audio(out_dir / rel, shift_audio(audio, sr, k), sr)
            meta = {
                **row.meta,
                "id": f"{row.id}{k:+d}st",
                "events": events,
                "caption_templates": template_ids,
            }
            meta.update(shifted_from=row.id, shift_semitones=k)
            rows.append(
                ManifestRow(
                    audio=rel,
                    captions=captions,
                    labels=labels_of(events),
                    duration=row.duration,
                    sample_rate=sr,
                    split=split,
                    meta=meta,
                )
            )
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise ConfigError(f"{manifest}: no {split} clip of one pitched event to shift")
    if with_source:
        rows = [replace(r, audio=str(r.audio_path(source.root).resolve())) for r in source.rows] + rows
    return write_manifest(out_dir / "manifest.jsonl", rows)
