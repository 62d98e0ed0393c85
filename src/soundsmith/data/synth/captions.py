"""Captions from event annotations: varied templates, synonyms and word order.

Each annotated event becomes a :class:`Phrase` (noun phrase, verb phrase, -ing form, noun-headed form) with
synonyms drawn from ``rng``; templates wrap phrases into sentences. Templates have ids (``c0``.. for single
events, ``s0``.. for scenes); the ids in ``HELD_OUT_TEMPLATES`` are used only by the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times"}
# class -> (noun synonyms, verb (3rd person) synonyms, -ing synonyms)
EVENT_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "sine_tone": (("a sine tone", "a pure tone", "a steady tone"), ("sounds", "plays"), ("sounding", "playing")),
    "buzzer": (("a buzzer", "an electronic buzzer", "a harsh buzzer"), ("buzzes", "sounds"), ("buzzing",)),
    "rising_sweep": (("a rising sweep", "an upward sweep", "a tone sliding up"), ("rises", "sweeps upward"),
                     ("rising", "sweeping upward")),
    "falling_sweep": (("a falling sweep", "a downward sweep", "a tone gliding down"),
                      ("falls", "sweeps downward"), ("falling", "sweeping downward")),
    "siren": (("a siren", "an emergency siren", "a wailing siren"), ("wails", "blares"), ("wailing", "blaring")),
    "beeps": (("a beeper", "an alarm", "a device"), ("beeps",), ("beeping",)),
    "white_noise": (("white noise", "static", "a hiss of white noise"), ("hisses",), ("hissing",)),
    "pink_noise": (("pink noise", "soft broadband noise"), ("hisses softly", "rushes"), ("hissing softly",)),
    "brown_noise": (("a low rumble", "brown noise", "deep rumbling noise"), ("rumbles",), ("rumbling",)),
    "rain": (("rain", "steady rain", "rainfall"), ("falls", "patters"), ("falling", "pattering")),
    "wind": (("wind", "wind in the trees", "a gusty breeze"), ("blows", "rustles the leaves"), ("blowing", "rustling")),
    "bell": (("a bell", "a chime", "a small bell"), ("rings", "chimes"), ("ringing", "chiming")),
    "kick_drum": (("a kick drum", "a bass drum"), ("thumps", "is struck"), ("thumping", "booming")),
    "snare_drum": (("a snare drum", "a snare"), ("cracks", "is hit"), ("cracking", "snapping")),
    "hi_hat": (("a hi-hat", "a closed hi-hat", "a cymbal"), ("ticks", "is tapped"), ("ticking", "tapping")),
    "drum_beat": (("a drum beat", "a drum kit", "a simple drum pattern"), ("plays", "grooves"), ("playing",)),
    "clock_ticking": (("a clock", "a ticking clock", "a wall clock"), ("ticks", "ticks away"), ("ticking",)),
    "engine_hum": (("an engine", "a motor", "an idling engine"), ("hums", "drones", "idles"),
                   ("humming", "droning")),
    "bird_chirps": (("a bird", "a small bird", "a songbird"), ("chirps", "tweets"), ("chirping", "tweeting")),
    "water_drops": (("water", "a dripping tap", "water droplets"), ("drips", "drops"), ("dripping",)),
    "footsteps": (("footsteps", "someone walking", "steps"), ("go by", "pass"), ("passing", "going by")),
    "heartbeat": (("a heartbeat", "a heart", "a beating heart"), ("beats", "pounds", "thumps"),
                  ("beating", "pounding")),
    # recorded percussion and GM sound effects (issue 16)
    "tom_drum": (("a tom", "a tom-tom", "a tom drum"), ("booms", "is struck"), ("booming", "being struck")),
    "crash_cymbal": (("a crash cymbal", "a cymbal crash"), ("crashes", "is struck"), ("crashing",)),
    "ride_cymbal": (("a ride cymbal", "a ride"), ("rings", "pings"), ("ringing", "pinging")),
    "hand_clap": (("a hand clap", "a clap", "someone clapping"), ("sounds", "snaps"), ("sounding", "snapping")),
    "cowbell": (("a cowbell",), ("clanks", "is struck"), ("clanking", "clanging")),
    "tambourine": (("a tambourine",), ("jingles", "is struck"), ("jingling", "rattling")),
    "bongo": (("a bongo", "a bongo drum"), ("is tapped", "pops"), ("popping", "being tapped")),
    "conga": (("a conga", "a conga drum"), ("is slapped", "thumps"), ("thumping", "being slapped")),
    "woodblock": (("a woodblock", "a wood block"), ("knocks", "clicks"), ("knocking", "clicking")),
    "triangle": (("a triangle",), ("rings", "tings"), ("ringing", "tinging")),
    "maracas": (("maracas", "a shaker"), ("shakes", "rattles"), ("shaking", "rattling")),
    "claves": (("claves", "a clave"), ("clicks", "clacks"), ("clicking", "clacking")),
    "guitar_fret_noise": (("guitar fret noise", "a finger sliding on guitar strings"), ("squeaks", "scrapes"),
                          ("squeaking", "scraping")),
    "breath_noise": (("someone", "a person"), ("breathes out", "takes a breath"), ("breathing", "taking a breath")),
    "seashore": (("the sea", "the surf", "surf on a beach"), ("washes ashore", "rolls in"),
                 ("washing ashore", "rolling in")),
    "bird_tweet": (("birds", "songbirds", "a flock of birds"), ("tweets", "sings"), ("tweeting", "singing")),
    "telephone_ring": (("a telephone", "a phone", "an old telephone"), ("rings",), ("ringing",)),
    "helicopter": (("a helicopter",), ("flies overhead", "whirs"), ("flying overhead", "whirring")),
    "applause": (("a crowd", "an audience", "a clapping crowd"), ("applauds", "claps"),
                 ("applauding", "clapping")),
    "gunshot": (("a gun", "a gunshot", "a rifle"), ("fires", "goes off"), ("firing", "going off")),
}  # fmt: skip
# (class, variant attribute value) -> words replacing EVENT_WORDS[class] (EVENT_WORDS keys stay class names)
VARIANT_WORDS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    ("wind", "howl"): (
        ("wind", "a strong wind", "a gale"),
        ("howls", "moans"),
        ("howling", "moaning"),
    ),
}
PLURAL_NOUNS = {"footsteps", "steps", "water droplets", "maracas", "claves", "birds", "songbirds"}
TEMPO_WORDS = {
    "slow": ("slowly", "at a slow pace", "at a slow tempo"),
    "fast": ("quickly", "at a fast pace", "fast"),
}
INSTRUMENT_NAMES = {"acoustic_guitar": ("acoustic guitar", "nylon-string guitar"), "organ": ("organ", "reed organ"),
                    "saxophone": ("saxophone", "sax"), "bass": ("bass", "bass guitar"),
                    "steel_string_guitar": ("steel-string guitar", "folk guitar"),
                    "electric_guitar": ("electric guitar", "clean electric guitar"),
                    "distorted_guitar": ("distorted guitar", "overdriven electric guitar"),
                    "string_ensemble": ("string ensemble", "string section"), "choir": ("choir", "chorus"),
                    "solo_voice": ("singer", "solo voice"), "brass_section": ("brass section", "brass band"),
                    "steel_drums": ("steel drum", "steelpan"), "electric_piano": ("electric piano", "Rhodes")}  # fmt: skip
PHRASE_WORDS = {
    "single_note": ("a single note", "one note", "a long note"),
    "rising_scale": ("a rising scale", "an ascending scale", "a scale going up"),
    "falling_scale": ("a falling scale", "a descending scale", "a scale going down"),
    "arpeggio": ("an arpeggio", "a broken chord"),
    "chord": ("a chord", "a sustained chord"),
    "repeated_note": ("a repeated note", "the same note over and over"),
    "short_melody": ("a short melody", "a little tune", "a brief melody"),
}
VOICE_WORDS = {
    "us_male": ("a man", "a male voice"), "us_female": ("a woman", "a female voice"),
    "british_male": ("a British man", "a man with a British accent"),
    "scottish_female": ("a Scottish woman", "a woman with a Scottish accent"),
    "caribbean_male": ("a man with a Caribbean accent", "a Caribbean man"),
    "deep_slow": ("a deep, slow voice", "a man with a deep voice"),
    "high_fast": ("a high, fast voice", "a woman speaking quickly"), "whisper": ("a whisper", "a whispering voice"),
    "natural_male": ("a man", "a male voice"), "natural_male_slow": ("a man speaking slowly", "a slow male voice"),
    "natural_male_fast": ("a man speaking quickly", "a fast male voice"),
    "natural_male_high": ("a man with a high voice", "a high male voice"),
}  # fmt: skip
BACKGROUNDS = {  # background -> (noun phrases, clauses)
    "rain": (("rain", "the sound of rain", "falling rain"), ("rain falls", "it is raining")),
    "wind": (("wind", "the wind", "gusting wind"), ("the wind blows", "wind howls")),
    "noise": (("noise", "a steady hiss", "background noise"), ("a steady noise hisses", "noise hisses")),
    "engine_hum": (
        ("an engine hum", "a humming motor", "an idling engine"),
        ("an engine hums", "a motor drones"),
    ),
    "seashore": (("the sea", "waves on a beach", "the surf"), ("waves wash ashore", "the sea rolls in")),
    "quiet": (("silence", "a quiet room", "near silence"), ("all is quiet", "the room is quiet")),
}

EVENT_TEMPLATES = {
    "c0": "{np} {vp}",
    "c1": "the sound of {np} {ing}",
    "c2": "{alt}",
    "c3": "you can hear {np} {ing}",
    "c4": "a recording of {np} {ing}",
    "c5": "there is {np} that {vp}",
    "c6": "listen: {np} {vp}",
    "c7": "in this clip {np} {vp}",
}
SCENE_TEMPLATES = {
    "s0": "{seq}, while {bg_clause}",
    "s1": "{bg_clause}; {seq}",
    "s2": "over {bg_np}, {seq}",
    "s3": "{seq_first}, with {bg_np} in the background",
    "s4": "{bg_np} in the background as {seq}",
    "s5": "{seq} with {bg_np} behind",
    "s6": "a scene with {bg_np}: {seq}",
    "s7": "as {bg_clause}, {seq}",
}
HELD_OUT_TEMPLATES = frozenset({"c5", "c6", "c7", "s5", "s6", "s7"})


@dataclass
class Phrase:
    """Word forms of one event: ``np`` noun phrase, ``vp`` verb phrase, ``ing`` -ing form, ``alt`` noun-headed."""

    np: str
    vp: str
    ing: str
    alt: str


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return str(options[int(rng.integers(0, len(options)))])


def _sound_phrase(ann: dict[str, Any], rng: np.random.Generator) -> Phrase:
    nouns, verbs, ings = VARIANT_WORDS.get(
        (ann["class"], ann.get("wind_type", "")), EVENT_WORDS[ann["class"]]
    )
    noun, verb, ing = _pick(rng, nouns), _pick(rng, verbs), _pick(rng, ings)
    if noun in PLURAL_NOUNS and verb.endswith("s") and not verb.endswith("ss"):
        verb = verb[:-1]
    detail = ""
    if "note" in ann:
        detail = _pick(
            rng, [f" at {ann['note']}", f" at pitch {ann['note']}", f" ({ann['register']} register)"]
        )
    pace = " " + _pick(rng, TEMPO_WORDS[ann["tempo"]]) if "tempo" in ann else ""
    times = ""
    if ann["class"] == "beeps":
        count = ann["count"]
        times = " " + TIMES[count]
        alt = f"{COUNT_WORDS[count]} beep{'s' if count > 1 else ''}{detail}"
        return Phrase(noun, f"beeps{times}{detail}", f"beeping{times}{detail}", alt)
    if "count" in ann:
        times = " " + TIMES[ann["count"]]
    return Phrase(
        noun + detail, verb + times + pace, ing + times + pace, f"{noun}{detail} {ing}{times}{pace}"
    )


def _instrument_phrase(ann: dict[str, Any], rng: np.random.Generator, with_dynamics: bool = True) -> Phrase:
    name = _pick(rng, INSTRUMENT_NAMES.get(ann["instrument"], (ann["instrument"].replace("_", " "),)))
    what = _pick(rng, PHRASE_WORDS[ann["phrase"]])
    root = ann["note"]
    if ann["phrase"] in ("rising_scale", "falling_scale", "arpeggio", "chord") and rng.random() < 0.7:
        key = f"{root[:-1]} {ann['mode']}"
        article = "an" if key[0] in "AEF" else "a"
        what = what.split(" ", 1)[1] if what.startswith(("a ", "an ")) else what
        what = f"{article} {key} {what}"
    elif ann["phrase"] in ("single_note", "repeated_note", "short_melody") or rng.random() < 0.5:
        what += _pick(rng, [f" on {root}", f" starting at {root}", f" in the {ann['register']} register"])
    if "tempo" in ann and rng.random() < 0.8:
        adj = ann["tempo"]
        what = f"{what} {_pick(rng, TEMPO_WORDS[adj])}"
    if with_dynamics:
        what = f"{what}{' and' if 'tempo' in ann and what.endswith(('ly', 'fast', 'pace', 'tempo')) else ''}"
        what = f"{what} {_pick(rng, {'soft': ('softly', 'quietly', 'gently'), 'loud': ('loudly', 'forcefully', 'strongly')}[ann['dynamics']])}"  # noqa: E501
    the = _pick(rng, ["a", "the"])
    np_ = f"{'an' if the == 'a' and name[0] in 'aeiou' else the} {name}"
    return Phrase(np_, f"plays {what}", f"playing {what}", f"{what} on the {name}")


def _speech_phrase(ann: dict[str, Any], rng: np.random.Generator) -> Phrase:
    who = _pick(rng, VOICE_WORDS[ann["voice_name"]])
    word = _pick(rng, [f'"{ann["word"]}"', f"the word {ann['word']}", f'the word "{ann["word"]}"'])
    verb = _pick(rng, ["says", "speaks", "pronounces"])
    ing = {"says": "saying", "speaks": "speaking", "pronounces": "pronouncing"}[verb]
    return Phrase(who, f"{verb} {word}", f"{ing} {word}", f"{word} spoken by {who}")


def event_phrase(ann: dict[str, Any], rng: np.random.Generator, with_dynamics: bool = True) -> Phrase:
    """The word forms of one annotated event (sound event, instrument phrase or spoken word)."""
    if "instrument" in ann:
        return _instrument_phrase(ann, rng, with_dynamics)
    if "word" in ann:
        return _speech_phrase(ann, rng)
    return _sound_phrase(ann, rng)


def _choose_templates(ids: list[str], n: int, held_out: bool, rng: np.random.Generator) -> list[str]:
    pool = [t for t in ids if (t in HELD_OUT_TEMPLATES) == held_out]
    order = rng.permutation(len(pool))
    return [pool[int(i)] for i in order[: min(n, len(pool))]]


def caption_clip(
    family: str, events: list[dict[str, Any]], rng: np.random.Generator, held_out: bool, n: int = 3
) -> tuple[list[str], list[str]]:
    """``n`` captions of a clip and their template ids.

    ``events`` are the clip's annotations (for scenes: background first with ``role="background"``, then
    the foreground events in order). ``held_out`` selects the test-only templates instead of the others.
    """
    captions, ids = [], []
    if family != "scenes":
        for tid in _choose_templates(list(EVENT_TEMPLATES), n, held_out, rng):
            p = event_phrase(events[0], rng)
            captions.append(EVENT_TEMPLATES[tid].format(np=p.np, vp=p.vp, ing=p.ing, alt=p.alt))
            ids.append(tid)
        return captions, ids
    bg = next(e for e in events if e.get("role") == "background")
    fgs = [e for e in events if e.get("role") != "background"]
    for tid in _choose_templates(list(SCENE_TEMPLATES), n, held_out, rng):
        phrases = [event_phrase(e, rng, with_dynamics=False) for e in fgs]
        clauses = [f"{p.np} {p.vp}" for p in phrases]
        seq = clauses[0] if len(clauses) == 1 else ", then ".join(clauses)
        seq_first = seq if len(clauses) == 1 else "first " + ", then ".join(clauses)
        nps, vps = BACKGROUNDS[bg["background"]]
        captions.append(
            SCENE_TEMPLATES[tid].format(
                seq=seq, seq_first=seq_first, bg_np=_pick(rng, nps), bg_clause=_pick(rng, vps)
            )
        )
        ids.append(tid)
    return captions, ids
