"""Held notes tuned to the note the prompt names: "a harsh buzzer at C3" gives a buzzer at C3.

A small text-to-audio model can render the sound a prompt asks in the register it heard that sound in: the
shipped default renders most "low buzzer" and "low beep" prompts an octave or two sharp, with the right note name
(docs/latent_diffusion.md, "Re-measured with the revised event counter"). When a prompt names one note for a held
sound ("a bell at pitch C#4 rings", "a clarinet plays one note starting at E3", "middle C on a piano"), the
generated clip's pitch is measured and, when it is off by more than :data:`TOLERANCE_SEMITONES`, the clip is
pitch-shifted to the note: down by playing it slower from where it starts (resampled: a buzzer stays a buzzer,
where a phase vocoder made it phasey enough for the tagger to hear a tuba), up with a phase vocoder
(``librosa.effects.pitch_shift``: played faster, its end would be silent).

Only held notes: a prompt that names a phrase (scale, arpeggio, melody, tune, chord, sweep, glide, ...), several
notes, or a spoken word is left alone, as is a clip without a steady pitch (noise, or a pitch that wanders: fewer
than half of its sounding frames within a semitone of their median). The pitch is measured here with YIN (not
the evaluator's pYIN) with a check against the octave below: YIN reads some bells an octave high.

A prompt about a pitched sound event (a tone, beep, bell, buzzer, alarm, hum) that names a register instead of a
note ("a device beeps twice (low register)", "a high-pitched tone", "a low hum") asks for the events' register
(MIDI 48-59, 60-71, 72-83: :data:`soundsmith.eval.attribute_vocab.EVENT_REGISTERS`): a clip outside it is moved
into it by whole octaves (its note name kept). An instrument's register is a third of that instrument's range
(:func:`asked_instrument_register`): "a cello in the low register" is not shifted (a phrase moved by a phase
vocoder loses its timbre), but the pipeline draws it again when its root lies outside (:func:`register_error`,
``LatentDiffusionConfig.register_tries``).

A strike (a counted sound's once version, :mod:`soundsmith.pipelines.compose`, or a sound asked once) is tuned
the same way; played slower, the dips after its top are filled (a ring played slower beats slower, and the event
counter hears the beats as more strikes). A clip holding several events is shifted down by the phase vocoder
(played slower, their rhythm would slow).

A prompt that asks a pitch direction ("a rising scale", "a tone gliding down", "a piano scale tumbling downward")
is checked too: unless the clip's pitch moves that way (:func:`measure_direction`: the median pitch of the last
third of its sounding, periodic frames against the first third, one semitone or more), the pipeline draws it again from fresh
noise, up to :data:`DIRECTION_TRIES` times, and keeps the first draw that moves as asked. When none does, the first
draw that moves as asked up to a point (a scale that climbs, then falls back to its root) is cut there
(:func:`cut_to_direction`), else the first that does not move the other way (steady or unreadable) is kept, else
the last.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from soundsmith.eval.attribute_vocab import EVENT_REGISTERS
from soundsmith.pipelines.compose import SPEAKING

TOLERANCE_SEMITONES = 0.35  # closer than this: left as generated (the evaluators accept 0.5)
MAX_SHIFT_SEMITONES = 30.0  # further than this: the measurement is more likely wrong than the model
BEAT_DB = 2.0  # a strike's dips after its top are filled to this far under what follows (the counter: 4 dB)
RING_DB = 30.0  # ... while it rings: within this of its top (the noise floor after it is left as it is)
_PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
# a letter, an accidental ("#", "b", " sharp ", "-flat"), an octave: "C3", "A#4", "Bb3", "E flat 5" (not "a 4")
_NOTE = re.compile(r"(?<![\w#'\"-])([A-Ga-g])(?:([#♯b♭])|[ -](sharp|flat) ?)?([0-8])(?![\w'\"-])")
_NAMED = {r"\bmiddle c\b": 60, r"\bconcert a\b": 69, r"\ba440\b": 69}
# phrases whose pitch moves (a direction can be asked of them); with the other phrases, no held note
_CONTOUR_WORDS = (
    r"scales?|arpeggios?|arpeggiated|melod(?:y|ies|ic)|tunes?|phrases?|runs?|sweeps?|sweeping|glides?|gliding|"
    r"slides?|sliding|glissandos?"
)
_PHRASES = re.compile(
    r"\b(?:" + _CONTOUR_WORDS + r"|chords?|riffs?|siren|rising|falling|ascending|descending|interval|octaves|"
    r"notes|sequence|song|trill)\b",
    re.IGNORECASE,
)
_SPOKEN = re.compile(
    rf"\b(?:{SPEAKING}|word|announcer|reads?|reading|calls?|calling|voice|voices)\b|\"", re.IGNORECASE
)
# the pitched sources whose register is the events' (a tone, beep, bell...), and the instruments, whose register
# depends on the instrument
_EVENT_WORDS = (
    r"(?:tones?|beep(?:s|er|ers|ing)?|bleeps?|buzz(?:es|er|ers|ing)?|(?:door)?bells?|chim(?:e|es|ing)|"
    r"whistl(?:e|es|ing)|hum(?:s|ming)?|dron(?:e|es|ing)|alarms?|forks?|sine|oscillators?|square wave|sawtooth|"
    r"pings?|dings?|gongs?|ringtones?|horns?)\b"
)
_INSTRUMENT_WORDS = (
    r"(?:french horns?|english horns?|horn section|piano|violin|viola|cello|bass|flute|piccolo|recorder|guitar|"
    r"banjo|ukulele|mandolin|sitar|harp|trumpet|trombone|tuba|sax(?:ophone)?|clarinet|oboe|bassoon|organ|"
    r"accordion|harmonica|synth(?:esizer)?|marimba|xylophone|vibraphone|glockenspiel|celesta|kalimba|"
    r"harpsichord|rhodes|keyboard|choir|brass|strings?|fiddle|pan ?flute|ocarina|steel ?(?:pan|drums?))\b"
)
_EVENT_SOURCES = re.compile(r"\b" + _EVENT_WORDS, re.IGNORECASE)
_INSTRUMENTS = re.compile(r"\b" + _INSTRUMENT_WORDS, re.IGNORECASE)
_SINGERS = re.compile(r"\b(?:singers?|vocalists?|choirs?)\b", re.IGNORECASE)
_TONES = re.compile(r"\b(?:tones?|sine|oscillators?|square wave|sawtooth)\b", re.IGNORECASE)  # no source of its own
# a note is read only in a prompt about a pitched sound, in a musical place: after "at", "on", "pitch", "note",
# "plays", "holding"... (or "a"/"the" after such a verb), or ending its clause ("a strong A4", "a lone A2,")
_PITCHED = re.compile(r"\b(?:notes?|pitch|pitched)\b|\b" + _EVENT_WORDS + r"|\b" + _INSTRUMENT_WORDS, re.IGNORECASE)
# a sound asked once: one strike ("a bell rings once"); not "once a second", "once again", "all at once", "more
# than once", "once the fridge starts"
ONCE = re.compile(
    r"(?<!\bthan )(?<!\bat )\bonce\b(?!\s+(?:every|per|a|an|each|again|more|in|the|it|its|you|we|they|he|she|i|"
    r"that|this|when|there)\b)",
    re.IGNORECASE,
)
_CLAUSES = re.compile(r"[,;:]|\b(?:then|while|as|over|after|before|behind|with)\b", re.IGNORECASE)
MEL_FROM_MIDI = 60.0  # with ``shift_in_mel``: notes from C4 up are moved in the log-mel, lower ones as before
MEL_LANDED_SEMITONES = 0.5  # ... and kept when they land this close to the asked pitch (else shifted as before)
PITCH_REDRAW_SEMITONES = 1.0  # a held pitch (or an instrument's root) further than this from its ask is drawn
# again (``pitch_tries``, ``register_tries``)
DIRECTION_TRIES = 4  # a clip whose pitch does not move the asked way is drawn again at most this often
CUT_KEEP = 0.3  # ... and, when no draw moves so, cut where it last does (:func:`cut_to_direction`), keeping at least
# this share of its sounding frames
CUT_FADE_S = 0.08  # the cut's fade-out: the last kept note's end (nothing of the next one is heard)
PERIODICITY = 0.5  # a frame whose normalised autocorrelation at its YIN period is under this is no note's
_CONTOURED = re.compile(r"\b(?:" + _CONTOUR_WORDS + r"|sirens?|swoop(?:s|ing)?|dives?|diving)\b", re.IGNORECASE)
_RISING = re.compile(
    r"\b(?:rising|rises?|ascending|ascends?|upwards?|climb(?:s|ing)?|going up|goes up|go up|sweeps? up|"
    r"sweeping up|glides? up|gliding up|slides? up|sliding up|swoop(?:s|ing)? up|bends? up|bending up)\b",
    re.IGNORECASE,
)
_FALLING = re.compile(
    r"\b(?:falling|falls?|descending|descends?|downwards?|dropping|drops?|going down|goes down|go down|"
    r"sweeps? down|sweeping down|glides? down|gliding down|slides? down|sliding down|tumbl(?:es|ing) down|"
    r"dives?|diving|bends? down|bending down)\b",
    re.IGNORECASE,
)
# a register named: "(low register)", "in the middle register", "high-pitched", "low-frequency", "at a high pitch",
# "upper register", "bass register"; or low / high / deep before a sound event, up to three words on ("a low beep",
# "a deep electronic hum", "a low, steady hum"), unless one of them makes it something else ("a high volume beep",
# "a low battery beep", "a high school bell")
_REGISTER_NAMES = {"low": "low", "deep": "low", "bass": "low", "middle": "middle", "mid": "middle", "high": "high",
                   "upper": "high", "treble": "high"}  # fmt: skip
_REGISTER_FORMS = frozenset(("register", "range", "pitch", "pitched", "frequency", "toned"))
_BEFORE_EVENT = frozenset(("low", "deep", "high"))
_NOT_PITCH = frozenset(
    "volume speed level quality pressure battery priority power energy intensity tempo rate fuel oil tire tyre "
    "water signal light cost temperature alert school end tide voltage risk security resolution".split()
)
_BEFORE = frozenset(
    "at on in to from of pitch note key tone bar around near plays play playing played holds hold holding held "
    "sustains sustaining sustained sounds sounding sound tuned strikes striking struck bowing bows blows blowing "
    "hums humming sings singing rings ringing picks picking plucks plucking".split()
)
_ARTICLES = frozenset(("a", "an", "the"))
# a word before a note-like token at a clause's end that makes it a label, not a note ("at gate B4")
_LABELS = frozenset(
    "gate room platform seat row flight terminal vitamin level floor suite apartment unit block zone section size "
    "paper format model type grade class route bus exit junction channel track sector square cell grid".split()
)
_CLAUSE_END = re.compile(r"^\s*(?:$|[,.;:!?)(])")


def _in_place(text: str, start: int, end: int) -> bool:
    """Whether the note token ``text[start:end]`` sits where a note is named (see :data:`_BEFORE`)."""
    words = re.findall(r"[\w']+", text[:start].lower())
    before = words[-1] if words else ""
    if before in _BEFORE:
        return True
    if before in _ARTICLES:
        return len(words) > 1 and words[-2] in _BEFORE
    return before != "" and before not in _LABELS and bool(_CLAUSE_END.match(text[end:]))


def asked_note(prompt: str) -> float | None:
    """The MIDI note (21-108) a prompt about a pitched sound names for one held sound ("at pitch C#4", "on E3",
    "holds a Bb3", "a strong A4", "middle C"), or ``None``: no note, several notes, a phrase, a spoken or read word,
    no pitched sound named ("an F1 car", "gate B4", "an A4 sheet"), or a note token out of a musical place."""
    text = " ".join(prompt.split())
    if _PHRASES.search(text) or _SPOKEN.search(text) or not _PITCHED.search(text):
        return None
    notes = {
        12 * (int(m.group(4)) + 1) + _PITCH_CLASS[m.group(1).lower()] + _accidental(m.group(2) or m.group(3))
        for m in _NOTE.finditer(text)
        if _in_place(text, m.start(), m.end())
    }
    notes |= {midi for pattern, midi in _NAMED.items() if re.search(pattern, text, re.IGNORECASE)}
    return float(notes.pop()) if len(notes) == 1 and 21 <= min(notes) <= 108 else None


def asked_register(prompt: str) -> tuple[int, int] | None:
    """The MIDI range (inclusive) of the register a prompt about a pitched sound event asks ("beeps twice (low
    register)", "a high-pitched tone", "a deep hum", "a low, steady hum": :data:`EVENT_REGISTERS`), or ``None``:
    no register or several, no pitched event named, an instrument or a singer as its source (its register is a
    third of its own range: "a cello in the low register", "a piano tone (low register)"; "a brass bell" is a
    bell), a phrase or a spoken word, or a note named (:func:`asked_note` reads it)."""
    return None if asked_note(prompt) is not None else _event_register(prompt)


def _event_register(prompt: str) -> tuple[int, int] | None:
    """:func:`asked_register` but for its note check (:func:`asked_pitch` has read the note already)."""
    text = " ".join(prompt.split())
    if _PHRASES.search(text) or _SPOKEN.search(text) or _SINGERS.search(text):
        return None
    events = list(_EVENT_SOURCES.finditer(text))
    instruments = list(_INSTRUMENTS.finditer(text))
    if not events:
        return None
    if instruments:  # an instrument's sound, unless a sound event of its own comes after it ("a brass bell")
        after = [m for m in events if m.start() > instruments[-1].end()]
        if not after or all(_TONES.fullmatch(m.group(0)) for m in after):
            return None
    words = re.findall(r"[a-z]+(?:-[a-z]+)*|,", text.lower())
    registers = set()
    for i, word in enumerate(words):
        head, _, form = word.partition("-")
        if head in _REGISTER_NAMES and form in _REGISTER_FORMS:  # "high-pitched", "low-frequency"
            registers.add(_REGISTER_NAMES[head])
        elif word in _REGISTER_NAMES and i + 1 < len(words) and words[i + 1] in _REGISTER_FORMS:
            registers.add(_REGISTER_NAMES[word])  # "low register", "at a high pitch", "bass register"
        elif word in _BEFORE_EVENT:  # "a low beep", "a deep electronic hum", "a low, steady hum"
            for nxt in [w for w in words[i + 1 : i + 7] if w not in (",", "and")][:3]:
                if nxt in _NOT_PITCH:
                    break
                if _EVENT_SOURCES.fullmatch(nxt):
                    registers.add(_REGISTER_NAMES[word])
                    break
    return EVENT_REGISTERS[registers.pop()] if len(registers) == 1 else None


def asked_pitch(prompt: str) -> float | tuple[int, int] | None:
    """What :func:`tune` moves a clip of ``prompt`` to: the note it names (:func:`asked_note`), else the register
    range it asks of a sound event (:func:`asked_register`), else ``None``."""
    note = asked_note(prompt)
    return note if note is not None else _event_register(prompt)


def asked_instrument_register(prompt: str) -> tuple[int, int] | None:
    """The MIDI range (inclusive) of the register a prompt asks of an instrument or a singer's phrase or note
    without naming one held note: "a cello plays a brief melody in the middle register", "a flute plays a single
    note in the low register", "the banjo plays a little tune starting at C5" (the named root's register). An
    instrument's register is a third of its range (:func:`soundsmith.eval.attribute_vocab.register_range`, the
    corpus' instruments). ``None``: a held note named or a sound event's register (:func:`asked_pitch` reads
    them), a spoken word, no instrument, or no register."""
    from soundsmith.eval.prompt_parse import parse_prompt

    text = " ".join(prompt.split())
    if _SPOKEN.search(text) or not (_INSTRUMENTS.search(text) or _SINGERS.search(text)):
        return None
    if asked_pitch(text) is not None:
        return None
    span = parse_prompt(text).get("register_range")
    return (int(span[0]), int(span[1])) if span else None


def register_error(audio: np.ndarray, sample_rate: int, target: tuple[int, int], falling: bool = False) -> float | None:
    """How many semitones the root of ``audio [T]``'s phrase lies outside ``target`` (0 inside it), or ``None``
    when it has too few sounding frames (under 5) to tell. The root is its lowest sustained pitch (the 10th
    percentile of its sounding frames' YIN pitch, 20-ms hops: a third of the 10-ms hops' time, and a percentile
    needs no finer), or for a ``falling`` phrase its first and highest (the 90th)."""
    midi = _sounding_pitch(audio, sample_rate, hop_s=0.02)
    if midi is None or midi.size < 5:
        return None
    return note_error(float(np.percentile(midi, 90.0 if falling else 10.0)), target)


def asked_direction(prompt: str) -> int | None:
    """+1 when a prompt about a pitched phrase or sweep asks its pitch to rise ("a rising scale", "a tone
    sliding up", "an arpeggio going up"), -1 to fall ("a descending scale", "a siren sweeping downward"), else
    ``None``: no direction or both, no pitched phrase or sound named ("rain falls", "the rising wind"), or a
    spoken word."""
    text = " ".join(prompt.split())
    if _SPOKEN.search(text):
        return None
    asked = set()
    for clause in _CLAUSES.split(text):  # "as rain falls, a flute plays a chord": the rain's fall is not a pitch's
        if _CONTOURED.search(clause) or _PITCHED.search(clause):
            up, down = bool(_RISING.search(clause)), bool(_FALLING.search(clause))
            asked |= {1} if up and not down else {-1} if down and not up else {0} if up else set()
    if len(asked) != 1:
        return None
    return asked.pop() or None  # 0: both ways in one clause ("a siren rising and falling")


Contour = tuple[np.ndarray, np.ndarray] | None  # :func:`direction_contour`: (sounding frames, MIDI), or None


def measure_direction(audio: np.ndarray, sample_rate: int, contour: Contour | bool = False) -> int | None:
    """+1 when ``audio [T]``'s pitch rises, -1 when it falls, 0 when it stays within a semitone: the median
    pitch (YIN, :func:`direction_contour`) of the last third of its sounding, periodic frames against the first
    third; ``None`` when it has too few such frames (under 12) to tell. ``contour``: ``audio``'s, when read
    already."""
    track = direction_contour(audio, sample_rate) if contour is False else contour
    if track is None:
        return None
    delta = _rise(track[1], track[1].size)
    return 0 if abs(delta) < 1.0 else (1 if delta > 0 else -1)


def _rise(midi: np.ndarray, c: int) -> float:
    """How far the first ``c`` frames' last third lies above their first third (median MIDI, semitones)."""
    k = c // 3
    return float(np.median(midi[c - k : c]) - np.median(midi[:k]))


def direction_contour(audio: np.ndarray, sample_rate: int) -> Contour:
    """The pitch contour a direction is read on (:func:`measure_direction`, :func:`cut_to_direction`): 10-ms hops."""
    return _contour(np.asarray(audio, dtype=np.float32), sample_rate, _direction_hop(sample_rate))


def _direction_hop(sample_rate: int) -> int:
    """The hop of :func:`direction_contour`'s frames in samples: 10 ms."""
    return max(1, int(round(0.01 * sample_rate)))


def _contour(x: np.ndarray, sample_rate: int, hop: int) -> Contour:
    """:func:`_sounding_yin`'s periodic ``(frames, midi)`` with the pitch median-smoothed over 5 frames (a glide
    between two notes, read as their common subharmonic for a frame or two, is not taken for a note); ``None``
    also under 12 such frames."""
    from scipy.ndimage import median_filter

    found = _sounding_yin(x, sample_rate, hop, periodic=True)
    if found is None or found[0].size < 12:
        return None
    return found[0], median_filter(found[1], size=5, mode="nearest")


def cut_to_direction(
    audio: np.ndarray, sample_rate: int, want: int, keep: float = CUT_KEEP, contour: Contour | bool = False
) -> np.ndarray | None:
    """``audio [T]`` faded out where its pitch last moves the ``want`` way (+1 up, -1 down), or ``None``.

    A phrase asked to rise can climb and then fall back to its root ("60 62 64 67, then 60 held"): judged from its
    first third to its last, it does not move. Its pitch (:func:`_contour`: YIN, 10-ms hops, sounding periodic
    frames, median-smoothed over 50 ms) is read; the longest stretch from its start, at least ``keep`` of its
    sounding frames, that moves as asked (the median of its last third a semitone or more past its first third,
    as :func:`measure_direction` reads it) is kept, without the frames at its end that have already turned back
    (more than a semitone short of that last third); its last :data:`CUT_FADE_S` fade out and the rest is silent. ``None``
    when the clip already moves as asked, when no such stretch exists, or when it is unreadable. ``contour``:
    ``audio``'s (:func:`direction_contour`), when read already."""
    x = np.asarray(audio, dtype=np.float32)
    if want not in (1, -1):
        return None
    hop = _direction_hop(sample_rate)  # the contour's frames, in samples
    track = direction_contour(x, sample_rate) if contour is False else contour
    if track is None:
        return None
    frames, midi = track

    def moves(c: int) -> float:  # how far the first c sounding frames move the asked way, in semitones
        return want * _rise(midi, c)

    if moves(midi.size) >= 1.0:
        return None
    lowest = max(6, int(np.ceil(keep * midi.size)))
    cut = next((c for c in range(midi.size - 1, lowest - 1, -1) if moves(c) >= 1.0), None)
    if cut is None:
        return None
    reached = float(np.median(midi[cut - cut // 3 : cut]))
    while cut > lowest and want * (midi[cut - 1] - reached) < -1.0:  # already turned back
        cut -= 1
    end = min(x.size, int(frames[cut - 1]) * hop + hop)
    fade = min(int(CUT_FADE_S * sample_rate), end)
    out = x.copy()
    out[end - fade : end] *= (0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade))).astype(np.float32)
    out[end:] = 0.0
    return out


def pitch_error(audio: np.ndarray, sample_rate: int, target: float | tuple[int, int]) -> float | None:
    """How many semitones ``audio [T]``'s held pitch (:func:`measure_note`) is from ``target`` (a MIDI note, or a
    register's range ``(low, high)``: 0 inside it), or ``None`` when it has no steady pitch."""
    return note_error(measure_note(audio, sample_rate), target)


def note_error(measured: float | None, target: float | tuple[int, int]) -> float | None:
    """:func:`pitch_error` of a held pitch already measured (``None``: none, and so no error)."""
    if measured is None:
        return None
    if isinstance(target, tuple):
        low, high = target
        return max(0.0, low - measured, measured - high)
    return abs(float(target) - measured)


def _accidental(text: str | None) -> int:
    return 1 if text in ("#", "♯", "sharp") else -1 if text in ("b", "♭", "flat") else 0


def measure_note(audio: np.ndarray, sample_rate: int) -> float | None:
    """Median MIDI pitch of ``audio [T]``'s sounding frames (within 25 dB of the loudest), or ``None`` when it has
    no steady pitch (under half of those frames within a semitone of the median, or fewer than 5 of them)."""
    midi = _sounding_pitch(audio, sample_rate)
    if midi is None or midi.size < 5:
        return None
    median = float(np.median(midi))
    if np.mean(np.abs(midi - median) <= 1.0) < 0.5:
        return None
    if _octave_below(np.asarray(audio, dtype=np.float32), sample_rate, 440.0 * 2 ** ((median - 69) / 12)):
        median -= 12.0
    return median


def _sounding_yin(
    x: np.ndarray, sample_rate: int, hop: int, periodic: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(frames, midi)``: the indices of ``x [T]``'s sounding ``hop``-sample frames (within 25 dB of the loudest)
    and YIN's MIDI pitch of each, in time order; ``None`` for a clip too short (under 2048 samples), silent or not
    finite. ``periodic``: only the frames that repeat at the period YIN found (:func:`_periodic`): a noisy tail
    or a breath has a YIN reading too, of no note."""
    import librosa

    if x.size < 2048 or not np.any(x) or not np.all(np.isfinite(x)):
        return None
    f0 = librosa.yin(x, fmin=40.0, fmax=min(2000.0, sample_rate / 2 - 1), sr=sample_rate, frame_length=2048,
                     hop_length=hop)  # fmt: skip
    rms = librosa.feature.rms(y=x, frame_length=2048, hop_length=hop)[0][: len(f0)]
    db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    frames = np.flatnonzero(db > db.max() - 25.0)
    if periodic:
        frames = frames[_periodic(x, sample_rate, hop, frames, f0[frames])]
    return frames, librosa.hz_to_midi(f0[frames])


def _periodic(x: np.ndarray, sample_rate: int, hop: int, frames: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Which of the 2048-sample ``frames`` (centred every ``hop`` samples) correlate with themselves one period
    ``1 / f0`` later by at least :data:`PERIODICITY` (normalised)."""
    padded = np.pad(x, 1024)
    keep = np.zeros(frames.size, dtype=bool)
    for k, (i, hz) in enumerate(zip(frames, f0, strict=True)):
        lag = int(round(sample_rate / hz))
        if lag >= 2048 - 256:  # too few samples a period apart to tell
            continue
        seg = padded[i * hop : i * hop + 2048]
        a, b = seg[:-lag], seg[lag:]
        norm = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
        keep[k] = norm > 0.0 and float(np.dot(a, b)) / norm >= PERIODICITY
    return keep


def _sounding_pitch(audio: np.ndarray, sample_rate: int, hop_s: float = 0.01) -> np.ndarray | None:
    """YIN's MIDI pitch ``[frames]`` of ``audio [T]``'s sounding frames (``hop_s`` hops: :func:`_sounding_yin`)."""
    found = _sounding_yin(np.asarray(audio, dtype=np.float32), sample_rate, max(1, int(round(hop_s * sample_rate))))
    return None if found is None else found[1]


def _octave_below(x: np.ndarray, sample_rate: int, f0: float) -> bool:
    """Whether the average spectrum holds a partial at ``f0 / 2`` within 12 dB of the one at ``f0`` and 15 dB
    above the spectrum's median near it: then ``f0`` was the octave of the fundamental."""
    n_fft = 8192
    if f0 / 2 < 30.0 or x.size < n_fft:
        return False
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[:: n_fft // 4]
    spectrum = np.mean(np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) ** 2, axis=0)
    db = 10.0 * np.log10(np.maximum(spectrum, 1e-20))
    bin_hz = sample_rate / n_fft

    def level(hz: float) -> tuple[float, float]:
        k = int(round(hz / bin_hz))
        near = db[max(0, k - 40) : k + 41]
        return float(db[max(0, k - 3) : k + 4].max()), float(np.median(near))

    top, _ = level(f0)
    low, around = level(f0 / 2)
    return low >= top - 12.0 and low >= around + 15.0


def tune(
    audio: np.ndarray,
    sample_rate: int,
    target: float | tuple[int, int],
    strike: bool = False,
    shift_in_mel: Callable[[np.ndarray, float], np.ndarray] | None = None,
    measured: float | None = None,
) -> tuple[np.ndarray, float]:
    """``(audio, shift)``: ``audio [T]`` pitch-shifted by ``shift`` semitones (the same length, float32), or
    unchanged with shift 0 when it has no steady pitch or is already there. ``target``: a MIDI note (moved to it
    when more than :data:`TOLERANCE_SEMITONES` off and less than :data:`MAX_SHIFT_SEMITONES`), or a register's
    MIDI range ``(low, high)`` (moved by whole octaves into it when outside it by more than half a semitone).

    Down by playing it slower from where its first event starts (the waveform's shape kept: a buzzer stays a
    buzzer), unless it holds several events (:func:`_has_gaps`; their rhythm would slow: then by the phase
    vocoder); up by the phase
    vocoder (``librosa.effects.pitch_shift``; played faster, a held sound's end would go silent). A ``strike``
    (a part that is repeated, or asked once) played slower has the dips after its top filled
    (:func:`_even_decay`): a ring played slower beats slower, and the event counter hears the beats as strikes.
    ``shift_in_mel(audio, semitones)``, when given, re-renders a clip whose note is :data:`MEL_FROM_MIDI` or higher
    (its log-mel moved, then the vocoder: the waveform made once at the new pitch, its timing kept) and keeps it
    when its note lands within :data:`MEL_LANDED_SEMITONES` of the asked one; lower notes, and those that do not
    land, take the ways above (below C4 the 64-mel front end does not resolve the harmonics:
    ``scripts/mel_shift_probe.py``). ``measured``: ``audio``'s held pitch (:func:`measure_note`) when the caller
    has read it already (None: read here)."""
    import librosa

    from soundsmith.pipelines.compose import first_event

    measured = measure_note(audio, sample_rate) if measured is None else measured
    if measured is None:
        return audio, 0.0
    if isinstance(target, tuple):
        low, high = target
        # the octave inside it (a register spans 12 semitones: one, but for a reading on its edge), within
        # MAX_SHIFT_SEMITONES
        fits = [12.0 * k for k in (0, -1, 1, -2, 2) if low - 0.5 <= measured + 12 * k <= high + 0.5]
        shift = fits[0] if fits else 0.0
    else:
        shift = float(target) - measured
        shift = 0.0 if abs(shift) < TOLERANCE_SEMITONES else shift
    if shift == 0.0 or abs(shift) > MAX_SHIFT_SEMITONES:
        return audio, 0.0
    x = np.asarray(audio, dtype=np.float32)
    if shift_in_mel is not None and measured >= MEL_FROM_MIDI:
        out = np.asarray(shift_in_mel(x, shift), dtype=np.float32)
        landed = measure_note(out, sample_rate)
        if landed is not None and abs(landed - (measured + shift)) <= MEL_LANDED_SEMITONES:
            return out, round(shift, 2)
    start = first_event(x, sample_rate)[0]
    if shift < 0 and (strike or not _has_gaps(x, sample_rate)):
        out = _played_at(x, sample_rate, shift, start)
        out = _even_decay(out, sample_rate) if strike else out
    else:
        out = librosa.effects.pitch_shift(x, sr=sample_rate, n_steps=shift, res_type="soxr_hq")
        out = np.pad(out[: x.size], (0, max(0, x.size - out.size)))
    return out.astype(np.float32), round(shift, 2)


def _has_gaps(x: np.ndarray, sample_rate: int, below_db: float = 25.0, gap_s: float = 0.1) -> bool:
    """Whether ``x [T]`` holds several events: a stretch of at least ``gap_s`` more than ``below_db`` under its
    loudest (10-ms RMS) between two sounding frames (beeps once a second; not a harsh buzzer's brief dips)."""
    from soundsmith.pipelines.compose import frame_db

    hop = max(1, sample_rate // 100)
    db = frame_db(x, hop)
    sounding = np.flatnonzero(db >= db.max() - below_db)
    return bool(np.any(np.diff(sounding) > gap_s * sample_rate / hop))


def _played_at(x: np.ndarray, sample_rate: int, shift: float, start: int) -> np.ndarray:
    """``x`` played ``2 ** (shift / 12)`` times as fast (soxr) from sample ``start`` on (where its first event
    starts: a strike at 1 s stays at 1 s), what comes before left; cut or padded with silence to its length."""
    import soxr

    out = soxr.resample(x[start:], sample_rate, sample_rate * 2 ** (-shift / 12), quality="HQ")
    out = np.concatenate([x[:start], out[: x.size - start]])
    return np.pad(out, (0, x.size - out.size))


def _even_decay(y: np.ndarray, sample_rate: int, max_gain: float = 10.0) -> np.ndarray:
    """``y`` with the dips after its loudest moment filled: its level (RMS over 20 ms every 10 ms) raised to
    :data:`BEAT_DB` under the loudest that follows, by at most ``max_gain``, while within :data:`RING_DB` of the
    top; interpolated gains; elsewhere (before the top, the noise under the ring) left as it is."""
    hop = max(1, sample_rate // 100)
    centres = np.arange(0, y.size, hop)
    padded = np.pad(np.square(y.astype(np.float64)), (hop, hop))
    level = np.sqrt(np.convolve(padded, np.ones(2 * hop) / (2 * hop), mode="same")[hop:-hop][centres])
    if level.size == 0 or level.max() <= 0.0:
        return y
    top = int(np.argmax(level))
    gain = np.ones_like(level)
    after = level[top:]
    hull = np.maximum.accumulate(after[::-1])[::-1]  # the loudest from each frame on
    want = np.maximum(after, hull * 10 ** (-BEAT_DB / 20))  # dips kept down to BEAT_DB: a bell still beats
    ringing = after >= level[top] * 10 ** (-RING_DB / 20)
    gain[top:] = np.where(ringing, np.minimum(want / np.maximum(after, 1e-12), max_gain), 1.0)
    return y * np.interp(np.arange(y.size), centres, gain).astype(np.float32)
