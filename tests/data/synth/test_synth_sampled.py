"""Recorded sources (issue 16): FluidR3/TimGM6mb SoundFonts, GM percussion and sound effects, Hydrogen kits."""

import librosa
import numpy as np
import pytest

from soundsmith.data.synth import render_event, render_instrument
from soundsmith.data.synth.instruments import INSTRUMENTS, default_soundfont, soundfont_path
from soundsmith.data.synth.sampled import GM_SFX, PERCUSSION, hydrogen_index, hydrogen_kits, sources_for
from soundsmith.errors import ConfigError

SR = 16000
FLUID = default_soundfont() == "FluidR3_GM"
needs_fluid = pytest.mark.skipif(not FLUID, reason="fluid-soundfont-gm not installed (scripts/setup.sh)")
needs_hydrogen = pytest.mark.skipif(not hydrogen_index(), reason="hydrogen-drumkits not installed")


def test_at_least_24_instruments_with_guitars_choir_brass_marimba_steel_drums():
    assert len(INSTRUMENTS) >= 24
    assert {"electric_guitar", "choir", "brass_section", "marimba", "steel_drums"} <= set(INSTRUMENTS)


@needs_fluid
def test_both_soundfonts_play_the_same_phrase_differently():
    kw = {"note": "C4", "phrase": "arpeggio", "dynamics": "loud", "duration": 2.0, "sample_rate": SR}
    fluid, a_fluid = render_instrument("choir", soundfont="FluidR3_GM", **kw)
    tim, a_tim = render_instrument("choir", soundfont="TimGM6mb", **kw)
    assert a_fluid[0]["source"] == "FluidR3_GM" and a_tim[0]["source"] == "TimGM6mb"
    assert a_fluid[0]["notes"] == a_tim[0]["notes"] and not np.allclose(fluid, tim)
    # both calibrated to comparable levels (within 8 dB)
    assert abs(a_fluid[0]["loudness_db"] - a_tim[0]["loudness_db"]) < 8.0


def test_unknown_soundfont_names_the_choices():
    with pytest.raises(ConfigError, match="unknown SoundFont 'Piano2000'"):
        render_instrument("piano", soundfont="Piano2000", duration=1.0)
    with pytest.raises(ConfigError, match="unknown SoundFont"):
        soundfont_path("Piano2000")


@pytest.mark.parametrize("name", PERCUSSION)
def test_gm_percussion_hits_render_in_the_annotated_span(name):
    audio, anns = render_event(
        name, duration=2.0, sample_rate=SR, rng=np.random.default_rng(5), source=default_soundfont(), count=3
    )
    ann = anns[0]
    assert ann["source"] == default_soundfont() and ann["count"] == 3
    on, off = int(ann["onset"] * SR), int(ann["offset"] * SR)
    inside = np.sqrt(np.mean(audio[on:off] ** 2))
    before = np.sqrt(np.mean(audio[:on] ** 2)) if on > 0 else 0.0
    assert inside > 0.005 and before < 0.1 * inside


@pytest.mark.parametrize("name", ["woodblock", "claves", "cowbell"])
def test_gm_percussion_onsets_equal_the_count(name):
    for count in (1, 2, 4):
        audio, _ = render_event(
            name,
            duration=3.0,
            sample_rate=SR,
            rng=np.random.default_rng(count),
            count=count,
            source="TimGM6mb",
        )
        onsets = librosa.onset.onset_detect(y=audio, sr=SR, units="time", wait=4)
        assert len(onsets) == count, (name, count, onsets)


@pytest.mark.parametrize("name", sorted(GM_SFX))
def test_gm_sound_effects_vary_in_pitch(name):
    low, a_low = render_event(name, duration=2.0, sample_rate=SR, rng=np.random.default_rng(0), midi_key=55)
    high, a_high = render_event(name, duration=2.0, sample_rate=SR, rng=np.random.default_rng(0), midi_key=67)
    assert a_low[0]["midi_key"] == 55 and a_high[0]["midi_key"] == 67
    assert a_low[0]["source"] in ("FluidR3_GM", "TimGM6mb") and 0.01 < np.abs(low).max() < 1.0
    assert not np.allclose(low, high)


