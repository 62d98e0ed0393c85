"""Instrument phrases rendered from MIDI notes with a General MIDI SoundFont via tinysoundfont.

The SoundFont is FluidR3 GM (Debian ``fluid-soundfont-gm``: real instrument samples) when installed, else
pretty_midi's small ``TimGM6mb.sf2``; each annotation's ``source`` names the one used.

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

# name -> (General MIDI program (0-based), lowest MIDI note, highest MIDI note, polyphonic?).
# Monophonic instruments (one note at a time: winds, brass, solo voice and bowed strings in these phrases)
# never play chords; their note events never overlap. Levels are calibrated per SoundFont (see _gain_db).
INSTRUMENTS: dict[str, tuple[int, int, int, bool]] = {
    "piano": (0, 36, 96, True),
    "organ": (20, 36, 84, True),  # reed organ: GM church organs (19) sound a 16-foot octave below the key
    "acoustic_guitar": (24, 40, 76, True),
    "violin": (40, 55, 91, False),
    "cello": (42, 36, 69, False),
    "trumpet": (56, 55, 82, False),
    "flute": (73, 60, 96, False),
    "clarinet": (71, 50, 86, False),
    "saxophone": (65, 49, 80, False),
    "marimba": (12, 45, 96, True),
    "harp": (46, 36, 91, True),
    "bass": (33, 28, 55, False),
    # added with issue 16 (FluidR3 GM has real samples for each)
    "electric_piano": (4, 36, 91, True),
    "harpsichord": (6, 41, 89, True),
    "vibraphone": (11, 53, 89, True),
    "accordion": (21, 53, 89, True),
    "steel_string_guitar": (25, 40, 76, True),
    "electric_guitar": (27, 40, 81, True),
    "distorted_guitar": (30, 40, 76, True),
    "string_ensemble": (48, 36, 91, True),
    "choir": (52, 48, 79, True),
    "solo_voice": (53, 53, 77, False),
    "trombone": (57, 40, 72, False),
    "tuba": (58, 28, 58, False),
    "french_horn": (60, 41, 77, False),
    "brass_section": (61, 41, 82, True),
    "oboe": (68, 58, 91, False),
    "bassoon": (70, 34, 70, False),
    "pan_flute": (75, 60, 91, False),
    "banjo": (105, 48, 84, True),
    "kalimba": (108, 55, 88, True),
    "steel_drums": (114, 52, 88, True),
}
MONOPHONIC = tuple(name for name, (_, _, _, poly) in INSTRUMENTS.items() if not poly)
SOUNDFONTS = ("FluidR3_GM", "TimGM6mb")  # preferred first
FLUID_PATHS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")
SILENT_NOTES = {("TimGM6mb", "saxophone"): {64}}  # keys with no sample (scanned over every range, both fonts)
CALIBRATION_DB = -20.0  # a loud middle note of every program is scaled to this RMS (dBFS)
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


def soundfont_path(name: str = "TimGM6mb") -> str:
    """Path of SoundFont ``name``: ``TimGM6mb`` (inside pretty_midi) or ``FluidR3_GM`` (Debian
    ``fluid-soundfont-gm``); ConfigError naming the fix when it is not installed."""
    if name == "FluidR3_GM":
        for path in FLUID_PATHS:
            if os.path.isfile(path):
                return path
        raise ConfigError(
            f"FluidR3_GM not found at {' or '.join(FLUID_PATHS)}; install it (apt-get install fluid-soundfont-gm)"
            " or use soundfont='TimGM6mb'"
        )
    if name != "TimGM6mb":
        raise ConfigError(f"unknown SoundFont {name!r}; choose one of {list(SOUNDFONTS)}")
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.isfile(path):
        raise ConfigError(f"SoundFont not found at {path}; reinstall pretty_midi (pip install pretty_midi)")
    return path


def default_soundfont() -> str:
    """``FluidR3_GM`` (real instrument samples) when installed, else the small ``TimGM6mb``."""
    return "FluidR3_GM" if any(os.path.isfile(p) for p in FLUID_PATHS) else "TimGM6mb"


@lru_cache(maxsize=4)
def _synth(sample_rate: int, soundfont: str = "TimGM6mb"):
    """One loaded synth per process, sample rate and SoundFont: (tinysoundfont.Synth, soundfont id)."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(soundfont_path(soundfont), max_voices=256)
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
    if phrase == "falling_scale":  # from the root down (the labelled note is the first played)
        return [o - 12 for o in MODES[mode][::-1][:n_notes]]
    if phrase == "arpeggio":
        return [*TRIADS[mode], 12][:n_notes]
    if phrase == "short_melody":
        idx = [0]  # start on the root, so the labelled note is played
        for _ in range(n_notes - 1):
            step = int(rng.choice([-2, -1, 1, 2]))
            nxt = (
                idx[-1] + step if 0 <= idx[-1] + step < len(PENTATONIC) else idx[-1] - step
            )  # reflect: it moves
            idx.append(nxt)
        return [PENTATONIC[i] for i in idx]
    return [0] * n_notes  # single_note, repeated_note (chord handled apart)


def phrases_for(name: str) -> tuple[str, ...]:
    """The phrases instrument ``name`` can play (no chords on a monophonic instrument)."""
    return PHRASES if INSTRUMENTS[name][3] else tuple(p for p in PHRASES if p != "chord")


