"""Instrument phrases rendered from MIDI notes with pretty_midi's General MIDI SoundFont via tinysoundfont.

``render_instrument("flute", note="A4", phrase="single_note", dynamics="soft", duration=2.0)`` returns
``(audio [T] float32, [annotation])``. The SoundFont is loaded once per process and sample rate; between
clips the synth is reset and flushed, so a clip's audio depends only on its attributes.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import numpy as np

from soundsmith.data.synth.dsp import limit_peak, loudness, midi_to_note, note_to_midi
from soundsmith.errors import ConfigError

# name -> (General MIDI program (0-based), lowest MIDI note, highest MIDI note, calibration gain dB).
# The gain brings a loud C4 of each program to roughly -20 dBFS RMS (measured on TimGM6mb.sf2).
INSTRUMENTS: dict[str, tuple[int, int, int, float]] = {
    "piano": (0, 36, 96, 14.0),
    "organ": (19, 36, 84, 8.0),
    "acoustic_guitar": (24, 40, 76, 6.0),
    "violin": (40, 55, 91, 3.0),
    "cello": (42, 36, 69, 0.0),
    "trumpet": (56, 55, 82, 2.0),
    "flute": (73, 60, 96, -1.0),
    "clarinet": (71, 50, 86, 4.0),
    "saxophone": (65, 49, 80, 2.0),
    "marimba": (12, 45, 96, 11.0),
    "harp": (46, 36, 91, -1.0),
    "bass": (33, 28, 55, 1.0),
}
PHRASES = (
    "single_note",
    "rising_scale",
    "falling_scale",
    "arpeggio",
    "chord",
    "repeated_note",
    "short_melody",
)
MODES = {"major": (0, 2, 4, 5, 7, 9, 11, 12), "minor": (0, 2, 3, 5, 7, 8, 10, 12)}
TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7)}
TEMPOS = {"slow": (80, 110), "fast": (150, 200)}  # notes per minute (quarter-note bpm)
DYNAMICS = {"soft": ((35, 50), -6.0), "loud": ((100, 120), 0.0)}  # velocity range, extra gain dB
PENTATONIC = (0, 2, 4, 7, 9, 12)


def soundfont_path() -> str:
    """Path of the General MIDI SoundFont shipped inside pretty_midi (``TimGM6mb.sf2``)."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.isfile(path):
        raise ConfigError(f"SoundFont not found at {path}; reinstall pretty_midi (pip install pretty_midi)")
    return path


