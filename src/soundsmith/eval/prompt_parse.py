"""Free-text prompts -> the attribute asks of :mod:`soundsmith.eval.adherence`, without a manifest.

``parse_prompt("a violin plays middle C quietly")`` -> ``{"class": ["violin"], "pitch": 60.0, "register":
"middle", ..., "loudness": "soft", "noise_tone": "tone"}``. What is read:

- classes: event and instrument names and their synonyms (the corpus caption vocabulary plus common words:
  "fiddle", "sax", "kick", "beeping", "chime"...), longest phrase first, each span used once;
- spoken word: a vocabulary word in quotes, or after say/says/saying/speaks/pronounces/"the word"; digits
  ("7") become words;
- count: "N times", once/twice/thrice, "N beeps/hits/knocks/..." (number words or digits);
- note: "A4", "C#5", "Bb3", "middle C" (60), "concert A" (69): a pitch ask for a held note, a register
  ask (the note's register) for phrases (scales, melodies, chords) whose root it names;
- register: high/higher/high-pitched/upper/treble, low/low-pitched/deep/bass register, middle/mid;
- loudness: soft/quiet/gentle/faint/hush/pianissimo vs loud/forceful/strong/powerful/full volume/fortissimo;
- direction: rising/ascending/going up/upward/climbing vs falling/descending/going down/downward/dropping;
- brightness: bright/brilliant/crisp/tinny vs dark/muffled/dull/mellow;
- noise vs tone: from the classes (noises vs tones and instruments).
"""

from __future__ import annotations

import re
from typing import Any

from soundsmith.eval.attribute_vocab import (
    BRIGHT_CLASSES,
    DARK_CLASSES,
    EVENT_REGISTERS,
    NOISE_CLASSES,
    PITCHED_EVENTS,
    TONE_CLASSES,
    register_range,
)

