"""Layered prompts, generated part by part: a background bed plus foreground sounds in order, then mixed.

A text-to-audio model that renders "a dog barks" well can still fail "over the rain, a dog barks, then a bell
rings": one clip must hold three sources, their order and their balance, and a small model spreads its capacity
over all of it (measured in docs/latent_diffusion.md, "Layered prompts"). Composition is the remedy that
WavJourney (Liu et al. 2023) and Make-An-Audio 2 apply with a language model: split the prompt into its sources,
generate each alone, lay them out in time and mix. Here the split is a small grammar of how English layers
sounds (no language model, nothing about a particular corpus):

- a background bed: "X over Y", "over Y, X", "under / beneath / through Y, X" (the bed word ending Y), "X
  while / as Y", "Y while / as X" (Y opening with its ambient noun, X starting like a new source), "as Y, X",
  "X with Y behind / in the background", "with Y behind, X", "Y in the background as X", "Y with X on top /
  over it / above it", "X on top of Y" (the bed word ending Y), "a scene with Y: X", "Y; X", "X amid / against
  Y", "X in Y" (the bed word ending Y), where Y names an ambient sound (rain, wind, hiss, noise, hum, drone,
  motor, engine, sea, surf, waves, traffic, crowd, stream, static, storm) or silence;
- foreground sounds in order: "A, then B", "A followed by B", "first A, then B, then C", where the clause after
  the connective starts like a new source; "then silence" / "then a pause" is a silent slot;
- a counted sound: "a bell rings three times", "an alarm beeps twice", "three beeps at E3", "a timer with four
  beeps" (a number first or after "with" or a comma, at most two words and a plural noun, nothing after but a
  place, a pitch or a description): generated once ("a bell rings once", "one beep at E3") and repeated at a
  regular interval, as a struck bell, a device or a drum machine repeats its sound.

:func:`plan_scene` returns ``None`` for a prompt with a single uncounted source and no bed, with more than
:data:`MAX_SOURCES` sources in order, or with slots shorter than :data:`MIN_SLOT_S` (generated as it is), so
plain prompts are untouched. :func:`mix_scene` lays the foreground parts out in equal consecutive slots (each
part's active stretch at the start of its slot, faded where it is cut), repeats a counted part's first event
(:func:`first_event`) and sets the bed ``snr_db`` under the quietest foreground part's active level.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# How far a scene's bed sits under its quietest foreground part (dB of active level): the middle of the corpus'
# SNRs (6-20 dB, data/synth/scenes.py). ``LatentDiffusionConfig.bed_snr_db`` and ``kind_bed_snr_db`` (per kind
# of part, e.g. spoken words) set it per model.
BED_SNR_DB = 13.0

# Words that make a phrase an ambient bed; "quiet" ones mean no bed at all.
BED_WORDS = (
    "rain", "raining", "drizzle", "downpour", "wind", "windy", "breeze", "gust", "gusting", "noise", "noisy",
    "hiss", "hissing", "hum", "humming", "hums", "drone", "drones", "droning", "motor", "engine", "sea", "surf",
    "waves", "ocean", "traffic", "crowd", "chatter", "stream", "river", "static", "storm",
)  # fmt: skip
QUIET_WORDS = ("silence", "silent", "quiet", "stillness")
MAX_SOURCES = 4  # more sources in order than this: generated as one clip (each under a second of 4 s)
MIN_SLOT_S = 0.25  # sources in order whose slots would be shorter than this: generated as one clip
MAX_REPEATS = 8  # a sound asked more times than this is generated as it is (too many to lay out one by one)
MIN_REPEAT_S = 0.15  # nor when its repeats would come closer together than this
MIN_EVENT_S = 0.04  # a counted part whose first event is shorter (a click) is generated as asked instead
MIN_EVENT_DBFS = -60.0  # as is one whose peak is below this (near-silence, however loud it reads relatively)
# A clause after "then" is a new source only if it starts like one (a determiner, a number, a pronoun, a common
# plural source); otherwise it goes on describing the previous one: "an engine revs, then powers down".
_SUBJECT_WORDS = frozenset(
    "a an the another some someone somebody something one two three four five six seven eight nine ten several "
    "many his her their its this that these those people birds songbirds dogs footsteps steps waves bells drums "
    "voices children water thunder".split()
)
_NEEDS_NOUN = frozenset("a an the another some one two three four five six seven eight nine ten several many his "
                        "her their its this that these those".split())  # fmt: skip
# a bed word followed by one of these names a place or a thing, not an ambient sound ("an engine room")
_COMPOUND_NOUNS = frozenset(
    "room rooms hall shop station tunnel forest factory garage chamber chime chimes instrument instruments "
    "turbine farm bay house shelter".split()
)
_BED = re.compile(r"\b(?:" + "|".join(BED_WORDS + QUIET_WORDS) + r")\b", re.IGNORECASE)
_QUIET = re.compile(r"\b(?:" + "|".join(QUIET_WORDS) + r")\b", re.IGNORECASE)
_GAP = re.compile(r"\b(?:silence|quiet|pause|nothing)\b", re.IGNORECASE)
_THEN = re.compile(
    r"(\s*(?:,\s*|\s)(?:and\s+)?(?:then|followed by|after that,?|and after that,?)\s+)", re.IGNORECASE
)
_NUMBERS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_NUMBER = r"(?:\d+|" + "|".join(_NUMBERS) + ")"
# "twice", "three times", not "twice as loud" / "three times faster" (a comparison), "twice a second" (a rate)
# or "the two times table"
_TIMES = re.compile(
    rf"\b(?:twice|thrice|(?P<n>{_NUMBER}) times)\b"
    r"(?!\s+(?:as|more|less|over|table|a|an|per|each|every|\w+er)\b)",
    re.IGNORECASE,
)
# nouns that name one sound event (singular; plurals add "s" or "es"): "three beeps", not "three dogs"
EVENT_NOUNS = (
    "beep", "bleep", "blip", "ping", "ding", "dong", "bong", "chime", "ring", "toll", "peal", "strike", "hit",
    "knock", "tap", "rap", "clap", "hand clap", "snap", "click", "tick", "tock", "bang", "boom", "thump", "thud",
    "crash", "clang", "clank", "pop", "shot", "gunshot", "blast", "honk", "hoot", "toot", "whistle", "buzz",
    "bark", "woof", "meow", "chirp", "tweet", "quack", "moo", "cough", "sneeze", "drip", "drop", "splash",
    "pulse", "tone", "note", "stroke", "beat", "slam", "rattle", "squeak", "pluck", "stab",
)  # fmt: skip
_EVENT = "|".join(sorted({re.escape(w) for w in EVENT_NOUNS}, key=len, reverse=True))
# "three beeps", "two loud hand claps at C5", "an alarm with five beeps", "a bass drum, four hits": a number
# (first, or after "with" or a comma), up to two words (none a plural), a plural sound-event noun, then nothing
# or a place, a pitch, a description (not a verb: "two beeps sound" is read as it is)
_COUNTED_NOUN = re.compile(
    rf"^(?P<head>(?:.*?(?:,\s*|\bwith\s+))?)(?P<n>{_NUMBER}) (?P<pre>(?:[a-z-]*[a-rt-z-] ){{0,2}}?)"
    rf"(?P<noun>{_EVENT})(?:s|es)"
    r"(?P<rest>(?:\s*[,(].*|\s+(?:at|in|on|of|from|with|near|that|which|by)\b.*)?)$",
    re.IGNORECASE | re.DOTALL,
)
# the speaking verbs every reading of speech shares (:func:`spoken`, the counts that are said, and
# ``soundsmith.pipelines.tune``'s spoken prompts), each reading adding its own words
SPEAKING = (
    r"says?|saying|said|speaks?|speaking|spoken|pronounces?|whispers?|recites?|reciting|announces?|announcing|"
    r"shouts?|shouting"
)
# a clause that speaks or reads out its numbers counts nothing ("a child recites the two times table")
_SPEECH = re.compile(
    rf"\b(?:{SPEAKING}|pronouncing|whispering|reads?|reading|counts?|counting|calls?|calling|word)\b|\"",
    re.IGNORECASE,
)
# a clause that asks for speech: a voice saying, reading out, whispering or talking (not singing, not a call, not
# the wind "whispering" through trees)
_SAYS = re.compile(
    rf"\b(?:{SPEAKING}|speech|pronouncing|pronounced|whispering|whispered|recited|reads? (?:out|aloud)|"
    r"reading (?:out|aloud)|announcer|narrates?|narrating|narrator|talks?|talking|words?)\b",
    re.IGNORECASE,
)
_NOT_SPOKEN = re.compile(
    r"\b(?:sings?|singing|sung|singers?|choirs?|vocalists?|wind|winds|breeze|leaves|trees|chimes?)\b", re.IGNORECASE
)
# a clause that asks for noise: a hiss or static, white / pink / brown noise
_NOISE = re.compile(r"\b(?:noise|hiss|hisses|hissing|static)\b", re.IGNORECASE)
_FIRST = re.compile(r"^(?:first(?:ly)?,?|at first,?)\s+", re.IGNORECASE)
_BEHIND = r"(?:behind|in the background|underneath|beneath|below)"
# "while" / "as" joining two sounds, not a comparison or a manner ("as well as", "as loud as", "as if")
_AS_NOT = ("well", "soon", "long", "much", "loud", "quiet", "soft")
_WHILE = (
    r"(?:while|"
    + "".join(rf"(?<!\b{w} )" for w in _AS_NOT)
    + r"as(?! (?:" + "|".join(_AS_NOT + ("if", "though")) + r")\b))"
)
# "Y while X" (the bed first) is read only when Y opens with its ambient noun ("rain pattering down", "the
# wind howls", "a low drone") and X starts like a new source: "a woman hums while a dog barks", "an engine
# revs as it speeds away" and "rain as heard from a tent" stay as they are
LEAD = "lead"
_COMPARISON = re.compile(r"\bas [\w-]+ as\b", re.IGNORECASE)
_HELD = "\x00"  # joins a comparison's words while the layouts are tried
_PLACE = re.compile(r"^(?:somewhere|nearby|close by|far away|overhead|in the distance),?\s+", re.IGNORECASE)
_BED_VERBS = frozenset("hums humming hisses hissing drones droning raining gusting windy noisy".split())
# tried in order; the first whose bed names an ambient sound wins (a foreground before the bed is greedy, so
# the split is at the last connective: "a man with a deep voice speaks, with rain behind"). After "in", "under",
# "beneath", "through" and "on top of", the bed word must end the phrase ("in the rain", not "in an engine room").
_LAYOUTS = (
    (re.compile(r"^(?:a |the )?scene (?:with|of) (?P<bed>[^:;]+?)\s*[:;]\s*(?P<fg>.+)$", re.I | re.S), False),
    (re.compile(r"^(?P<bed>[^:;]+?)\s*[:;]\s*(?P<fg>.+)$", re.I | re.S), False),
    (re.compile(r"^(?:over|against|amid|amidst) (?P<bed>[^,]+),\s*(?P<fg>.+)$", re.I | re.S), False),
    (re.compile(r"^(?:under|beneath|through) (?P<bed>[^,]+),\s*(?P<fg>.+)$", re.I | re.S), True),
    (re.compile(r"^(?:as|while|when) (?P<bed>[^,]+),\s*(?P<fg>.+)$", re.I | re.S), False),
    (re.compile(rf"^with (?P<bed>[^,]+?) {_BEHIND},\s*(?P<fg>.+)$", re.I | re.S), False),
    (re.compile(rf"^(?P<bed>.+?) {_BEHIND},? (?:as|while|when) (?P<fg>.+)$", re.I | re.S), False),
    (re.compile(rf"^(?P<fg>.+),? with (?P<bed>.+?) {_BEHIND}$", re.I | re.S), False),
    (re.compile(r"^(?P<bed>.+),? with (?P<fg>.+?) (?:on top|over it|above it)$", re.I | re.S), False),
    (re.compile(rf"^(?P<fg>.+),? {_WHILE} (?P<bed>.+)$", re.I | re.S), False),
    (re.compile(r"^(?P<fg>.+) (?:over|against|amid|amidst) (?P<bed>.+)$", re.I | re.S), False),
    (re.compile(r"^(?P<fg>.+) on top of (?P<bed>.+)$", re.I | re.S), True),
    (re.compile(rf"^(?P<bed>.+?),? {_WHILE} (?P<fg>.+)$", re.I | re.S), LEAD),
    (re.compile(r"^(?P<fg>.+) in (?P<bed>.+)$", re.I | re.S), True),
)


@dataclass(frozen=True)
class ScenePlan:
    """A layered prompt: the bed's prompt (None: no bed), the foreground slots in time order as asked, each a
    clause or None (a silent slot: "a click, then silence, then a bell"), and how many times each slot's sound
    is heard (empty: once each). A counted slot is generated as its once version (:meth:`part`) and repeated."""

    background: str | None
    foreground: tuple[str | None, ...]
    repeats: tuple[int, ...] = ()

    def times(self, slot: int) -> int:
        """How many times foreground slot ``slot`` is heard."""
        return self.repeats[slot] if self.repeats else 1

    def part(self, slot: int) -> str | None:
        """The prompt generated for foreground slot ``slot``: its clause, asked once if it is counted."""
        clause = self.foreground[slot]
        if clause is None or self.times(slot) == 1:
            return clause
        once = counted(clause)
        assert once is not None and once[1] == self.times(slot), (clause, self.repeats)
        return once[0]

    @property
    def prompts(self) -> list[str]:
        """Every part to generate: the bed first (if any), then the sounding foreground slots in order."""
        parts = [self.part(k) for k in range(len(self.foreground))]
        return ([self.background] if self.background else []) + [p for p in parts if p is not None]

    @property
    def asked(self) -> list[str]:
        """What each of :attr:`prompts` stands for, as the prompt asked it (a counted slot with its count)."""
        return ([self.background] if self.background else []) + [p for p in self.foreground if p is not None]

    @property
    def repeated(self) -> list[bool]:
        """Which of :attr:`prompts` are repeated (a counted slot's once version)."""
        slots = [self.times(k) > 1 for k, clause in enumerate(self.foreground) if clause is not None]
        return ([False] if self.background else []) + slots

    def describe(self) -> str:
        """The plan in one line: ``background: steady rain | 1: a bell rings once (x3) | 2: (silence)``."""
        slots = [
            f"{k + 1}: " + ("(silence)" if clause is None else f"{self.part(k)}")
            + (f" (x{self.times(k)})" if self.times(k) > 1 else "")
            for k, clause in enumerate(self.foreground)
        ]  # fmt: skip
        return " | ".join(([f"background: {self.background}"] if self.background else []) + slots)


def _clean(text: str) -> str:
    return text.strip(" \t\n,;:.")


def _words(text: str) -> list[str]:
    return [w.strip("\"'()").lower() for w in text.split()]


def _is_bed(text: str, head_last: bool | str) -> bool:
    """A short phrase naming an ambient sound (or silence), not a sentence about a foreground source nor a place
    named after one; with ``head_last`` the bed word must end the phrase; with :data:`LEAD` an ambient noun
    must be among its first three words."""
    words = _words(text)
    if not _BED.search(text) or len(words) > 6 or _THEN.search(text):
        return False
    hits = [i for i, w in enumerate(words) if _BED.fullmatch(w)]

    def names_a_place(i: int) -> bool:  # "an engine room", "a quiet room"
        return i + 1 < len(words) and words[i + 1] in _COMPOUND_NOUNS

    if head_last == LEAD:
        return any(i < 3 and words[i] not in _BED_VERBS and not names_a_place(i) for i in hits)
    if head_last:
        return bool(hits) and hits[-1] == len(words) - 1
    return not all(names_a_place(i) for i in hits)


def _is_gap(text: str) -> bool:
    """A short clause of silence ("silence", "a short pause"): a silent slot."""
    return bool(_GAP.search(text)) and len(_words(text)) <= 4


def _starts_source(text: str) -> bool:
    words = _words(text)
    if not words:
        return False
    if _is_gap(text):
        return True
    return words[0] in _SUBJECT_WORDS and (len(words) >= 2 or words[0] not in _NEEDS_NOUN)


def _sequence(text: str) -> list[str | None]:
    """Foreground slots in order: a clause per new source; a short "silence" / "a pause" clause is None."""
    pieces = _THEN.split(_FIRST.sub("", _clean(text)))
    parts = [pieces[0]]
    for sep, piece in zip(pieces[1::2], pieces[2::2], strict=True):
        if _starts_source(piece):
            parts.append(piece)
        else:  # it goes on describing the previous source
            parts[-1] += sep + piece
    slots = [_clean(p) for p in parts]
    return [None if _is_gap(p) else p for p in slots if p]


def _number(text: str) -> int:
    return int(text) if text.isdigit() else _NUMBERS[text.lower()]


def spoken(clause: str) -> bool:
    """Whether ``clause`` asks for speech ("a man says the word seven", "a whisper pronounces 'go'", "people
    talking"): a speaking verb or "word"/"speech", and neither singing nor wind or chimes ("a singer sings the word
    amen", "the wind whispers through the trees" are not speech). Words in quotes alone (``a man: "go"``) and
    animals' speech ("a parrot says hello") are read as they are: the first is not found, the second is speech."""
    return bool(_SAYS.search(clause)) and not _NOT_SPOKEN.search(clause)


def sound_kind(clause: str) -> str | None:
    """The kind of sound ``clause`` asks for (``soundsmith.models.latent_diffusion.KINDS``): ``"speech"`` (:func:`spoken`), ``"noise"``
    ("a steady noise hisses", "white noise", "static crackles"), else ``None``."""
    if spoken(clause):
        return "speech"
    return "noise" if _NOISE.search(clause) else None


def asked_count(clause: str) -> tuple[str, int] | None:
    """``(the clause asking for the sound once, how many times)`` for a clause that counts one sound, however
    many times ("ten beeps" -> ``("one beep", 10)``), else ``None``; :func:`counted` keeps the ones composed."""
    text = _clean(clause)
    if _SPEECH.search(text):
        return None
    times = list(_TIMES.finditer(text))
    if len(times) == 1:
        m = times[0]
        word = m.group(0).lower()
        n = 2 if word == "twice" else 3 if word == "thrice" else _number(m.group("n"))
        return text[: m.start()] + "once" + text[m.end() :], n
    if not times and (m := _COUNTED_NOUN.match(text)):
        return f"{m.group('head')}one {m.group('pre')}{m.group('noun')}{m.group('rest')}", _number(
            m.group("n")
        )
    return None


def counted(clause: str) -> tuple[str, int] | None:
    """``(the clause asking for the sound once, how many times)`` for a clause that counts one sound ("a bell
    rings three times" -> ``("a bell rings once", 3)``; "three beeps at E3" -> ``("one beep at E3", 3)``), else
    ``None`` (no count, once, several counts, a spoken or read number, or more than :data:`MAX_REPEATS`)."""
    count = asked_count(clause)
    return count if count is not None and 2 <= count[1] <= MAX_REPEATS else None


def plan_scene(prompt: str, duration: float | None = None) -> ScenePlan | None:
    """The layout of a layered prompt, or ``None`` when it is one source with no bed, or when a clip of
    ``duration`` seconds would give its sources in order slots shorter than :data:`MIN_SLOT_S` (see the module
    doc)."""
    # a comparison ("as deep as the sea") is held together while the layouts are tried: its "as" joins nothing
    text = _COMPARISON.sub(lambda m: m.group(0).replace(" ", _HELD), " ".join(prompt.split()))
    background: str | None = None
    foreground: list[str | None] = []
    for pattern, head_last in _LAYOUTS:
        m = pattern.match(text)
        if m is None:
            continue
        bed = _clean(m.group("bed"))
        if not _is_bed(bed, head_last):
            continue
        if head_last == LEAD and not _starts_source(_PLACE.sub("", m.group("fg"))):
            continue
        foreground = _sequence(m.group("fg"))
        if foreground:
            background = None if _QUIET.search(bed) else bed
            break
    else:
        foreground = _sequence(text)
    background = None if background is None else background.replace(_HELD, " ")
    foreground = [None if p is None else p.replace(_HELD, " ") for p in foreground]
    sounding = [p for p in foreground if p is not None]
    if not sounding or len(foreground) > MAX_SOURCES:
        return None
    if duration is not None and len(foreground) > 1 and duration / len(foreground) < MIN_SLOT_S:
        return None
    repeats = []
    for part in foreground:
        count = None if part is None else counted(part)
        if count and duration is not None and duration / len(foreground) / count[1] < MIN_REPEAT_S:
            count = None  # too close together to be heard one by one: asked as it is
        repeats.append(count[1] if count else 1)
    if background is None and len(foreground) < 2 and max(repeats) == 1:
        return None
    return ScenePlan(background, tuple(foreground), tuple(repeats) if max(repeats) > 1 else ())


def frame_db(audio: np.ndarray, hop: int) -> np.ndarray:
    """RMS level in dB of each ``hop``-sample frame of ``audio [T]`` (-120 for silence)."""
    frames = len(audio) // hop
    if frames == 0:  # shorter than a frame: the whole of it as one frame
        frames, hop = 1, max(1, len(audio))
        audio = np.pad(audio, (0, hop - len(audio)))
    power = np.square(audio[: frames * hop].astype(np.float64)).reshape(frames, hop).mean(axis=1)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def active_span(audio: np.ndarray, sample_rate: int, below_peak_db: float = 35.0) -> tuple[int, int]:
    """``(start, end)`` samples from the first to the last 20-ms frame within ``below_peak_db`` of the loudest."""
    hop = max(1, sample_rate // 50)
    db = frame_db(audio, hop)  # a clip shorter than a frame is one frame: all of it, or silence
    loud = np.flatnonzero(db >= db.max() - below_peak_db)
    if db.max() <= -100.0 or loud.size == 0:
        return 0, 0
    return int(loud[0] * hop), int(min(len(audio), (loud[-1] + 1) * hop))


def active_level_db(audio: np.ndarray, sample_rate: int, below_peak_db: float = 35.0) -> float:
    """Mean power in dB over the frames within ``below_peak_db`` of the loudest (-120 for silence)."""
    hop = max(1, sample_rate // 50)
    db = frame_db(audio, hop)
    loud = db[db >= db.max() - below_peak_db]
    if db.max() <= -100.0:
        return -120.0
    return float(10.0 * np.log10(np.mean(10.0 ** (loud / 10.0))))


def fade_cuts(segment: np.ndarray, sample_rate: int, start: bool, end: bool) -> np.ndarray:
    """``segment`` (float32, changed in place and returned) with a 10-ms linear fade (at most a quarter of it) at
    its start and/or end: where it was cut out of a longer clip."""
    n = min(len(segment) // 4, int(0.01 * sample_rate))
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
        if start:
            segment[:n] *= ramp
        if end:
            segment[-n:] *= ramp[::-1]
    return segment


def first_event(
    audio: np.ndarray,
    sample_rate: int,
    below_peak_db: float = 35.0,
    rise_db: float = 10.0,
    near_top_db: float = 8.0,
) -> tuple[int, int]:
    """``(start, end)`` samples of the first strong event in ``audio [T]``, on its 30-ms smoothed level (10-ms
    hops, relative to the loudest sample, so a clip far below full scale reads like any other):

    - it starts where the rise to the first frame within ``near_top_db`` of the loudest began (a faint click
      before it is left out), no earlier than the first frame within ``below_peak_db`` (with the smoothing,
      the 10-ms frame before the attack);
    - it ends in the quietest frame before the level, having fallen ``rise_db`` from the event's top, rises
      ``rise_db`` again to within ``near_top_db`` of that top (the next strike: a ring's beating stays further
      down), else at the last frame within ``below_peak_db`` (one event, its ring included).

    ``(0, 0)`` for silence (NaN and infinite samples read as silence)."""
    hop = max(1, sample_rate // 100)
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top_sample = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if top_sample < 1e-7:
        return 0, 0
    power = 10.0 ** (frame_db(audio / top_sample, hop) / 10.0)
    db = 10.0 * np.log10(np.maximum(np.convolve(power, np.ones(3) / 3.0, mode="same"), 1e-12))
    peak = float(db.max())
    loud = np.flatnonzero(db >= peak - below_peak_db)
    floor, last = int(loud[0]), int(loud[-1])
    first = int(np.flatnonzero(db >= peak - near_top_db)[0])
    while first > floor and db[first - 1] < db[first]:  # back to where its rise began
        first -= 1
    top = valley = float(db[first])
    valley_at = first
    for i in range(first + 1, last + 1):
        level = float(db[i])
        if valley <= top - rise_db and level >= valley + rise_db and level >= top - near_top_db:
            return first * hop, valley_at * hop + hop // 2  # cut in the quietest frame between the two
        if valley > top - rise_db and level > top:  # still rising (or a small dip): the same event's top
            top = valley = level
            valley_at = i
        elif level < valley:
            valley, valley_at = level, i
    return first * hop, min(len(audio), (last + 1) * hop)


def has_event(part: np.ndarray, sample_rate: int, spacing: int | None = None) -> bool:
    """Whether a generated once-part holds an event worth repeating: audible (a peak above :data:`MIN_EVENT_DBFS`),
    at least :data:`MIN_EVENT_S` long (a model that renders silence and a click at the edge gives none) and, when
    its copies would come every ``spacing`` samples, decayed by then at least 10 dB below its top (a held sound
    repeated over itself would only grow louder)."""
    x = np.nan_to_num(np.asarray(part, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if x.size == 0 or np.max(np.abs(x)) < 10.0 ** (MIN_EVENT_DBFS / 20.0):
        return False
    start, end = first_event(x, sample_rate)
    if end - start < MIN_EVENT_S * sample_rate:
        return False
    if spacing is None or end - start <= spacing:
        return True
    hop = max(1, sample_rate // 100)
    db = frame_db(x[start:end], hop)
    return bool(db[min(len(db) - 1, spacing // hop) :].max() <= db.max() - 10.0)


def repeat_event(part: np.ndarray, sample_rate: int, times: int, room: int) -> tuple[np.ndarray, int]:
    """``(audio, onset)``: the first event of ``part [T]`` (:func:`first_event`) ``times`` times at a regular interval, float32 of at most ``room`` samples, and where it starts in ``part``.

    The interval is the event's length plus half of it as a gap (0.1-0.3 s), closer if ``times`` copies would not
    fit in ``room``; copies that overlap (a bell's ring under the next strike) add up, as the ring of a struck
    bell does."""
    if times < 1 or room < times:
        raise ValueError(f"times={times} copies need at least 1 and room={room} samples at least one each")
    start, end = first_event(part, sample_rate)  # from a frame before the attack: the fade in takes no attack
    event = fade_cuts(part[start:end].astype(np.float32, copy=True), sample_rate, start=start > 0, end=True)
    if len(event) == 0:
        return np.zeros(0, np.float32), 0
    gap = min(max(len(event) // 2, int(0.1 * sample_rate)), int(0.3 * sample_rate))
    interval = max(1, min(len(event) + gap, room // times))
    out = np.zeros(min(room, (times - 1) * interval + len(event)), np.float32)
    for k in range(times):
        at = k * interval
        copy = event[: len(out) - at]
        if len(copy) < len(event):  # the last copies ring past the room: cut with a fade
            copy = fade_cuts(copy.copy(), sample_rate, start=False, end=True)
        out[at : at + len(copy)] += copy
    return out, start


def mix_scene(
    background: np.ndarray | None,
    foreground: list[np.ndarray],
    sample_rate: int,
    snr_db: float | Sequence[float] = BED_SNR_DB,
    lead_s: float = 0.05,
    repeats: tuple[int, ...] = (),
) -> np.ndarray:
    """The parts of a :class:`ScenePlan`, generated at the clip's length ``T``, mixed into one float32 ``[T]``.

    One foreground part is kept as generated. Several are laid out in ``len(foreground)`` equal consecutive
    slots: part ``k``'s active stretch (:func:`active_span`) starts ``lead_s`` into slot ``k`` and is cut, with a
    10-ms fade, at the slot's end. A part heard ``repeats[k] > 1`` times is its first event repeated
    (:func:`repeat_event`) in its slot, or, alone, from where it was generated (from ``lead_s`` when the repeats
    would not fit after it at their natural interval). The bed (if any) is scaled to sit ``snr_db`` under the
    quietest sounding part's active level (``snr_db``: one value, or one per part: each part at least its own SNR
    over the bed), as the corpus mixes each source at its own SNR over its bed: a quiet part (a whisper after a
    horn) is not masked by a bed set against a louder one (docs/latent_diffusion.md, "Each source over its bed").
    """
    if not foreground:
        raise ValueError("a scene needs at least one foreground part")
    length = len(foreground[0])
    if any(len(p) != length for p in foreground) or (background is not None and len(background) != length):
        raise ValueError("every part of a scene must have the clip's length")
    snrs = [float(snr_db)] * len(foreground) if np.isscalar(snr_db) else [float(v) for v in snr_db]
    if len(snrs) != len(foreground):
        raise ValueError(f"snr_db {snr_db} must give one SNR for each of the {len(foreground)} parts")
    repeats = tuple(repeats) or (1,) * len(foreground)
    if len(repeats) != len(foreground) or min(repeats) < 1:
        raise ValueError(
            f"repeats {repeats} must give a count of at least 1 for each of the {len(foreground)} parts"
        )
    if len(foreground) == 1 and repeats[0] == 1:
        out = foreground[0].astype(np.float32, copy=True)
    elif len(foreground) == 1:
        out = np.zeros(length, np.float32)
        lead = min(int(lead_s * sample_rate), length // 4)
        natural, onset = repeat_event(foreground[0], sample_rate, repeats[0], length)
        if onset + len(natural) > length:  # no room after the generated onset: from the lead
            onset = lead
        segment, _ = repeat_event(foreground[0], sample_rate, repeats[0], length - onset)
        out[onset : onset + len(segment)] += segment
    else:
        out = np.zeros(length, np.float32)
        slot = length // len(foreground)
        lead = min(int(lead_s * sample_rate), slot // 4)
        for k, part in enumerate(foreground):
            room = slot - lead
            if repeats[k] > 1:
                segment, _ = repeat_event(part, sample_rate, repeats[k], room)
            else:
                start, end = active_span(part, sample_rate)
                segment = part[start : min(end, start + room)].astype(np.float32, copy=True)
                segment = fade_cuts(segment, sample_rate, start=start > 0, end=end - start > room)
            at = k * slot + lead
            out[at : at + len(segment)] += segment
    if background is not None:  # at its own level when the foreground is silent
        levels = [active_level_db(part, sample_rate) for part in foreground]
        under = [level - snr for level, snr in zip(levels, snrs) if level > -100.0]  # silent slots set nothing
        bed_db = active_level_db(background, sample_rate)
        gain = 10.0 ** ((min(under) - bed_db) / 20.0) if under and bed_db > -100.0 else 1.0
        out = out + (background * gain).astype(np.float32)
    return out
