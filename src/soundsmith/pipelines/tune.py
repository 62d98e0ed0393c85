"""Held notes tuned to the note the prompt names: "a harsh buzzer at C3" gives a buzzer at C3.

A small text-to-audio model can render the sound a prompt asks in the register it heard that sound in: the
shipped default renders most "low buzzer" and "low beep" prompts an octave or two sharp, with the right note name
(docs/latent_diffusion.md, "Re-measured with the revised event counter"). When a prompt names one note for a held
sound ("a bell at pitch C#4 rings", "a clarinet plays one note starting at E3", "middle C on a piano"), the
generated clip's pitch is measured and, when it is off by more than :data:`TOLERANCE_SEMITONES`, the clip is
pitch-shifted to the note: down by playing it slower (resampled, its first seconds kept: a buzzer stays a buzzer,
where a phase vocoder made it phasey enough for the tagger to hear a tuba), up with a phase vocoder
(``librosa.effects.pitch_shift``: played faster, its end would be silent).

Only held notes: a prompt that names a phrase (scale, arpeggio, melody, tune, chord, sweep, glide, ...), several
notes, or a spoken word is left alone, as is a clip without a steady pitch (noise, or a pitch that wanders: fewer
than half of its sounding frames within a semitone of their median). The pitch is measured here with YIN (not
the evaluator's pYIN) with a check against the octave below: YIN reads some bells an octave high.
"""

from __future__ import annotations

import re

import numpy as np

TOLERANCE_SEMITONES = 0.35  # closer than this: left as generated (the evaluators accept 0.5)
MAX_SHIFT_SEMITONES = 30.0  # further than this: the measurement is more likely wrong than the model
_PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
# a letter, an accidental ("#", "b", " sharp ", "-flat"), an octave: "C3", "A#4", "Bb3", "E flat 5" (not "a 4")
_NOTE = re.compile(r"(?<![\w#'\"-])([A-Ga-g])(?:([#♯b♭])|[ -](sharp|flat) ?)?([0-8])(?![\w'\"-])")
_NAMED = {r"\bmiddle c\b": 60, r"\bconcert a\b": 69, r"\ba440\b": 69}
_PHRASES = re.compile(
    r"\b(?:scales?|arpeggios?|arpeggiated|melod(?:y|ies|ic)|tunes?|chords?|phrases?|riffs?|runs?|sweeps?|sweeping|"
    r"glides?|gliding|slides?|sliding|glissandos?|siren|rising|falling|ascending|descending|interval|octaves|"
    r"notes|sequence|song|trill)\b",
    re.IGNORECASE,
)
_SPOKEN = re.compile(
    r"\b(?:says?|saying|said|speaks?|speaking|spoken|pronounces?|whispers?|word|announces?|announcer|announcing|"
    r"reads?|reading|recites?|reciting|calls?|calling|shouts?|shouting|voice|voices)\b|\"",
    re.IGNORECASE,
)
# a note is read only in a prompt about a pitched sound, in a musical place: after "at", "on", "pitch", "note",
# "plays", "holding"... (or "a"/"the" after such a verb), or ending its clause ("a strong A4", "a lone A2,")
_PITCHED = re.compile(
    r"\b(?:tones?|notes?|pitch|pitched|beeps?|beeper|bleeps?|buzz(?:er|ing)?|bells?|chimes?|whistles?|hum|drone|"
    r"droning|horns?|alarm|fork|piano|violin|viola|cello|bass|flute|piccolo|recorder|guitar|banjo|ukulele|"
    r"mandolin|sitar|harp|trumpet|trombone|tuba|sax(?:ophone)?|clarinet|oboe|bassoon|organ|accordion|harmonica|"
    r"synth(?:esizer)?|oscillator|sine|square wave|sawtooth|marimba|xylophone|vibraphone|glockenspiel|celesta|"
    r"kalimba|harpsichord|rhodes|keyboard|choir|brass|strings?|fiddle|pan ?flute|ocarina)\b",
    re.IGNORECASE,
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


def _accidental(text: str | None) -> int:
    return 1 if text in ("#", "♯", "sharp") else -1 if text in ("b", "♭", "flat") else 0


def measure_note(audio: np.ndarray, sample_rate: int) -> float | None:
    """Median MIDI pitch of ``audio [T]``'s sounding frames (within 25 dB of the loudest), or ``None`` when it has
    no steady pitch (under half of those frames within a semitone of the median, or fewer than 5 of them)."""
    import librosa

    x = np.asarray(audio, dtype=np.float32)
    if x.size < 2048 or not np.any(x) or not np.all(np.isfinite(x)):
        return None
    hop = max(1, sample_rate // 100)
    f0 = librosa.yin(x, fmin=40.0, fmax=min(2000.0, sample_rate / 2 - 1), sr=sample_rate, frame_length=2048,
                     hop_length=hop)  # fmt: skip
    rms = librosa.feature.rms(y=x, frame_length=2048, hop_length=hop)[0][: len(f0)]
    db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    midi = librosa.hz_to_midi(f0[: len(db)][db > db.max() - 25.0])
    if midi.size < 5:
        return None
    median = float(np.median(midi))
    if np.mean(np.abs(midi - median) <= 1.0) < 0.5:
        return None
    if _octave_below(x, sample_rate, float(librosa.midi_to_hz(median))):
        median -= 12.0
    return median


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


def tune(audio: np.ndarray, sample_rate: int, target_midi: float) -> tuple[np.ndarray, float]:
    """``(audio, shift)``: ``audio [T]`` pitch-shifted by ``shift`` semitones to ``target_midi`` (the same length,
    float32), or unchanged with shift 0 when it is within :data:`TOLERANCE_SEMITONES`, has no steady pitch, or
    would move by more than :data:`MAX_SHIFT_SEMITONES`."""
    import librosa

    measured = measure_note(audio, sample_rate)
    if measured is None:
        return audio, 0.0
    shift = float(target_midi) - measured
    if abs(shift) < TOLERANCE_SEMITONES or abs(shift) > MAX_SHIFT_SEMITONES:
        return audio, 0.0
    x = np.asarray(audio, dtype=np.float32)
    if shift < 0:  # down: played slower (resampled), its first T samples kept: the waveform's shape is kept
        import soxr

        out = soxr.resample(x, sample_rate, sample_rate * 2 ** (-shift / 12), quality="HQ")
    else:  # up: played faster would leave the clip's end silent; a phase vocoder keeps the length
        out = librosa.effects.pitch_shift(x, sr=sample_rate, n_steps=shift, res_type="soxr_hq")
    out = np.pad(out[: x.size], (0, max(0, x.size - out.size)))
    return out.astype(np.float32), round(shift, 2)