NUMBER_WORDS = {
    "zero": 0, "one": 1, "a single": 1, "single": 1, "two": 2, "a couple of": 2, "a pair of": 2, "three": 3,
    "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
TIMES_WORDS = {"once": 1, "twice": 2, "thrice": 3}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COUNT_NOUNS = (
    "times", "beeps", "beep", "hits", "hit", "strikes", "knocks", "taps", "rings", "chimes", "chirps", "tweets",
    "drops", "drips", "beats", "bangs", "thumps", "claps", "notes", "pulses", "bleeps", "pings",
)  # fmt: skip
GENERIC_NOUNS = {"a device", "someone", "a person", "steps", "water", "a heart", "a gun", "the sea", "a ride"}
EXTRA_SYNONYMS: dict[str, tuple[str, ...]] = {
    "sine_tone": ("sine wave", "sinewave", "pure tone", "test tone", "steady tone", "tone", "whistle"),
    "buzzer": ("buzzer", "buzz", "buzzing", "square wave", "sawtooth"),
    "rising_sweep": (
        "upward sweep",
        "rising sweep",
        "rising tone",
        "ascending tone",
        "upward glide",
        "sweep up",
    ),
    "falling_sweep": ("downward sweep", "falling sweep", "falling tone", "descending tone", "sweep down"),
    "siren": ("siren", "police siren", "ambulance"),
    "beeps": ("beep", "beeps", "beeping", "bleep", "bleeps", "alarm", "alarm clock", "beeper"),
    "white_noise": ("white noise", "static", "hiss"),
    "pink_noise": ("pink noise",),
    "brown_noise": ("brown noise", "rumble", "rumbling"),
    "rain": ("rain", "rainfall", "raining", "drizzle", "downpour"),
    "wind": ("wind", "windy", "breeze", "gust", "gusts"),
    "bell": ("bell", "bells", "chime", "chimes", "chiming", "ding"),
    "kick_drum": ("kick drum", "bass drum", "kick"),
    "snare_drum": ("snare drum", "snare"),
    "hi_hat": ("hi-hat", "hihat", "hi hat", "high hat"),
    "drum_beat": ("drum beat", "drum pattern", "drum loop", "drumbeat", "drum kit"),
    "clock_ticking": ("clock", "ticking clock", "tick tock", "tick-tock"),
    "engine_hum": ("engine", "motor", "hum of an engine", "idling engine", "engine hum"),
    "bird_chirps": ("bird", "birdsong", "songbird", "chirping"),
    "water_drops": ("dripping", "water drops", "droplets", "drip", "dripping tap", "leaky faucet"),
    "footsteps": ("footsteps", "footstep", "walking", "someone walking"),
    "heartbeat": ("heartbeat", "heart beat", "heart beating", "pulse"),
    "piano": ("piano", "grand piano", "keys"),
    "organ": ("organ", "church organ", "pipe organ"),
    "acoustic_guitar": ("acoustic guitar", "guitar", "nylon-string guitar", "classical guitar"),
    "violin": ("violin", "fiddle"),
    "cello": ("cello", "violoncello"),
    "trumpet": ("trumpet", "horn"),
    "flute": ("flute",),
    "clarinet": ("clarinet",),
    "saxophone": ("saxophone", "sax"),
    "marimba": ("marimba", "xylophone"),
    "harp": ("harp",),
    "bass": ("bass guitar", "electric bass", "bass", "double bass"),
}
LOUD_WORDS = {
    "soft": (
        "soft",
        "softly",
        "quiet",
        "quietly",
        "gentle",
        "gently",
        "faint",
        "faintly",
        "pianissimo",
        "hushed",
        "hush",
        "barely audible",
        "delicate",
        "delicately",
        "subdued",
        "at low volume",
    ),
    "loud": (
        "loud",
        "loudly",
        "forceful",
        "forcefully",
        "strong",
        "strongly",
        "powerful",
        "fortissimo",
        "blaring",
        "booming",
        "thunderous",
        "deafening",
        "full volume",
        "full blast",
    ),
}
DIRECTION_WORDS = {
    "rising": ("rising", "rises", "ascending", "ascends", "going up", "goes up", "upward", "upwards", "climbing",
               "sliding up", "gliding up"),
    "falling": ("falling", "falls", "descending", "descends", "going down", "goes down", "downward", "downwards",
                "dropping", "sliding down", "gliding down"),
}  # fmt: skip
REGISTER_WORDS = {
    "high": ("high", "higher", "high-pitched", "high pitched", "upper register", "treble", "upper"),
    "low": ("low", "lower", "low-pitched", "low pitched", "deep", "bass register"),
    "middle": ("middle register", "mid register", "mid-range", "midrange", "medium pitch", "middle"),
}
BRIGHT_WORDS = {
    "bright": ("bright", "brilliant", "crisp", "tinny", "piercing"),
    "dark": ("dark", "muffled", "dull", "mellow"),
}
PHRASE_HINTS = ("scale", "arpeggio", "melody", "tune", "chord", "broken chord")
SPEECH_HINTS = ("say", "says", "saying", "said", "speak", "speaks", "speaking", "spoken", "pronounce",
                "pronounces", "pronouncing", "word", "voice", "man", "woman", "whisper", "whispers", "whispering")  # fmt: skip
NOTE_RE = re.compile(r"(?<![\w#])([A-Ga-g])\s?(#|♯|b|♭|-sharp| sharp|-flat| flat)?\s?(-?[0-8])(?![\w])")
PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def _vocabulary() -> dict[str, str]:
    """phrase -> class, from the corpus captions (when available) and :data:`EXTRA_SYNONYMS`."""
    table: dict[str, str] = {}
    try:
        from soundsmith.data.synth.captions import EVENT_WORDS, INSTRUMENT_NAMES
        from soundsmith.data.synth.instruments import INSTRUMENTS

        for cls, (nouns, _, _) in EVENT_WORDS.items():
            for noun in nouns:
                if noun not in GENERIC_NOUNS:
                    table[re.sub(r"^(a|an|the)\s+", "", noun)] = cls
        for name in INSTRUMENTS:
            table[name.replace("_", " ")] = name
            for syn in INSTRUMENT_NAMES.get(name, ()):
                table[syn.lower()] = name
    except ImportError:  # the corpus is optional for parsing
        pass
    for cls, syns in EXTRA_SYNONYMS.items():
        for s in syns:
            table.setdefault(s, cls)
    return table


_VOCAB: dict[str, str] | None = None


def _find(text: str, phrases: tuple[str, ...] | list[str]) -> list[tuple[int, int, str]]:
    out = []
    for p in phrases:
        for m in re.finditer(rf"(?<![\w-]){re.escape(p)}(?![\w-])", text):
            out.append((m.start(), m.end(), p))
    return out


def _take(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _note_midi(letter: str, accidental: str | None, octave: str) -> int:
    acc = (accidental or "").strip().lstrip("-")
    shift = 1 if acc in ("#", "♯", "sharp") else -1 if acc in ("b", "♭", "flat") else 0
    return 12 * (int(octave) + 1) + PITCH_CLASS[letter.lower()] + shift


def asked_loudness(text: str) -> str | None:
    """``"soft"`` or ``"loud"`` when ``text`` uses words of one of the two (:data:`LOUD_WORDS`: "gently", "at a
    hush"; "forcefully", "at full volume"), else ``None`` (neither, or both)."""
    text = " ".join(text.lower().split())
    found = [k for k, ws in LOUD_WORDS.items() if _find(text, ws)]
    return found[0] if len(found) == 1 else None


def parse_prompt(prompt: str, words: list[str] | None = None) -> dict[str, Any]:
    """The attribute asks of a free-text prompt (keys as in ``adherence.ATTRIBUTES``); ``{}`` when none."""
    global _VOCAB
    if _VOCAB is None:
        _VOCAB = _vocabulary()
    from soundsmith.models.keyword import CORPUS_WORDS

    vocabulary = list(words or CORPUS_WORDS)
    raw = " ".join(prompt.replace("\u201c", '"').replace("\u201d", '"').split())
    text = raw.lower()
    asks: dict[str, Any] = {}

    # 1. the spoken word (taken out first, so "says three" is not a count)
    speech = any(_find(text, SPEECH_HINTS)) or '"' in text
    if speech:
        for pattern in (
            r'"([^"]+)"',
            r"'([a-z0-9]+)'",
            r"\b(?:says|say|saying|said|speaks|speak|speaking|pronounces|pronouncing|whispers|whispering|word)\s+"
            r"(?:the\s+word\s+|the\s+number\s+)?([a-z0-9]+)",
        ):
            m = re.search(pattern, text)
            if m:
                token = m.group(1).strip(" .,!?").lower()
                token = DIGIT_WORDS[int(token)] if token.isdigit() and int(token) < 10 else token
                if token in vocabulary:
                    asks["word"] = token
                    text = _take(text, *m.span())
                    break

    # 2. notes (on the original case, so the article "a" is not a note unless a digit follows)
    note = None
    m = re.search(r"\bmiddle c\b", text)
    if m:
        note, text = 60, _take(text, *m.span())
    m = re.search(r"\bconcert a\b|\ba440\b", text)
    if note is None and m:
        note, text = 69, _take(text, *m.span())
    if note is None:
        for m in NOTE_RE.finditer(raw):
            if text[m.start() : m.end()].strip():
                note = _note_midi(m.group(1), m.group(2), m.group(3))
                text = _take(text, m.start(), m.end())
                break

    # 3. classes, longest phrase first, each span once
    classes: list[str] = []
    for phrase in sorted(_VOCAB, key=len, reverse=True):
        for start, end, _ in _find(text, [phrase]):
            if text[start:end].strip():
                cls = _VOCAB[phrase]
                if cls not in classes:
                    classes.append(cls)
                text = _take(text, start, end)
    direction = next((d for d, ws in DIRECTION_WORDS.items() if _find(text, ws)), None)
    instrument = next(
        (c for c in classes if c not in TONE_CLASSES + NOISE_CLASSES and _is_instrument(c)), None
    )
    if direction and "sine_tone" in classes and not instrument:  # "a rising tone" is a sweep
        classes[classes.index("sine_tone")] = f"{direction}_sweep"
    for c in classes:
        if c.endswith("_sweep"):
            direction = "rising" if c.startswith("rising") else "falling"
    if "rain" in classes and direction == "falling" and not instrument:
        direction = None  # "falling rain"
    if classes:
        asks["class"] = sorted(classes)

    # 4. count
    count = None
    for w, n in TIMES_WORDS.items():
        if _find(text, [w]):
            count = n
    nouns = "|".join(COUNT_NOUNS)
    numbers = "|".join(sorted(map(re.escape, NUMBER_WORDS), key=len, reverse=True))
    m = re.search(rf"\b({numbers}|\d+)\s+(?:\w+\s+)?(?:{nouns})\b", text)
    if count is None and m:
        token = m.group(1)
        count = int(token) if token.isdigit() else NUMBER_WORDS[token]
    if count is not None:
        asks["count"] = count

    # 5. pitch and register
    pitched = instrument is not None or any(c in PITCHED_EVENTS for c in classes)
    phrase = bool(_find(text, PHRASE_HINTS))
    if note is not None:
        if not phrase:
            asks["pitch"] = float(note)
        if instrument is None:
            reg = next((r for r, (lo, hi) in EVENT_REGISTERS.items() if lo <= note <= hi), None)
        else:
            reg = next((r for r in EVENT_REGISTERS if _in_range(note, register_range(r, instrument))), None)
        if reg:
            asks["register"] = reg
    elif pitched:
        reg = next((r for r, ws in REGISTER_WORDS.items() if _find(text, ws)), None)
        if reg:
            asks["register"] = reg
    if "register" in asks:
        asks["register_range"] = list(register_range(asks["register"], instrument))

    # 6. direction, loudness, brightness, noise vs tone
    if direction and (instrument or any(c.endswith("_sweep") for c in classes)):
        asks["direction"] = direction
    loud = asked_loudness(text)
    if loud:
        asks["loudness"] = loud
    bright = [k for k, ws in BRIGHT_WORDS.items() if _find(text, ws)]
    if len(bright) == 1:
        asks["brightness"] = bright[0]
    elif any(c in BRIGHT_CLASSES for c in classes) and len(classes) == 1:
        asks["brightness"] = "bright"
    elif any(c in DARK_CLASSES for c in classes) and len(classes) == 1:
        asks["brightness"] = "dark"
    if len(classes) == 1 and not asks.get("word"):
        if instrument or classes[0] in TONE_CLASSES:
            asks["noise_tone"] = "tone"
        elif classes[0] in NOISE_CLASSES:
            asks["noise_tone"] = "noise"
    return asks


def _in_range(midi: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= midi <= bounds[1]


def _is_instrument(name: str) -> bool:
    from soundsmith.eval.attribute_vocab import _is_instrument as known

    try:
        return known(name)
    except ImportError:
        return name in {c for c, _ in EXTRA_SYNONYMS.items()} - set(TONE_CLASSES) - set(NOISE_CLASSES)