@lru_cache(maxsize=4)
def _synth(sample_rate: int):
    """One loaded synth per process and sample rate: (tinysoundfont.Synth, soundfont id)."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(soundfont_path(), max_voices=256)
    return synth, sfid


def register_range(name: str, register: str) -> tuple[int, int]:
    """MIDI range (inclusive) of ``register`` (low/middle/high: thirds of the instrument's range)."""
    _, lo, hi, _ = INSTRUMENTS[name]
    third = (hi - lo + 1) / 3
    idx = ("low", "middle", "high").index(register)
    return int(lo + idx * third), int(lo + (idx + 1) * third) - 1


def _phrase_offsets(phrase: str, mode: str, n_notes: int, rng: np.random.Generator) -> list[int]:
    if phrase == "rising_scale":
        return list(MODES[mode][:n_notes])
    if phrase == "falling_scale":
        return list(MODES[mode][::-1][:n_notes])
    if phrase == "arpeggio":
        return [*TRIADS[mode], 12][:n_notes]
    if phrase == "short_melody":
        idx = [0]  # start on the root, so the labelled note is played
        for _ in range(n_notes - 1):
            idx.append(int(np.clip(idx[-1] + rng.choice([-2, -1, 1, 2]), 0, len(PENTATONIC) - 1)))
        return [PENTATONIC[i] for i in idx]
    return [0] * n_notes  # single_note, repeated_note (chord handled apart)


def draw_instrument_attrs(
    name: str, rng: np.random.Generator, duration: float, **given: Any
) -> dict[str, Any]:
    """Complete the attributes of a phrase on instrument ``name``; ``given`` values win, the rest from ``rng``."""
    if name not in INSTRUMENTS:
        raise ConfigError(f"unknown instrument {name!r}; choose one of {sorted(INSTRUMENTS)}")
    phrase = given.get("phrase") or str(rng.choice(PHRASES))
    if phrase not in PHRASES:
        raise ConfigError(f"unknown phrase {phrase!r}; choose one of {list(PHRASES)}")
    mode = given.get("mode") or str(rng.choice(list(MODES)))
    dynamics = given.get("dynamics") or str(rng.choice(list(DYNAMICS)))
    tempo = given.get("tempo") or str(rng.choice(list(TEMPOS)))
    if dynamics not in DYNAMICS or tempo not in TEMPOS or mode not in MODES:
        raise ConfigError(
            f"dynamics {dynamics!r}/tempo {tempo!r}/mode {mode!r}: use soft|loud, slow|fast, major|minor"
        )
    bpm = (
        int(given["tempo_bpm"])
        if given.get("tempo_bpm")
        else int(rng.integers(TEMPOS[tempo][0], TEMPOS[tempo][1] + 1))
    )
    velocity = int(rng.integers(DYNAMICS[dynamics][0][0], DYNAMICS[dynamics][0][1] + 1))
    velocity = int(given["velocity"]) if given.get("velocity") else velocity
    onset = (
        float(given["onset"]) if given.get("onset") is not None else round(float(rng.uniform(0.02, 0.25)), 3)
    )
    beat = 60.0 / bpm
    room = max(duration - onset - 0.3, beat)
    fits = max(int(room / beat), 1)
    if phrase in ("single_note", "chord"):
        n_notes = 1
    elif phrase == "repeated_note":
        n_notes = (
            int(given["count"]) if given.get("count") else int(rng.integers(2, min(6, max(fits, 2)) + 1))
        )
    elif phrase == "short_melody":
        n_notes = int(rng.integers(min(4, fits), min(7, fits) + 1)) if fits > 1 else 1
    else:
        n_notes = max(min(fits, 8 if "scale" in phrase else 4), 1)
    offsets = _phrase_offsets(phrase, mode, n_notes, rng)
    if phrase == "chord":
        offsets = list(TRIADS[mode])
    span = max(offsets)
    if given.get("note") is not None or given.get("midi_pitch") is not None:
        try:
            root = note_to_midi(given["note"]) if given.get("note") is not None else int(given["midi_pitch"])
        except ValueError as err:
            raise ConfigError(str(err)) from None
        register = given.get("register") or next(
            (
                r
                for r in ("low", "middle", "high")
                if register_range(name, r)[0] <= root <= register_range(name, r)[1]
            ),
            "middle",
        )
    else:
        register = given.get("register") or str(rng.choice(["low", "middle", "high"]))
        lo, hi = register_range(name, register)
        hi = max(min(hi, INSTRUMENTS[name][2] - span), lo)
        root = int(rng.integers(lo, hi + 1))
    a: dict[str, Any] = {
        "instrument": name,
        "phrase": phrase,
        "midi_pitch": root,
        "note": midi_to_note(root),
        "register": register,
        "dynamics": dynamics,
        "velocity": velocity,
        "notes": [root + o for o in offsets],
        "onset": onset,
    }
    if given.get("notes"):
        a["notes"] = [int(m) for m in given["notes"]]
    if phrase in ("rising_scale", "falling_scale", "arpeggio", "chord"):
        a["mode"] = mode
    if phrase not in ("single_note", "chord"):
        a.update(tempo=tempo, tempo_bpm=bpm)
    if phrase == "repeated_note":
        a["count"] = n_notes
    return a


def _render_notes(program: int, events: list[tuple[int, int, int]], n: int, sample_rate: int, velocity: int):
    """Play ``events`` = [(start sample, stop sample, midi)] on a reset synth; returns mono ``[n]`` float64."""
    synth, sfid = _synth(sample_rate)
    synth.soundfonts[sfid].reset()  # voices enter a quick release; render them out so nothing leaks
    for _ in range(400):
        if not np.frombuffer(synth.generate(256), dtype=np.float32).any():
            break
    synth.program_select(0, sfid, 0, program)
    changes = sorted([(s, 1, m) for s, _, m in events] + [(e, 0, m) for _, e, m in events])
    out = np.zeros((n, 2), dtype=np.float32)
    pos = 0
    for at, on, midi in changes + [(n, -1, 0)]:
        at = min(at, n)
        if at > pos:
            out[pos:at] = np.frombuffer(synth.generate(at - pos), dtype=np.float32).reshape(-1, 2)
            pos = at
        if on == 1:
            synth.noteon(0, midi, velocity)
        elif on == 0:
            synth.noteoff(0, midi)
    synth.notes_off()
    return out.astype(np.float64).mean(axis=1)


def render_instrument(
    name: str,
    *,
    note: str | None = None,
    phrase: str | None = None,
    dynamics: str | None = None,
    duration: float = 4.0,
    sample_rate: int = 16000,
    rng: np.random.Generator | None = None,
    **attrs: Any,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render a phrase on instrument ``name`` into a clip of ``duration`` s.

    ``note`` is the root ("A4"); ``attrs`` may fix ``midi_pitch``, ``register``, ``tempo`` (slow/fast),
    ``tempo_bpm``, ``mode`` (major/minor), ``count`` (repeated_note) and ``onset`` (s). Missing values are
    drawn from ``rng`` (default: seeded 0). Returns ``(audio [T] float32, [annotation])``.
    """
    if duration <= 0 or sample_rate <= 0:
        raise ConfigError(f"duration ({duration}) and sample_rate ({sample_rate}) must be positive")
    rng = rng if rng is not None else np.random.default_rng(0)
    a = draw_instrument_attrs(name, rng, duration, note=note, phrase=phrase, dynamics=dynamics, **attrs)
    n = int(round(duration * sample_rate))
    start = int(a["onset"] * sample_rate)
    tail = int(0.25 * sample_rate)  # leave room for the release
    if a["phrase"] == "chord" or a["phrase"] == "single_note":
        stop = max(start + int(0.7 * (n - start - tail)), start + 1)
        events = [(start, stop, m) for m in a["notes"]]
    else:
        beat = int(60.0 / a["tempo_bpm"] * sample_rate)
        hold = int(0.9 * beat)
        events = [(start + i * beat, start + i * beat + hold, m) for i, m in enumerate(a["notes"])]
        stop = events[-1][1]
    program, _, _, gain_db = INSTRUMENTS[name]
    mono = _render_notes(program, events, n, sample_rate, a["velocity"])
    audio = limit_peak(mono * 10.0 ** ((gain_db + DYNAMICS[a["dynamics"]][1]) / 20.0))
    ann: dict[str, Any] = {"class": name, "onset": round(start / sample_rate, 3)}
    ann["offset"] = round(min(stop, n) / sample_rate, 3)
    ann.update({k: v for k, v in a.items() if k != "onset"})
    ann["loudness_db"] = round(loudness(audio, sample_rate), 2)
    return audio, [ann]