def draw_instrument_attrs(
    name: str, rng: np.random.Generator, duration: float, **given: Any
) -> dict[str, Any]:
    """Complete the attributes of a phrase on instrument ``name``; ``given`` values win, the rest from ``rng``."""
    if name not in INSTRUMENTS:
        raise ConfigError(f"unknown instrument {name!r}; choose one of {sorted(INSTRUMENTS)}")
    phrase = given.get("phrase") or str(rng.choice(phrases_for(name)))
    if phrase not in PHRASES:
        raise ConfigError(f"unknown phrase {phrase!r}; choose one of {list(PHRASES)}")
    if phrase not in phrases_for(name):
        raise ConfigError(
            f"{name} is monophonic and cannot play a {phrase}; choose one of {phrases_for(name)}"
        )
    soundfont = given.get("soundfont") or default_soundfont()
    if soundfont not in SOUNDFONTS:
        raise ConfigError(f"unknown SoundFont {soundfont!r}; choose one of {list(SOUNDFONTS)}")
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
        lo = min(max(lo, INSTRUMENTS[name][1] - min(offsets)), hi)  # a falling phrase stays in the range
        hi = max(min(hi, INSTRUMENTS[name][2] - span), lo)
        root = int(rng.integers(lo, hi + 1))
        silent = SILENT_NOTES.get((soundfont, name), set())
        if silent & {root + o for o in offsets}:  # move the phrase off a missing sample, within the register
            root = root - 1 if root - 1 >= lo else root + 1
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
        "soundfont": soundfont,
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


def render_notes(
    program: int,
    events: list[tuple[int, int, int, int]],
    n: int,
    sample_rate: int,
    soundfont: str = "TimGM6mb",
    drums: bool = False,
) -> np.ndarray:
    """Play ``events`` = [(start sample, stop sample, midi, velocity)] on a reset synth; mono ``[n]`` float64.

    ``drums`` plays them on the General MIDI percussion channel (10), where the key picks the instrument.
    """
    soundfont_path(soundfont)  # a clear error if it was uninstalled (the loaded synth below is cached)
    synth, sfid = _synth(sample_rate, soundfont)
    synth.soundfonts[sfid].reset()  # voices enter a quick release; render them out so nothing leaks
    for _ in range(400):
        if not np.frombuffer(synth.generate(256), dtype=np.float32).any():
            break
    chan = 9 if drums else 0
    synth.program_select(chan, sfid, 128 if drums else 0, program, drums)
    changes = sorted([(s, 1, m, v) for s, _, m, v in events] + [(e, 0, m, 0) for _, e, m, _ in events])
    out = np.zeros((n, 2), dtype=np.float32)
    pos = 0
    for at, on, midi, velocity in changes + [(n, -1, 0, 0)]:
        at = min(at, n)
        if at > pos:
            out[pos:at] = np.frombuffer(synth.generate(at - pos), dtype=np.float32).reshape(-1, 2)
            pos = at
        if on == 1:
            synth.noteon(chan, midi, velocity)
        elif on == 0:
            synth.noteoff(chan, midi)
    synth.notes_off()
    return out.astype(np.float64).mean(axis=1)


@lru_cache(maxsize=256)
def _gain_db(name: str, soundfont: str, sample_rate: int) -> float:
    """Gain that brings loud 1 s notes of ``name`` (median of three across its range) to ``CALIBRATION_DB``
    RMS on ``soundfont``. TimGM6mb's saxophone has no sample for E4 (MIDI 64: silence), so silent notes are
    skipped here and :func:`draw_instrument_attrs` moves a phrase off them.

    Measured once per process (a pure function of its arguments), so every SoundFont's programs play at
    comparable levels without a hand-kept table.
    """
    program, lo, hi, _ = INSTRUMENTS[name]
    rms = []
    for note in (lo + (hi - lo) // 3, (lo + hi) // 2, hi - (hi - lo) // 3):
        mono = render_notes(
            program, [(0, sample_rate, note, 110)], sample_rate * 5 // 4, sample_rate, soundfont
        )
        rms.append(float(np.sqrt(np.mean(mono**2))))
    level = float(np.median([r for r in rms if r > 1e-6] or [1e-9]))
    return float(np.clip(CALIBRATION_DB - 20.0 * np.log10(level), -20.0, 40.0))


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
    ``tempo_bpm``, ``mode`` (major/minor), ``count`` (repeated_note), ``onset`` (s) and ``soundfont``
    (``FluidR3_GM`` | ``TimGM6mb``; default :func:`default_soundfont`). Missing values are drawn from ``rng``
    (default: seeded 0). Returns ``(audio [T] float32, [annotation])``; the annotation's ``source`` names the
    SoundFont and ``note_events`` lists ``[onset s, offset s, midi]`` per note.
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
    program = INSTRUMENTS[name][0]
    gain_db = _gain_db(name, a["soundfont"], sample_rate)
    mono = render_notes(
        program, [(s, e, m, a["velocity"]) for s, e, m in events], n, sample_rate, a["soundfont"]
    )
    audio = limit_peak(mono * 10.0 ** ((gain_db + DYNAMICS[a["dynamics"]][1]) / 20.0))
    ann: dict[str, Any] = {"class": name, "onset": round(start / sample_rate, 3)}
    ann["offset"] = round(min(stop, n) / sample_rate, 3)
    ann.update({k: v for k, v in a.items() if k not in ("onset", "soundfont")})
    ann["source"] = a["soundfont"]
    # one [onset s, offset s, midi] per played note: a monophonic instrument's never overlap
    ann["note_events"] = [
        [round(s / sample_rate, 3), round(min(e, n) / sample_rate, 3), m] for s, e, m in events if s < n
    ]
    ann["loudness_db"] = round(loudness(audio, sample_rate), 2)
    return audio, [ann]
