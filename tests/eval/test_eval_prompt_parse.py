"""Free-text prompts -> attribute asks, on paraphrases that the corpus caption templates never produce."""

from __future__ import annotations

import pytest

from soundsmith.eval.prompt_parse import parse_prompt

CASES = [
    ("a violin holds middle C, very quietly", {"class": ["violin"], "pitch": 60.0, "loudness": "soft"}),
    ("someone clearly says 'seven'", {"word": "seven"}),
    ("a man saying the number 7 into a microphone", {"word": "seven"}),
    ('a girl whispers "no"', {"word": "no"}),
    ("my alarm clock beeps three times, pitched at A4", {"class": ["beeps"], "count": 3, "pitch": 69.0}),
    ("three knocks on a snare", {"class": ["snare_drum"], "count": 3}),
    (
        "loud sax running up an ascending scale",
        {"class": ["saxophone"], "direction": "rising", "loudness": "loud"},
    ),
    ("a high-pitched sine wave", {"class": ["sine_tone"], "register": "high", "register_range": [72, 83]}),
    ("the cello plays a deep note", {"class": ["cello"], "register": "low", "noise_tone": "tone"}),
    ("a downpour", {"class": ["rain"], "noise_tone": "noise"}),
    ("a muffled kick, hit twice", {"class": ["kick_drum"], "count": 2, "brightness": "dark"}),
    ("a whistle gliding down", {"class": ["falling_sweep"], "direction": "falling"}),
    ("harsh buzzer on C#3", {"class": ["buzzer"], "pitch": 49.0, "register": "low"}),
    ("a fiddle descending softly", {"class": ["violin"], "direction": "falling", "loudness": "soft"}),
    ("church bells chime 4 times", {"class": ["bell"], "count": 4}),
    ("Bb3 on the trumpet", {"class": ["trumpet"], "pitch": 58.0}),
    ("concert A played on a flute", {"class": ["flute"], "pitch": 69.0}),
]


@pytest.mark.parametrize("prompt, expected", CASES, ids=[c[0][:30] for c in CASES])
def test_paraphrases(prompt, expected):
    asks = parse_prompt(prompt)
    assert {k: asks.get(k) for k in expected} == expected


def test_what_is_not_asked_is_left_out():
    asks = parse_prompt("a guitar")
    assert asks == {"class": ["acoustic_guitar"], "noise_tone": "tone"}
    assert parse_prompt("falling rain")["class"] == ["rain"] and "direction" not in parse_prompt(
        "falling rain"
    )
    assert "count" not in parse_prompt('a woman says "three"')  # the spoken word is not a count
    assert "pitch" not in parse_prompt("a piano plays a C4 major scale")  # a scale names its root only
    assert parse_prompt("a piano plays a C4 major scale")["register"] == "middle"  # piano thirds: 56-76
    assert parse_prompt("") == {}


def test_corpus_captions_agree_with_their_annotations():
    """The corpus' own held-out-template captions parse to the asks of their annotations (classes, words)."""
    import numpy as np

    from soundsmith.data.synth.captions import caption_clip
    from soundsmith.data.synth.events import draw_event_attrs
    from soundsmith.eval.adherence import asks_from_events

    rng = np.random.default_rng(0)
    for name in ("beeps", "bell", "rising_sweep", "hi_hat"):
        attrs = draw_event_attrs(name, rng)
        ann = [{"class": name, **attrs}]
        captions, _ = caption_clip("events", ann, rng, held_out=True)
        truth = asks_from_events(ann, "events")
        for caption in captions:
            asks = parse_prompt(caption)
            assert asks["class"] == truth["class"], caption
            for key in ("count", "pitch", "direction"):
                if key in asks:
                    assert asks[key] == truth.get(key), (caption, key)


@pytest.mark.parametrize(
    "text,loudness",
    [
        ("a clarinet sustaining E4 at a hush", "soft"),
        ("church organ holding G3 at full volume", "loud"),
        ("a cello, barely audible", "soft"),
        ("booming thunder", "loud"),
        ("a cello plays", None),
        ("soft rain with loud thunder", None),  # both: no one ask
        ("the softest sound", None),  # a whole word only
    ],
)
def test_asked_loudness_reads_one_of_soft_or_loud(text, loudness):
    from soundsmith.eval.prompt_parse import asked_loudness

    assert asked_loudness(text) == loudness
    assert parse_prompt(text).get("loudness") == loudness
