"""Per-attribute adherence: every attribute a prompt asks for, checked by its own measurement.

An *ask* is what a prompt requests, as a dict (:data:`ATTRIBUTES` are its keys, plus ``register_range``):

| attribute | ask | measurement | met when |
|---|---|---|---|
| ``class`` | tagger labels (events, instruments, backgrounds) | tagger posteriors, ranked without the spoken-word classes; for several asked labels, each class's best over the whole clip and its windows | every asked label is among the top ``len(asked) + CLASS_TOPK_SLACK`` |
| ``word`` | one of the recognizer's words | spoken-word recognizer | its top class is the word |
| ``pitch`` | ``midi_pitch`` of a held note | pYIN median f0 over voiced frames | within 50 cents |
| ``register`` | low / middle / high (+ the MIDI range it means for that instrument or event) | pYIN 10th-percentile f0 (the phrase's root) | inside the range, +-1 semitone |
| ``count`` | number of events | rises of the 10 ms RMS envelope by >= 4 dB after a >= 4 dB fall, above a floor | equal |
| ``direction`` | rising / falling | pYIN track: last third of voiced frames against the first third | same sign, >= 1 semitone |
| ``loudness`` | soft / loud | RMS level, over pairs of clips asked soft and loud | the loud clip is louder |
| ``noise_tone`` | noise / tone | share of sounding frames that pYIN finds voiced | >= 0.5 for tone, < 0.5 for noise |
| ``brightness`` | bright / dark | median spectral centroid of sounding frames | above / below ``BRIGHT_HZ`` |

Asks come from corpus annotations (:func:`asks_from_events`, the ``meta.events`` of manifest rows; for a prompted
clip only the pitch, register, count and direction its prompt asks, :func:`asks_in_prompt`), from a
prompts file's ``labels`` + ``attributes`` (:func:`asks_from_attributes`), or from free text
(``soundsmith.eval.prompt_parse.parse_prompt``). Scenes ask for their classes and spoken word only: measuring
the pitch or count of one item inside a mix is not reliable with these tools.

:class:`AttributeAdherence` accumulates checks (``update`` / ``merge`` / ``compute``) into the table
attribute -> (accuracy, n, chance) and the overall adherence (mean over clips of the share of asks met).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from soundsmith.eval.attribute_vocab import (  # noqa: F401  (re-exported: the attribute vocabulary)
    BRIGHT_CLASSES,
    DARK_CLASSES,
    DIRECTIONS,
    EVENT_REGISTERS,
    NOISE_CLASSES,
    NOTE_PHRASES,
    PITCHED_EVENTS,
    TONE_CLASSES,
    _is_instrument,
    register_range,
)
from soundsmith.eval.attributes import count_events
from soundsmith.eval.metrics import rms_dbfs
from soundsmith.eval.pitch import PitchTrack, cents_error, lowest_partial_midi, track_pitch
from soundsmith.eval.prompt_parse import parse_prompt

ATTRIBUTES = (
    "class",
    "word",
    "pitch",
    "register",
    "count",
    "direction",
    "loudness",
    "noise_tone",
    "brightness",
)
CLASS_TOPK_SLACK = (
    2  # an asked class may be beaten by this many other classes (tagger errors are near misses)
)
# a clip asked for several sources (a scene: they take turns, "X, then Y over rain") is also tagged in windows
# of this length and hop, each class at its best over the whole clip and the windows: a source that sounds for a
# third of the clip is diluted in the whole clip's posteriors (docs/evaluation.md, "Scenes tagged in windows")
WINDOW_SECONDS = 1.5
WINDOW_HOP_SECONDS = 0.5
PITCH_TOLERANCE_CENTS = 50.0
REGISTER_TOLERANCE = 1.0  # semitones outside the register's range still counted in it
# a root more than an octave below the spectrum's lowest partial is a subharmonic (a chord's common one): the
# lowest partial is the root instead (chosen on corpus_ld's valid split, docs/evaluation.md "Register of chords")
SUBHARMONIC_SEMITONES = 13.0
BRIGHT_HZ = 2000.0
TONE_VOICED_FRACTION = 0.5
# chance of meeting an ask by luck, for the table: pitch = one semitone of the three corpus octaves, count =
# one of the five usual counts (1-5), the rest one of their values; class and word are set from the models
CHANCE = {
    "pitch": 1 / 36,
    "register": 1 / 3,
    "count": 1 / 5,
    "direction": 1 / 2,
    "loudness": 1 / 2,
    "noise_tone": 1 / 2,
    "brightness": 1 / 2,
}


def _speech_word(label: str) -> str | None:
    return label[len("speech_") :] if label.startswith("speech_") else None


def asks_from_events(events: list[dict[str, Any]], family: str | None = None) -> dict[str, Any]:
    """The asks of a corpus clip from its ``meta.events`` (see the module table)."""
    asks: dict[str, Any] = {}
    classes = sorted(
        {e["class"] for e in events if not is_word_class(e["class"]) and e["class"] != "quiet"}
    )
    if classes:
        asks["class"] = classes
    words = [e["word"] for e in events if e.get("word")]
    if len(words) == 1:
        asks["word"] = words[0]
    if family == "scenes" or len(events) != 1 or words:
        return asks
    (e,) = events
    name, instrument = e["class"], e.get("instrument")
    held = (instrument and e.get("phrase") in NOTE_PHRASES) or (not instrument and name in PITCHED_EVENTS)
    if held and e.get("midi_pitch") is not None:
        asks["pitch"] = float(e["midi_pitch"])
    if e.get("register") and (instrument or name in PITCHED_EVENTS):
        asks["register"] = e["register"]
        asks["register_range"] = list(register_range(e["register"], instrument))
    if e.get("count") is not None:
        asks["count"] = int(e["count"])
    direction = DIRECTIONS.get(e.get("phrase") or name)
    if direction:
        asks["direction"] = direction
    if e.get("dynamics") in ("soft", "loud"):
        asks["loudness"] = e["dynamics"]
    if instrument or name in TONE_CLASSES:
        asks["noise_tone"] = "tone"
    elif name in NOISE_CLASSES:
        asks["noise_tone"] = "noise"
    if name in BRIGHT_CLASSES:
        asks["brightness"] = "bright"
    elif name in DARK_CLASSES:
        asks["brightness"] = "dark"
    return asks


def asks_from_attributes(labels: list[str], attributes: dict[str, Any]) -> dict[str, Any]:
    """The asks of a prompts-file row: ``labels`` (classes, ``speech_<word>``) and ``attributes`` (``midi_pitch``
    or ``pitch``, ``register``, ``count``, ``direction``, ``loudness``, ``noise_tone``, ``brightness``, ``word``)."""
    asks: dict[str, Any] = {}
    classes = sorted(lb for lb in labels if not is_word_class(lb))
    if classes:
        asks["class"] = classes
    words = [w for w in map(_speech_word, labels) if w]
    word = attributes.get("word") or (words[0] if len(words) == 1 else None)
    if word:
        asks["word"] = str(word)
    pitch = attributes.get("midi_pitch", attributes.get("pitch"))
    if pitch is not None:
        asks["pitch"] = float(pitch)
    if attributes.get("register") in EVENT_REGISTERS:
        instrument = next((c for c in classes if _is_instrument(c)), None)
        asks["register"] = attributes["register"]
        asks["register_range"] = list(
            attributes.get("register_range") or register_range(asks["register"], instrument)
        )
    if attributes.get("count") is not None:
        asks["count"] = int(attributes["count"])
    for key, values in (
        ("direction", ("rising", "falling")),
        ("loudness", ("soft", "loud")),
        ("noise_tone", ("noise", "tone")),
        ("brightness", ("bright", "dark")),
    ):
        value = attributes.get(key)
        if key == "loudness" and value == "quiet":
            value = "soft"
        if value in values:
            asks[key] = value
    return asks


@dataclass
class Measurements:
    """What the checks read from one clip."""

    class_rank: dict[str, int] = field(
        default_factory=dict
    )  # label -> rank in the tagger posteriors (0 = top)
    window_rank: dict[str, int] = field(default_factory=dict)  # the same, each class at its best over the windows
    word: str | None = None  # the recognizer's top class (None: no recognizer)
    track: PitchTrack | None = None
    onsets: int = 0
    level_db: float = -200.0
    centroid_hz: float = math.nan
    lowest_partial_midi: float = math.nan  # the average spectrum's lowest prominent peak


def spectral_centroid_hz(audio: np.ndarray, sr: int) -> float:
    """Median spectral centroid over the frames within 35 dB of the loudest (NaN for silence)."""
    import librosa

    x = np.asarray(audio, dtype=np.float32)
    cent = librosa.feature.spectral_centroid(y=x, sr=sr, n_fft=1024, hop_length=512)[0]
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=512)[0]
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    active = db > max(db.max() - 35.0, -70.0)
    return float(np.median(cent[active])) if active.any() else math.nan


def is_word_class(label: str) -> bool:
    """A tagger class that is a spoken word (``speech_<word>``): words are the recognizer's attribute, so they are
    never asked as a ``class`` and take no place in the class ranking (two words said over rain must not push
    ``rain`` out of its top places)."""
    return label.startswith("speech_")


def n_class_ranks(class_labels: list[str]) -> int:
    """The number of tagger classes a ``class`` ask is ranked among (every class but the spoken words)."""
    return sum(not is_word_class(label) for label in class_labels)


def measure(
    audio: np.ndarray,
    sr: int,
    class_probs: np.ndarray | None = None,
    class_labels: list[str] | None = None,
    word: str | None = None,
    pitch_method: str = "pyin",
    window_probs: np.ndarray | None = None,
) -> Measurements:
    """All measurements of a clip ``[T]``: ``class_probs [C]`` (tagger), ``window_probs [C]`` (the tagger's best
    over the clip and its windows, :data:`WINDOW_SECONDS`) and ``word`` (recognizer) are given."""
    m = Measurements(word=word)
    if class_labels is not None:
        m.class_rank = _ranks(class_probs, class_labels)
        m.window_rank = _ranks(window_probs, class_labels)
    m.track = track_pitch(audio, sr, pitch_method)
    m.onsets = count_events(audio, sr)
    m.level_db = rms_dbfs(audio)
    m.centroid_hz = spectral_centroid_hz(audio, sr)
    m.lowest_partial_midi = lowest_partial_midi(audio, sr)
    return m


def _ranks(probs: np.ndarray | None, class_labels: list[str]) -> dict[str, int]:
    """label -> rank (0 = top) of ``probs [C]`` among the classes that are not spoken words ({} for None)."""
    if probs is None:
        return {}
    order = np.argsort(-np.asarray(probs), kind="stable")
    ranked = [class_labels[j] for j in order if not is_word_class(class_labels[j])]
    return {label: r for r, label in enumerate(ranked)}


def phrase_root_midi(m: Measurements, falling: bool = False) -> float:
    """The root of a phrase in MIDI: its lowest sustained note (pYIN's 10th percentile), or its first and highest
    for a ``falling`` one (the 90th); a root more than :data:`SUBHARMONIC_SEMITONES` below the spectrum's lowest
    partial is a subharmonic, and the lowest partial is taken instead."""
    if m.track is None:
        return math.nan
    if falling:
        return m.track.low_midi(90.0)
    low = m.track.low_midi()
    partial = m.lowest_partial_midi
    return partial if math.isfinite(partial) and low < partial - SUBHARMONIC_SEMITONES else low


def check(asks: dict[str, Any], m: Measurements) -> dict[str, bool]:
    """attribute -> met, for every ask that ``m`` can judge (loudness is judged across clips, not here)."""
    out: dict[str, bool] = {}
    if "class" in asks and m.class_rank:
        known = [c for c in asks["class"] if c in m.class_rank]
        if known:
            k = len(known) + CLASS_TOPK_SLACK
            # several sources (a scene): each at its best over the windows, where it sounds
            rank = m.window_rank if len(known) > 1 and m.window_rank else m.class_rank
            out["class"] = all(rank[c] < k for c in known)
    if "word" in asks and m.word is not None:
        out["word"] = m.word == asks["word"]
    track = m.track
    if track is not None:
        if "pitch" in asks:
            err = cents_error(track.median_midi(), asks["pitch"])
            out["pitch"] = bool(err <= PITCH_TOLERANCE_CENTS)  # NaN (no pitch) is a miss
        if "register" in asks:
            lo, hi = asks.get("register_range") or register_range(asks["register"])
            low = phrase_root_midi(m, falling=asks.get("direction") == "falling")
            out["register"] = bool(lo - REGISTER_TOLERANCE <= low <= hi + REGISTER_TOLERANCE)
        if "direction" in asks:
            out["direction"] = track.direction() == (1 if asks["direction"] == "rising" else -1)
        if "noise_tone" in asks:
            tonal = track.voiced_fraction() >= TONE_VOICED_FRACTION
            out["noise_tone"] = tonal == (asks["noise_tone"] == "tone")
    if "count" in asks:
        out["count"] = m.onsets == int(asks["count"])
    if "brightness" in asks and math.isfinite(m.centroid_hz):
        out["brightness"] = (m.centroid_hz >= BRIGHT_HZ) == (asks["brightness"] == "bright")
    return out


def loudness_checks(asked: list[str | None], level_db: list[float]) -> tuple[list[list[bool]], int, int]:
    """Per clip, the outcome of each soft/loud pair it belongs to; also (pairs right, pairs) overall."""
    per: list[list[bool]] = [[] for _ in asked]
    soft = [i for i, a in enumerate(asked) if a == "soft"]
    loud = [i for i, a in enumerate(asked) if a == "loud"]
    right = 0
    for i in soft:
        for j in loud:
            ok = level_db[j] > level_db[i]
            per[i].append(ok)
            per[j].append(ok)
            right += ok
    return per, right, len(soft) * len(loud)


class AttributeAdherence:
    """Accumulates per-clip checks; ``compute()`` -> ``{"table": {attr: {...}}, "overall": float, "clips": n}``.

    ``chance`` for ``class`` is the mean of ``k / n_classes`` over checked clips and for ``word``
    ``1 / n_recognizer_classes``; the others come from :data:`CHANCE`.
    """

    def __init__(self, n_classes: int = 0, n_word_classes: int = 0) -> None:
        self.n_classes, self.n_word_classes = n_classes, n_word_classes
        self.hits = {a: 0 for a in ATTRIBUTES}
        self.counts = {a: 0 for a in ATTRIBUTES}
        self.class_chance_sum = 0.0
        self.clip_scores: list[float] = []

    def update(self, results: dict[str, bool | list[bool]], asks: dict[str, Any] | None = None) -> float:
        """Add one clip's results (``loudness`` may be a list of pair outcomes); returns its share met."""
        met, total = 0.0, 0
        for attr, value in results.items():
            outcomes = value if isinstance(value, list) else [value]
            if not outcomes:
                continue
            self.hits[attr] += sum(bool(v) for v in outcomes)
            self.counts[attr] += len(outcomes)
            met += sum(bool(v) for v in outcomes) / len(outcomes)
            total += 1
            if attr == "class" and asks is not None and self.n_classes:
                self.class_chance_sum += min(1.0, (len(asks["class"]) + CLASS_TOPK_SLACK) / self.n_classes)
        score = met / total if total else math.nan
        if total:
            self.clip_scores.append(score)
        return score

    def merge(self, other: AttributeAdherence) -> AttributeAdherence:
        for a in ATTRIBUTES:
            self.hits[a] += other.hits[a]
            self.counts[a] += other.counts[a]
        self.class_chance_sum += other.class_chance_sum
        self.clip_scores += other.clip_scores
        return self

    def chance(self, attr: str) -> float:
        if attr == "class":
            return self.class_chance_sum / self.counts["class"] if self.counts["class"] else math.nan
        if attr == "word":
            return 1.0 / self.n_word_classes if self.n_word_classes else math.nan
        return CHANCE[attr]

    def compute(self) -> dict[str, Any]:
        table = {
            a: {
                "accuracy": self.hits[a] / self.counts[a],
                "n": self.counts[a],
                "chance": self.chance(a),
            }
            for a in ATTRIBUTES
            if self.counts[a]
        }
        overall = float(np.mean(self.clip_scores)) if self.clip_scores else math.nan
        return {"table": table, "overall": overall, "clips": len(self.clip_scores)}


def score_clips(
    asks: list[dict[str, Any]],
    measurements: list[Measurements],
    n_classes: int = 0,
    n_word_classes: int = 0,
    permutation: list[int] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Check clip ``i``'s measurements against ``asks[permutation[i]]`` (default: its own asks).

    Returns ``(AttributeAdherence.compute(), per-clip [{"checks": {...}, "score": float}])``.
    """
    perm = list(range(len(asks))) if permutation is None else list(permutation)
    used = [asks[p] for p in perm]
    loud_per, _, _ = loudness_checks([a.get("loudness") for a in used], [m.level_db for m in measurements])
    acc = AttributeAdherence(n_classes, n_word_classes)
    per_clip = []
    for a, m, loud in zip(used, measurements, loud_per):
        results: dict[str, Any] = dict(check(a, m))
        if loud:
            results["loudness"] = loud
        score = acc.update(results, a)
        shown = {k: (float(np.mean(v)) if isinstance(v, list) else v) for k, v in results.items()}
        per_clip.append({"checks": shown, "score": score})
    return acc.compute(), per_clip


# ---------------------------------------------------------------- running it over files


PROMPT_GATED = ("pitch", "register", "count", "direction")


def asks_in_prompt(asks: dict[str, Any], prompt: str, words: list[str] | None = None) -> dict[str, Any]:
    """``asks`` (a clip's annotation) without the :data:`PROMPT_GATED` attributes its ``prompt`` does not ask.

    A corpus clip has a pitch, a register and often a count whether or not a caption says so ("a harp plays a
    B major chord" has a register; "a bell (middle register) chimes once" names no note): a clip generated from
    that caption cannot be held to them. An attribute stays when :func:`parse_prompt` finds it in the prompt (a
    register also when the prompt names the note). Class, word, loudness and noise/tone always stay: the
    corpus's captions always name the class and word, and the dynamics of an instrument.
    """
    parsed = parse_prompt(prompt, words)
    out = dict(asks)
    for key in PROMPT_GATED:
        if key in out and key not in parsed and not (key == "register" and "pitch" in parsed):
            del out[key]
            if key == "register":
                out.pop("register_range", None)
    return out


def clip_asks(
    events: list[dict[str, Any]] | None,
    family: str | None,
    labels: list[str],
    attributes: dict[str, Any],
    prompt: str,
    words: list[str] | None = None,
    gate: bool = True,
) -> dict[str, Any]:
    """A clip's asks: from its annotations when it has them (with ``gate`` and a ``prompt``, only those the prompt
    makes: :func:`asks_in_prompt`), else its labels + attributes, else its prompt text."""
    if events:
        asks = asks_from_events(events, family)
        return asks_in_prompt(asks, prompt, words) if gate and prompt else asks
    if labels or attributes:
        return asks_from_attributes(labels, attributes)
    if prompt:
        return parse_prompt(prompt, words)
    return {}


def load_recognizer(recognizer: Any = None) -> Any:
    """A keyword-spotter model from a model, a model directory or name, or None (the shipped "keyword"; None
    when it is not there)."""
    import torch

    from soundsmith.errors import ModelError
    from soundsmith.models.registry import load_model

    if isinstance(recognizer, torch.nn.Module):
        return recognizer.eval()
    try:
        model = load_model(recognizer if recognizer is not None else "keyword")
    except ModelError:
        if recognizer is not None:
            raise
        return None
    if not hasattr(model, "recognize"):
        raise ModelError(f"{recognizer}: not a spoken-word recognizer (family keyword)")
    return model


def recognize_file(model: Any, audio: np.ndarray) -> str:
    """The recognizer's top class (a word or ``NO_WORD``) for a clip ``[T]`` at the model's rate."""
    import torch

    ((word, _),) = model.recognize(torch.as_tensor(np.asarray(audio, dtype=np.float32)).view(1, -1))
    return word


def measure_files(
    paths: list[Any],
    logits: np.ndarray | None,
    class_labels: list[str] | None,
    recognizer: Any = None,
    sample_rate: int = 16000,
    pitch_method: str = "pyin",
    progress: bool = True,
    window_logits: np.ndarray | None = None,
) -> list[Measurements]:
    """:func:`measure` for each file; ``logits [N, C]`` are the tagger's for the same files (or None), and
    ``window_logits [N, C]`` its best over each file and its windows (or None)."""
    from tqdm.auto import tqdm

    from soundsmith.audio import load_audio

    out = []
    for i, path in enumerate(tqdm(paths, desc="attributes", disable=None if progress else True, leave=False)):
        audio, _ = load_audio(path, sample_rate=sample_rate)
        word = None
        if recognizer is not None:
            rate = recognizer.config.sample_rate
            heard = audio if rate == sample_rate else load_audio(path, sample_rate=rate)[0]
            word = recognize_file(recognizer, heard)
        probs = None if logits is None else logits[i]
        windows = None if window_logits is None else window_logits[i]
        out.append(measure(audio, sample_rate, probs, class_labels, word, pitch_method, windows))
    return out


def derangement(n: int, seed: int = 0) -> list[int]:
    """A seeded permutation with no fixed point (one cycle through a random order); identity for n < 2."""
    if n < 2:
        return list(range(n))
    order = np.random.default_rng(seed).permutation(n)
    perm = [0] * n
    for k in range(n):
        perm[int(order[k])] = int(order[(k + 1) % n])
    return perm