@needs_hydrogen
def test_hydrogen_kits_are_indexed_by_class_from_their_xml():
    index = hydrogen_index()
    assert {"kick_drum", "snare_drum", "hi_hat", "tom_drum", "crash_cymbal"} <= set(index)
    assert "hydrogen" in sources_for("kick_drum") and "hydrogen" in sources_for("drum_beat")
    kit = hydrogen_kits("snare_drum")[0]
    audio, anns = render_event(
        "snare_drum",
        duration=2.0,
        sample_rate=SR,
        rng=np.random.default_rng(0),
        source="hydrogen",
        kit=kit,
        count=2,
    )
    assert anns[0]["source"] == "hydrogen" and anns[0]["kit"] == kit and np.abs(audio).max() > 0.01


@needs_hydrogen
@pytest.mark.parametrize("pattern", ["rock", "four_on_the_floor", "half_time"])
def test_hydrogen_drum_patterns_count_their_hits(pattern):
    kit = next(k for k in hydrogen_kits("kick_drum") if k in hydrogen_kits("snare_drum"))
    audio, anns = render_event(
        "drum_beat", duration=3.0, sample_rate=SR, rng=np.random.default_rng(2), source="hydrogen", kit=kit,
        pattern=pattern, tempo_bpm=120,
    )  # fmt: skip
    hits, eighths = anns[0]["hits"], anns[0]["hits"]["hi_hat"]
    assert anns[0]["pattern"] == pattern and anns[0]["tempo_bpm"] == 120
    assert 10 <= eighths <= 13  # 0.25 s eighth notes in ~3 s
    per_bar = {"rock": (2, 2), "four_on_the_floor": (4, 2), "half_time": (1, 1)}[pattern]
    bars = eighths / 8
    assert per_bar[0] * bars - 2 <= hits["kick_drum"] <= per_bar[0] * bars + 3
    assert per_bar[1] * bars - 2 <= hits["snare_drum"] <= per_bar[1] * bars + 2


def test_rendering_from_a_complete_spec_is_deterministic():
    for name in ("tom_drum", "applause", "drum_beat", "kick_drum"):
        a1, ann1 = render_event(name, duration=1.5, sample_rate=SR, rng=np.random.default_rng(9))
        a2, ann2 = render_event(name, duration=1.5, sample_rate=SR, rng=np.random.default_rng(9))
        assert np.array_equal(a1, a2) and ann1 == ann2


def test_hydrogen_instrument_names_map_to_classes_on_word_starts():
    from soundsmith.data.synth.sampled import _classify

    assert _classify('Ride (Custom, Zagrebin 22")') == "ride_cymbal"  # "Custom" holds "tom" mid-word
    assert _classify("tomhi2") == "tom_drum" and _classify("Closed HH") == "hi_hat"
    assert _classify("BassDrum") == "kick_drum" and _classify("Hand Clap") == "hand_clap"
    assert _classify("Zap 1") is None


def test_every_event_class_has_caption_words_and_captions_name_it():
    # eval/prompt_parse.py reads EVENT_WORDS as class -> nouns: its keys must be exactly the classes
    from soundsmith.data.synth import EVENT_CLASSES
    from soundsmith.data.synth.captions import EVENT_WORDS, caption_clip

    assert set(EVENT_WORDS) == set(EVENT_CLASSES)
    for name in [*PERCUSSION, *GM_SFX]:
        _, anns = render_event(name, duration=1.0, sample_rate=SR, rng=np.random.default_rng(0))
        captions, _ = caption_clip("events", anns, np.random.default_rng(1), held_out=False)
        nouns = [n.split(" ", 1)[-1] for n in EVENT_WORDS[name][0]]
        assert len(set(captions)) == 3 and all(any(n in c for n in nouns) for c in captions), captions
