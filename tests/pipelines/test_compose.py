"""Layered prompts: the grammar that splits them, the mixer that lays the parts out, and the pipeline wiring."""

from __future__ import annotations

import numpy as np
import pytest

from soundsmith.errors import ConfigError
from soundsmith.pipelines.compose import (
    ScenePlan,
    active_level_db,
    active_span,
    counted,
    first_event,
    mix_scene,
    plan_scene,
    repeat_event,
    sound_kind,
    spoken,
)

SR = 16000


@pytest.mark.parametrize(
    "prompt,background,foreground,repeats",
    [
        ("three beeps over steady rain", "steady rain", ("three beeps",), (3,)),
        ("over the sound of rain, a dog barks, then a bell rings", "the sound of rain", ("a dog barks", "a bell rings"), ()),
        ("a scene with gusting wind: a horn plays a note", "gusting wind", ("a horn plays a note",), ()),
        ("as the wind blows, a snare cracks twice, then a bell rings", "the wind blows", ("a snare cracks twice", "a bell rings"), (2, 1)),
        ("a piano plays a chord with a steady hiss behind", "a steady hiss", ("a piano plays a chord",), ()),
        ("first a man says seven, then a bell rings, with an engine hum in the background", "an engine hum",
         ("a man says seven", "a bell rings"), ()),
        ("an engine hum in the background as a phone rings", "an engine hum", ("a phone rings",), ()),
        ("a bell rings, while it is raining", "it is raining", ("a bell rings",), ()),
        ("birds chirp as the sea rolls in", "the sea rolls in", ("birds chirp",), ()),
        ("rain falls; a dog barks", "rain falls", ("a dog barks",), ()),
        ("a dog barks twice in the rain", "the rain", ("a dog barks twice",), (2,)),
        ("all is quiet; a bell rings, then a gong sounds", None, ("a bell rings", "a gong sounds"), ()),
        ("a bell rings, then a dog barks, followed by a whistle", None, ("a bell rings", "a dog barks", "a whistle"), ()),
        # the bed first, or named around the sources
        ("under a steady drizzle, a cowbell clanks", "a steady drizzle", ("a cowbell clanks",), ()),
        ("through the pouring rain, a car horn honks twice", "the pouring rain", ("a car horn honks twice",), (2,)),
        ("with waves crashing on the shore behind, a flute plays a gentle melody", "waves crashing on the shore",
         ("a flute plays a gentle melody",), ()),
        ("rain pattering down while somewhere a bell rings", "rain pattering down", ("somewhere a bell rings",), ()),
        ("the wind howls as a door creaks, then a dog barks", "the wind howls", ("a door creaks", "a dog barks"), ()),
        ("the hum of a motor with a snare drum hitting twice on top", "the hum of a motor",
         ("a snare drum hitting twice",), (2,)),
        ("a flute melody on top of a low drone", "a low drone", ("a flute melody",), ()),
        ("rain with wind, with a bell on top", "rain with wind", ("a bell",), ()),
        ("a bell as loud as thunder rings over the sea", "the sea", ("a bell as loud as thunder rings",), ()),
        ("a woman hums while a man talks quietly in the rain", "the rain", ("a woman hums while a man talks quietly",), ()),
    ],
)  # fmt: skip
def test_layered_prompts_split_into_bed_and_ordered_parts(prompt, background, foreground, repeats):
    plan = plan_scene(prompt)
    assert plan == ScenePlan(background, foreground, repeats)
    asked = [
        counted(f)[0] if plan.times(k) > 1 else f for k, f in enumerate(foreground)
    ]  # counted: asked once
    assert plan.prompts == ([background] if background else []) + asked


@pytest.mark.parametrize(
    "prompt",
    [
        "a violin plays a slow rising scale",
        "the trumpet plays the same note over and over",
        "a tone sweeping over two octaves",
        "a man with a deep voice says seven",
        "a piano plays with feeling",
        "in this clip a bell at B4 rings once",
        "two dogs bark at the gate",
        "a man speaking as if he were tired, with a long explanation of the weather over several minutes",
    ],
)
def test_single_source_prompts_are_not_split(prompt):
    assert plan_scene(prompt) is None


def test_more_sources_than_the_cap_are_generated_as_one_clip():
    from soundsmith.pipelines.compose import MAX_SOURCES

    sources = [f"a bell rings {i} times" for i in range(MAX_SOURCES + 1)]
    assert len(plan_scene(", then ".join(sources[:MAX_SOURCES])).foreground) == MAX_SOURCES
    assert plan_scene(", then ".join(sources)) is None
    assert plan_scene("over rain, " + ", then ".join(sources)) is None


@pytest.mark.parametrize(
    "prompt",
    [
        "a vehicle engine revving then powering down",  # "then" without a new subject: one source
        "a siren wails then fades away",
        "a dog barks, then another",
        "a man speaking in an engine room",  # a place named after a bed word
        "a bell rings in a quiet room",  # a quiet bed and one source: nothing to compose
        "wind chimes tinkle",
    ],
)
def test_what_is_one_source_stays_one_clip(prompt):
    assert plan_scene(prompt) is None


def test_silence_between_sources_is_a_silent_slot():
    assert plan_scene("first a beep, then silence, then a beep") == ScenePlan(
        None, ("a beep", None, "a beep")
    )
    assert plan_scene("a click, then a short pause") == ScenePlan(None, ("a click", None))
    assert plan_scene("over rain, a bell rings, then silence").prompts == ["rain", "a bell rings"]
    assert plan_scene("birds chirp, then footsteps approach").foreground == (
        "birds chirp",
        "footsteps approach",
    )


def test_slots_too_short_for_the_duration_are_one_clip():
    prompt = "a bell rings, then a gong sounds, then a horn blows"
    assert plan_scene(prompt, duration=3 * 0.25) is not None
    assert plan_scene(prompt, duration=3 * 0.25 - 0.01) is None
    assert plan_scene("a bell rings over rain", duration=0.05) is not None  # one source: the whole clip


def _burst(at_s: float, seconds: float, length: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    out = np.zeros(length, np.float32)
    a, n = int(at_s * SR), int(seconds * SR)
    out[a : a + n] = amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)
    return out


def test_active_span_and_level():
    clip = _burst(1.0, 0.5, 4 * SR)
    start, end = active_span(clip, SR)
    assert abs(start - SR) <= SR // 50 and abs(end - int(1.5 * SR)) <= SR // 50
    assert active_level_db(clip, SR) == pytest.approx(10 * np.log10(0.125), abs=0.2)  # sine of amplitude 0.5
    assert active_span(np.zeros(SR, np.float32), SR) == (0, 0)
    assert active_level_db(np.zeros(SR, np.float32), SR) == -120.0


def test_one_part_is_kept_and_the_bed_sits_snr_below_it():
    fg = _burst(0.7, 1.0, 4 * SR)
    rng = np.random.default_rng(0)
    bed = (0.3 * rng.standard_normal(4 * SR)).astype(np.float32)
    out = mix_scene(bed, [fg], SR, snr_db=13.0)
    scaled_bed = out - fg
    gain = float(np.median(scaled_bed / bed))
    np.testing.assert_allclose(scaled_bed, bed * gain, atol=1e-6)  # the bed, only scaled
    assert active_level_db(fg, SR) - active_level_db(scaled_bed, SR) == pytest.approx(13.0, abs=0.05)
    np.testing.assert_array_equal(mix_scene(None, [fg], SR), fg)


def test_the_bed_sits_under_the_quietest_part_by_its_snr():
    """A whisper after a horn: the bed is set against the quiet part, not the mix (a bed 13 dB under the horn
    would sit ~7 dB under the whisper); with one SNR per part, each part keeps at least its own over the bed."""
    length = 4 * SR
    loud, quiet = _burst(0.2, 1.0, length, 440.0, amp=0.5), _burst(0.2, 1.0, length, 880.0, amp=0.05)
    bed = (0.3 * np.random.default_rng(1).standard_normal(length)).astype(np.float32)

    def bed_under(part, out, parts=(loud, quiet)):
        return active_level_db(part, SR) - active_level_db(out - mix_scene(None, list(parts), SR), SR)

    assert bed_under(quiet, mix_scene(bed, [loud, quiet], SR, snr_db=13.0)) == pytest.approx(13.0, abs=0.05)
    assert bed_under(loud, mix_scene(bed, [loud, quiet], SR, snr_db=13.0)) == pytest.approx(33.0, abs=0.1)
    # per part: the loud part asks 40 dB, which puts the bed 20 dB under the quiet one (more than its 13)
    per_part = mix_scene(bed, [loud, quiet], SR, snr_db=[40.0, 13.0])
    assert bed_under(loud, per_part) == pytest.approx(40.0, abs=0.1)
    assert bed_under(quiet, per_part) == pytest.approx(20.0, abs=0.1)
    # a silent slot sets nothing
    silent = np.zeros(length, np.float32)
    with_gap = mix_scene(bed, [loud, silent], SR, snr_db=[13.0, 40.0])
    assert bed_under(loud, with_gap, (loud, silent)) == pytest.approx(13.0, abs=0.05)
    with pytest.raises(ValueError, match="one SNR for each of the 2 parts"):
        mix_scene(bed, [loud, quiet], SR, snr_db=[13.0])


def test_several_parts_take_consecutive_slots_from_their_active_start():
    length = 4 * SR
    parts = [_burst(2.0, 0.3, length, 440.0), _burst(0.5, 0.3, length, 880.0)]
    out = mix_scene(None, parts, SR, lead_s=0.05)
    start0, end0 = active_span(out[: 2 * SR], SR)
    start1, end1 = active_span(out[2 * SR :], SR)
    assert abs(start0 - int(0.05 * SR)) <= SR // 50 and abs(end0 - int(0.35 * SR)) <= SR // 50
    assert abs(start1 - int(0.05 * SR)) <= SR // 50
    # each slot holds its own part: 440 Hz first, 880 Hz second
    spec0, spec1 = (np.abs(np.fft.rfft(out[k * 2 * SR : (k + 1) * 2 * SR])) for k in (0, 1))
    freqs = np.fft.rfftfreq(2 * SR, 1 / SR)
    assert freqs[spec0.argmax()] == pytest.approx(440.0, abs=2) and freqs[spec1.argmax()] == pytest.approx(
        880.0, abs=2
    )


def test_a_part_longer_than_its_slot_is_cut_with_a_fade():
    length = 4 * SR
    long = _burst(0.0, 4.0, length)
    out = mix_scene(None, [long, np.zeros(length, np.float32) + _burst(1.0, 0.2, length)], SR, lead_s=0.05)
    slot_end = 2 * SR
    assert np.abs(out[slot_end - 10 : slot_end]).max() < 0.04  # a 10-ms fade to ~0 at the cut
    assert not out[slot_end : slot_end + int(0.05 * SR)].any()  # the next slot's lead is silent
    assert np.abs(out[SR : SR + 100]).max() > 0.3  # but full level inside the slot


def test_parts_shorter_than_a_frame_and_a_silent_foreground():
    tiny = np.full(100, 0.2, np.float32)  # under one 20-ms frame
    assert active_span(tiny, SR) == (0, 100)
    out = mix_scene(None, [tiny, tiny], SR)
    assert np.abs(out).max() > 0.1  # not silenced
    bed = np.full(SR, 0.1, np.float32)
    np.testing.assert_array_equal(mix_scene(bed, [np.zeros(SR, np.float32)], SR), bed)  # the bed at its level


def test_mix_rejects_bad_parts():
    with pytest.raises(ValueError, match="at least one foreground"):
        mix_scene(None, [], SR)
    with pytest.raises(ValueError, match="clip's length"):
        mix_scene(np.zeros(10, np.float32), [np.zeros(12, np.float32)], SR)


# --- the pipeline ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe():
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    return LatentDiffusionPipeline(tiny_model())


def _capture(monkeypatch):
    import soundsmith.pipelines.latent_diffusion as ld

    calls = []

    def spy(bed, fg, sample_rate, **kw):
        out = mix_scene(bed, fg, sample_rate, **kw)
        calls.append((None if bed is None else bed.copy(), [f.copy() for f in fg], out.copy()))
        return out

    monkeypatch.setattr(ld, "mix_scene", spy)
    return calls


def test_a_layered_prompt_is_generated_part_by_part_and_mixed(pipe, monkeypatch):
    calls = _capture(monkeypatch)
    a = pipe("a bell rings over steady rain", duration=0.5, seed=3, compose=True, progress=False)
    pipe("a gong sounds over steady rain", duration=0.5, seed=3, compose=True, progress=False)
    assert a.meta["composed"] == "background: steady rain | 1: a bell rings"
    (bed_a, (fg_a,), out_a), (bed_b, (fg_b,), _) = calls
    np.testing.assert_array_equal(a.audio[0], out_a)  # the mix is the output (peak under the ceiling)
    # each part is conditioned on its own prompt alone: the same bed with the same seed, whatever the foreground
    np.testing.assert_array_equal(bed_a, bed_b)
    assert not np.array_equal(fg_a, fg_b) and not np.array_equal(bed_a, fg_a)
    again = pipe("a bell rings over steady rain", duration=0.5, seed=3, compose=True, progress=False)
    np.testing.assert_array_equal(a.audio, again.audio)


def test_compose_leaves_plain_prompts_and_audio_to_audio_alone(pipe, monkeypatch):
    calls = _capture(monkeypatch)
    on = pipe("a bell rings", duration=0.5, seed=1, compose=True, progress=False)
    off = pipe("a bell rings", duration=0.5, seed=1, compose=False, progress=False)
    np.testing.assert_array_equal(on.audio, off.audio)
    init = np.zeros(8000, np.float32)
    init[:800] = 0.3
    out = pipe("a bell rings over rain", init_audio=init, strength=0.5, seed=1, compose=True, progress=False)
    assert calls == [] and "composed" not in on.meta and "composed" not in out.meta


def test_the_configs_compose_is_the_default_and_must_be_a_bool():
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    pipe = LatentDiffusionPipeline(tiny_model(compose=True))
    assert "composed" in pipe("a bell rings, then a gong sounds", duration=0.5, progress=False).meta
    assert (
        "composed"
        not in pipe("a bell rings, then a gong sounds", duration=0.5, compose=False, progress=False).meta
    )
    with pytest.raises(ConfigError, match="compose='yes' must be true or false"):
        pipe("a bell over rain", duration=0.5, compose="yes", progress=False)
    with pytest.raises(ConfigError, match="LatentDiffusionConfig.compose=1"):
        tiny_model(compose=1)


@pytest.mark.parametrize(
    "overrides,settings",
    [
        ({}, {}),
        ({}, {"negative_prompt": "hiss"}),
        ({}, {"guidance": 1.0}),
        ({"context_seconds": 0.5}, {"duration": 1.3}),  # longer than the context: windowed denoising
        ({"context_seconds": 0.5}, {"duration": 0.3}),  # shorter: generated at the context, cropped
    ],
)
def test_the_bed_row_is_the_bed_generated_alone(pipe, monkeypatch, overrides, settings):
    """Rows of the part batch line up with their own text and noise: the composed bed equals "steady rain" made
    alone with the same seed (its noise is the first row of the batch's), whatever the settings."""
    if overrides:
        from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

        from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

        pipe = LatentDiffusionPipeline(tiny_model(**overrides))
    calls = _capture(monkeypatch)
    kwargs = {"duration": 0.5, "seed": 4, "progress": False, **settings}
    pipe("a bell rings over steady rain", compose=True, **kwargs)
    alone = pipe("steady rain", compose=True, **kwargs).audio[0]
    np.testing.assert_allclose(calls[0][0], alone, atol=1e-5)


def test_guidance_interval_and_silent_slots_in_the_pipeline(monkeypatch):
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    pipe = LatentDiffusionPipeline(tiny_model(guidance_interval=(0.5, 1.0)))
    calls = _capture(monkeypatch)
    kwargs = {"duration": 0.6, "seed": 2, "progress": False}
    pipe("over steady rain, a bell rings", compose=True, **kwargs)
    np.testing.assert_allclose(calls[0][0], pipe("steady rain", **kwargs).audio[0], atol=1e-5)
    out = pipe("a bell rings, then silence", compose=True, **kwargs)
    assert out.meta["composed"] == "1: a bell rings | 2: (silence)"
    assert not calls[-1][1][1].any() and not out.audio[0, int(0.3 * SR) + 1 :].any()


# --- answers to the mutation run (scripts/mutation.sh pipelines/compose) ------------------------------------


@pytest.mark.parametrize(
    "prompt,expected",
    [
        ("rain falls; a dog barks.", ScenePlan("rain falls", ("a dog barks",))),  # punctuation trimmed
        ("over rain, a bell rings, then (a dog barks)", ScenePlan("rain", ("a bell rings", "(a dog barks)"))),
        ("over rain, an engine revs, then powers down", ScenePlan("rain", ("an engine revs, then powers down",))),
        ("three beeps over the steady sound of falling rain", ScenePlan("the steady sound of falling rain", ("three beeps",), (3,))),
        ("note: a bell rings over rain", ScenePlan("rain", ("note: a bell rings",))),  # a later layout still tried
        ("a bell rings, then a short quiet pause", ScenePlan(None, ("a bell rings", None))),
        ("a bell rings, then a long quiet pause here", ScenePlan(None, ("a bell rings", "a long quiet pause here"))),
    ],
)  # fmt: skip
def test_grammar_details(prompt, expected):
    assert plan_scene(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "three beeps over the steady and constant sound of rain",  # a bed of 7 words is a sentence
        "as rain falls then stops, a bell rings",  # "then" inside the bed
        "a man speaks over an engine room",  # a place named after a bed word
        "a bell rings in a windy city",  # after "in" the bed word must end the phrase
        "under the table, a cat purrs",  # the bed words, first or last, must name an ambient sound
        "a cake with a candle on top",
        "a dog barks while a man speaks",
        "a guitar plays on top of a hill",
        "rain as well as thunder",  # not "as" joining two sounds
        "a woman hums while a dog barks",  # the bed first only when it opens with an ambient noun ...
        "a snake hissing while a man screams",
        "an engine revs as it speeds away",  # ... and what follows starts like a new source
        "rain as heard from inside a tent",
        "through the storm drain, water trickles",  # after under / through / on top of, the bed word ends the bed
        "a bird sings on top of a windy hill",
        "the wind howls as if in pain",
        "a hum as deep as the sea",
    ],
)
def test_grammar_refusals(prompt):
    assert plan_scene(prompt) is None


def test_two_sources_need_two_slots_of_a_quarter_second():
    assert plan_scene("a bell rings, then a gong sounds", duration=0.5) is not None
    assert plan_scene("a bell rings, then a gong sounds", duration=0.45) is None


def test_active_span_is_exact_on_frame_boundaries():
    hop = SR // 50
    clip = np.zeros(4 * SR, np.float32)
    clip[50 * hop : 60 * hop] = 0.5
    assert active_span(clip, SR) == (50 * hop, 60 * hop)
    click = np.zeros(SR, np.float32)
    click[7 * hop : 8 * hop] = 0.5  # one loud frame
    assert active_span(click, SR) == (7 * hop, 8 * hop)
    assert active_span(np.zeros(100, np.float32), SR) == (0, 0)
    # a frame exactly below_peak_db under the loudest counts as active
    quiet = np.float32(0.125)
    edge = np.zeros(SR, np.float32)
    edge[2 * hop : 3 * hop], edge[10 * hop : 11 * hop] = 1.0, quiet
    below = -10 * np.log10(np.float64(quiet) ** 2)
    assert active_span(edge, SR, below_peak_db=below) == (2 * hop, 11 * hop)
    assert active_level_db(edge, SR, below_peak_db=below) == pytest.approx(
        10 * np.log10((1.0 + quiet.astype(np.float64) ** 2) / 2), abs=1e-9
    )
    assert active_level_db(np.full(100, 0.2, np.float32), SR) == pytest.approx(20 * np.log10(0.2), abs=1e-5)


def test_defaults_lead_and_bed_level():
    length = 4 * SR
    a, b = _burst(1.0, 0.3, length), _burst(0.5, 0.3, length, 880.0)
    out = mix_scene(None, [a, b], SR)  # default lead 0.05 s
    assert active_span(out[: 2 * SR], SR)[0] == int(0.05 * SR) // (SR // 50) * (SR // 50)
    bed = (0.2 * np.random.default_rng(1).standard_normal(length)).astype(np.float32)
    mixed = mix_scene(bed, [a], SR)  # default 13 dB
    assert active_level_db(a, SR) - active_level_db(mixed - a, SR) == pytest.approx(13.0, abs=0.05)


def test_segments_are_the_parts_samples_faded_only_where_cut():
    hop = SR // 50
    length = 4 * SR
    part = np.zeros(length, np.float32)
    part[50 * hop : 60 * hop] = np.linspace(0.2, 0.6, 10 * hop, dtype=np.float32)  # starts after 0: fade in
    other = np.zeros(length, np.float32)
    other[: 5 * hop] = -0.3  # starts at 0: no fade in
    before = (part.copy(), other.copy())
    out = mix_scene(None, [part, other], SR, lead_s=0.05)
    lead, n = int(0.05 * SR), int(0.01 * SR)
    seg = out[lead : lead + 10 * hop]
    ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
    np.testing.assert_array_equal(seg[:n], part[50 * hop : 50 * hop + n] * ramp)
    np.testing.assert_array_equal(seg[n:], part[50 * hop + n : 60 * hop])  # the end is not cut: no fade out
    second = out[2 * SR + lead : 2 * SR + lead + 5 * hop]
    np.testing.assert_array_equal(second, other[: 5 * hop])  # no fade in at 0, sign kept
    np.testing.assert_array_equal(part, before[0])  # the parts themselves are left alone
    np.testing.assert_array_equal(other, before[1])
    single = mix_scene(None, [part], SR)
    assert not np.shares_memory(single, part)


def test_a_cut_part_ends_on_the_exact_fade():
    length = 4 * SR
    part = np.full(length, 0.5, np.float32)
    out = mix_scene(None, [part, np.zeros(length, np.float32)], SR, lead_s=0.05)
    lead, n = int(0.05 * SR), int(0.01 * SR)
    ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
    seg = out[lead : 2 * SR]
    np.testing.assert_array_equal(seg[-n:], 0.5 * ramp[::-1])
    np.testing.assert_array_equal(seg[:-n], np.full(len(seg) - n, 0.5, np.float32))  # starts at 0: no fade in


# --- counted sounds: asked once, repeated -------------------------------------------------------------------


@pytest.mark.parametrize(
    "clause,expected",
    [
        ("an alarm beeps four times (low register)", ("an alarm beeps once (low register)", 4)),
        ("a bell rings twice", ("a bell rings once", 2)),
        ("a gong is struck thrice", ("a gong is struck once", 3)),
        ("a drum is hit 5 times", ("a drum is hit once", 5)),
        ("three beeps at E3", ("one beep at E3", 3)),
        ("three beeps", ("one beep", 3)),
        ("two loud hand claps", ("one loud hand clap", 2)),
        ("three crashes of thunder", ("one crash of thunder", 3)),
        ("four chimes (high register)", ("one chime (high register)", 4)),
        ("six knocks on a door, slowly", ("one knock on a door, slowly", 6)),
        ("a kitchen timer with three short beeps", ("a kitchen timer with one short beep", 3)),
        ("a snare drum, five hits at a steady pace", ("a snare drum, one hit at a steady pace", 5)),
    ],
)
def test_a_counted_sound_is_asked_once_and_repeated(clause, expected):
    assert counted(clause) == expected
    plan = plan_scene(clause, 4.0)
    assert plan == ScenePlan(None, (clause,), (expected[1],))
    assert plan.prompts == [expected[0]] and plan.part(0) == expected[0] and plan.times(0) == expected[1]


@pytest.mark.parametrize(
    "clause",
    [
        "a bell rings once",
        "two dogs bark",  # two dogs, not a count of barks
        "a tone plays for three seconds",
        "twice as loud, a bell rings",
        "a drum is hit three times faster",
        "a bell rings ten times",  # more than MAX_REPEATS
        "a bell rings twice and a dog barks three times",  # two counts in one clause
        "a man says the word three",
        "a bell, with two children singing",  # a verb after the noun: not a count of sounds
        "a piano plays for two minutes",
        "two cars pass by",  # not sound-event nouns: cars, dogs, snakes, strings, guitars
        "two snakes hiss in the grass",
        "three dogs in a park",
        "a guitar with six strings",
        "a band with two guitars",
        "a clock ticks twice a second",  # a rate
        "a child recites the two times table",  # read out
        "a woman counts three beeps",
        "a beep, 5 milliseconds",
        "two cries",
    ],
)
def test_what_is_not_a_count(clause):
    assert counted(clause) is None
    assert plan_scene(clause, 4.0) is None


def test_repeats_too_close_for_the_duration_are_asked_as_they_are():
    from soundsmith.pipelines.compose import MIN_REPEAT_S

    assert plan_scene("a bell rings eight times", 8 * MIN_REPEAT_S).times(0) == 8
    assert plan_scene("a bell rings eight times", 8 * MIN_REPEAT_S * 0.9) is None
    # in a scene, the slot's share counts: two slots of 1 s hold 6 repeats, not 8
    plan = plan_scene("a bell rings eight times, then a kick drum is struck six times", 2.0)
    assert plan.foreground == ("a bell rings eight times", "a kick drum is struck six times")
    assert plan.prompts == ["a bell rings eight times", "a kick drum is struck once"]
    assert plan.repeats == (1, 6) and [plan.times(i) for i in range(2)] == [1, 6]


def _tone(n, at, length, f=440.0, decay=None):
    x = np.zeros(n, np.float32)
    t = np.arange(length) / SR
    env = np.ones(length) if decay is None else np.exp(-t / decay)
    x[at : at + length] = (0.5 * np.sin(2 * np.pi * f * t) * env).astype(np.float32)
    return x


def test_first_event_ends_before_the_next_one_and_keeps_a_single_ring():
    two = _tone(SR * 2, 1600, 2400) + _tone(SR * 2, 9600, 2400)  # beeps at 0.1 s and 0.6 s, 0.15 s long
    start, end = first_event(two, SR)
    assert start == 1600 - 160 and 4000 <= end <= 9600  # from the frame before (smoothing), cut between them
    ring = _tone(SR * 2, 800, SR, decay=0.1)  # one strike ringing out, no second onset
    start, end = first_event(ring, SR)
    assert start == 800 - 160 and end > 800 + int(0.3 * SR)  # its ring, to 35 dB below the peak
    assert first_event(np.zeros(SR, np.float32), SR) == (0, 0)


def test_repeat_event_lays_copies_at_a_regular_interval():
    beep = _tone(SR * 4, 3200, 2400)  # one 0.15-s beep at 0.2 s
    out, onset = repeat_event(beep, SR, 3, SR * 4)
    assert onset == 3200 - 160  # a frame of pre-roll takes the fade in, not the beep's attack
    length = 160 + 2400 + 160  # a frame either side (the level is smoothed over three)
    interval = length + 1600  # its length and a gap: half its length, at least 0.1 s
    assert len(out) == 2 * interval + length
    for k in range(3):  # each copy is the beep's samples, faded only at its very end (10 ms)
        at = k * interval + 160
        np.testing.assert_array_equal(out[at : at + 2200], beep[3200:5400])
        assert np.all(out[k * interval + length : (k + 1) * interval] == 0)
    one, _ = repeat_event(beep, SR, 1, SR * 4)
    assert len(one) == length
    squeezed, _ = repeat_event(
        beep, SR, 4, 8000
    )  # 4 copies in half a second: every 2000 samples, overlapping
    expected = np.zeros(8000, np.float32)
    for k in range(4):
        expected[k * 2000 : k * 2000 + length] += one[: 8000 - k * 2000]
    assert len(squeezed) == 8000
    np.testing.assert_allclose(
        squeezed[:7800], expected[:7800], atol=1e-6
    )  # the last copy is cut with a fade
    assert np.abs(squeezed[-20:]).max() < np.abs(expected[-20:]).max() or np.abs(expected[-20:]).max() == 0
    with pytest.raises(ValueError):
        repeat_event(beep, SR, 0, 100)
    with pytest.raises(ValueError, match="room=3"):
        repeat_event(beep, SR, 5, 3)


def test_mix_scene_repeats_a_counted_part_alone_and_in_a_slot():
    n = SR * 4
    beep = _tone(n, 3200, 2400)
    alone = mix_scene(None, [beep], SR, repeats=(3,))
    loud = np.abs(alone).reshape(-1, 160).max(axis=1) > 0.05  # 10-ms frames
    rises = np.flatnonzero(np.diff(loud.astype(int)) == 1)
    assert len(alone) == n and alone[:3200].max() == 0 and len(rises) == 3  # from where it was generated
    onsets = np.flatnonzero(np.abs(alone) > 0.01)
    assert onsets[0] >= 3200
    late = _tone(
        n, SR * 7 // 2, 2400
    )  # generated at 3.5 s: four repeats (0.83 s) do not fit after it: from the lead
    moved = mix_scene(None, [late], SR, repeats=(4,))
    assert np.flatnonzero(np.abs(moved) > 0.01)[0] <= int(0.05 * SR) + 160 + 1  # the lead, the pre-roll
    bell = _tone(n, 800, 2400, f=660.0)
    two = mix_scene(None, [beep, bell], SR, repeats=(2, 1))
    first_half, second_half = two[: n // 2], two[n // 2 :]
    assert np.abs(first_half).max() > 0.4 and np.abs(second_half).max() > 0.4
    with pytest.raises(ValueError, match="repeats"):
        mix_scene(None, [beep, bell], SR, repeats=(2,))
    with pytest.raises(ValueError, match="repeats"):
        mix_scene(None, [beep], SR, repeats=(0,))


def test_a_counted_prompt_is_its_once_version_repeated(pipe, monkeypatch):
    """ "a bell rings three times" denoises one part, "a bell rings once", with the seed's first noise draw: the
    same clip as asking for it once; the mixer repeats its first event (the spy sees the repeats)."""
    calls = []
    import soundsmith.pipelines.latent_diffusion as ld

    def spy(bed, fg, sample_rate, **kw):
        calls.append(([f.copy() for f in fg], kw.get("repeats")))
        return mix_scene(bed, fg, sample_rate, **kw)

    monkeypatch.setattr(ld, "mix_scene", spy)
    monkeypatch.setattr(
        ld, "has_event", lambda part, sr, spacing=None: True
    )  # the tiny model's noise is held
    kwargs = {"duration": 1.0, "seed": 5, "progress": False}
    three = pipe("a bell rings three times", compose=True, **kwargs)
    once = pipe("a bell rings once", compose=True, **kwargs)
    assert three.meta["composed"] == "1: a bell rings once (x3)" and "composed" not in once.meta
    ((parts, repeats),) = calls
    assert repeats == (3,)
    np.testing.assert_allclose(parts[0], once.audio[0], atol=1e-5)
    expected = mix_scene(None, [once.audio[0]], pipe.sample_rate, repeats=(3,))
    np.testing.assert_allclose(three.audio[0], expected, atol=1e-5)
    plain = pipe("a bell rings three times", compose=False, **kwargs)
    assert not np.allclose(plain.audio[0], three.audio[0])


def test_a_ring_that_beats_is_one_event_and_a_click_is_none():
    from soundsmith.pipelines.compose import MIN_EVENT_S, has_event

    n = SR * 2
    ring = _tone(n, 800, SR, decay=0.4)
    t = np.arange(n) / SR
    # a strike that falls fast to a ring 20 dB down, which beats (dips of 20 dB, swells back to -20 dB)
    hum = _tone(n, 800, SR, f=443.0) * 0.1 * (0.55 + 0.45 * np.cos(2 * np.pi * 6 * t)).astype(np.float32)
    beating = _tone(n, 800, SR, decay=0.03) + hum
    start, end = first_event(beating, SR)
    assert (
        start == 800 - 160 and end > 800 + SR // 2
    )  # swells well under the strike are its ring, not new strikes
    restruck = beating + _tone(n, 800 + SR // 2, SR, decay=0.03)  # a second strike as loud as the first
    assert first_event(restruck, SR)[1] <= 800 + SR // 2
    click = np.zeros(n, np.float32)
    click[:160] = 0.5  # 10 ms at the very start, silence after
    assert first_event(click, SR)[1] - first_event(click, SR)[0] < MIN_EVENT_S * SR
    assert not has_event(click, SR) and has_event(ring, SR) and not has_event(np.zeros(n, np.float32), SR)
    assert not has_event(
        ring * 1e-4, SR
    )  # near-silence (peak -86 dBFS), however it reads relative to its peak
    drone = _tone(n, 800, SR * 3 // 2)  # held for 1.5 s: repeated every 0.5 s it would pile up on itself
    assert (
        has_event(drone, SR)
        and not has_event(drone, SR, spacing=SR // 2)
        and has_event(drone, SR, spacing=SR * 2)
    )
    assert has_event(ring, SR, spacing=SR // 2)  # a ring 10 dB down by then
    nan = ring.copy()
    nan[5] = np.nan
    assert first_event(nan, SR) == first_event(np.nan_to_num(nan), SR) and has_event(nan, SR)


def test_a_counted_part_without_an_event_is_generated_as_asked(pipe, monkeypatch):
    import soundsmith.pipelines.latent_diffusion as ld

    monkeypatch.setattr(ld, "has_event", lambda part, sr, spacing=None: False)
    kwargs = {"duration": 1.0, "progress": False}
    out = pipe("a bell rings three times", compose=True, seed=6, num_candidates=2, rerank=False, **kwargs)
    assert out.meta["counted_as_asked"] == [6, 7]
    for row, seed in zip(
        out.audio, (6, 7), strict=True
    ):  # the counted clause, its seed's first noise, unrepeated
        plain = pipe("a bell rings three times", compose=False, seed=seed, **kwargs)
        np.testing.assert_allclose(row, plain.audio[0], atol=1e-5)
    scene = pipe("a bell rings twice over steady rain", compose=True, seed=6, **kwargs)
    assert scene.meta["counted_as_asked"] == [6] and scene.meta["composed"].endswith("a bell rings once (x2)")


def test_first_event_starts_where_a_slow_attack_begins_after_a_click():
    """A faint click, a gap, then a strike that swells over 100 ms: the event starts where the swell starts (the
    click left out), not at the first frame near the top."""
    n = SR * 2
    x = np.zeros(n, np.float32)
    x[:80] = 0.05  # a click 20 dB under the strike
    swell = _tone(n, 3200, SR // 2)
    swell[3200 : 3200 + 1600] *= np.linspace(0.0, 1.0, 1600, dtype=np.float32)  # 100 ms attack
    start, end = first_event(x + swell, SR)
    assert 3200 - 320 <= start <= 3200 + 480 and end >= 3200 + SR // 2 - 320
    steady = _tone(n, 800, SR) * (1.0 + 0.3 * np.sin(2 * np.pi * 3 * np.arange(n) / SR)).astype(np.float32)
    assert first_event(steady, SR)[1] >= 800 + SR - 320  # a 3-dB wobble is one event


def test_repeat_event_caps_the_gap_and_never_fades_a_copy_in():
    n = SR * 4
    long = _tone(n, 1600, SR)  # a 1-s event: half of it would be a 0.5-s gap, capped at 0.3 s
    out, onset = repeat_event(long, SR, 2, n)
    event = first_event(long, SR)[1] - first_event(long, SR)[0]
    assert len(out) == (event + int(0.3 * SR)) + event
    beep = _tone(n, 0, 2400)  # from the clip's first sample: no pre-roll, so nothing to fade in
    cut, at = repeat_event(beep, SR, 3, 6000)  # copies every 2000 samples, overlapping; the last one cut
    event = beep[:2560]  # to the frame after it (smoothing; silent there, so its end fade changes nothing)
    expected = np.zeros(6000, np.float32)
    for k in range(3):
        expected[2000 * k : 2000 * k + 2560] += event[: 6000 - 2000 * k]
    assert at == 0 and len(cut) == 6000
    np.testing.assert_allclose(
        cut[:5840], expected[:5840], atol=1e-6
    )  # no copy faded in; the last one's end is
    empty, at = repeat_event(np.zeros(n, np.float32), SR, 3, n)
    assert empty.shape == (0,) and empty.dtype == np.float32 and at == 0


# --- speech and noise at their own guidance (LatentDiffusionConfig.kind_guidance) ---------------------------


@pytest.mark.parametrize(
    "clause,expected",
    [
        ("a man says the word seven", True),
        ('a whispering voice pronounces "go"', True),
        ("there is a fast male voice that speaks the word two", True),
        ("the announcer reads out the scores", True),
        ("a woman shouts", True),
        ("a singer hums a low note", False),  # singing is not speech
        ("a choir sings the word amen", False),
        ("a bird calls twice", False),  # nor a call
        ("a voice plays a single note in the middle register", False),  # the solo voice instrument
        ("a dog barks", False),
        ("a wall clock ticks", False),
        ("a woman speaks over a humming engine", True),  # a hum is no singing
        ("people talking in a cafe", True),
        ("the wind whispers through the trees", False),
        ("a chime announces the next station", False),
    ],
)
def test_spoken_reads_speech_and_not_singing_or_calls(clause, expected):
    assert spoken(clause) is expected
    assert (sound_kind(clause) == "speech") is expected


@pytest.mark.parametrize(
    "clause,kind",
    [
        ("a steady noise hisses", "noise"),
        ("white noise", "noise"),
        ("radio static crackles", "noise"),
        ("a man says the word noise", "speech"),  # speech first
        ("rain falls", None),
        ("a noisy engine", None),
    ],
)
def test_sound_kind(clause, kind):
    assert sound_kind(clause) == kind


def test_speech_parts_are_generated_at_their_kinds_guidance(monkeypatch):
    """A part that asks for speech is denoised at its kind's guidance and the others at ``guidance``: in a scene
    the speech row equals the speech clause made alone at that guidance, the bed row the bed made alone at the
    usual one; a call's own guidance is every part's."""
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    plain = LatentDiffusionPipeline(tiny_model())
    pipe = LatentDiffusionPipeline(tiny_model(kind_guidance={"speech": 3.5}))
    kwargs = {"duration": 0.5, "seed": 5, "progress": False}
    speech = "a man says the word seven"
    alone = pipe(speech, **kwargs)
    assert alone.meta["kind_guidance"] == "speech 3.5" and alone.meta["guidance"] == 2.0
    np.testing.assert_array_equal(alone.audio, plain(speech, guidance=3.5, **kwargs).audio)
    assert not np.array_equal(alone.audio, plain(speech, **kwargs).audio)
    given = pipe(speech, guidance=2.0, **kwargs)  # a call's guidance: every part's, speech included
    assert "kind_guidance" not in given.meta
    np.testing.assert_array_equal(given.audio, plain(speech, **kwargs).audio)
    bell = pipe("a bell rings", **kwargs)  # no speech: the usual guidance, no note of it
    assert "kind_guidance" not in bell.meta
    np.testing.assert_array_equal(bell.audio, plain("a bell rings", **kwargs).audio)

    calls = _capture(monkeypatch)
    prompt = f"{speech} over steady rain"
    scene = pipe(prompt, compose=True, **kwargs)
    assert scene.meta["composed"] == f"background: steady rain | 1: {speech}"
    assert scene.meta["kind_guidance"] == "speech 3.5"
    plain(prompt, compose=True, **kwargs)  # every part at 2.0
    plain(prompt, compose=True, **{**kwargs, "guidance": 3.5})  # every part at 3.5
    (bed, (said,), _), (bed2, (said2,), _), (bed35, (said35,), _) = calls
    def gap(a, b):
        return float(np.abs(a - b).max())

    # the bed at the usual guidance, the speech at its own (a tiny random model: guidance moves it a little)
    assert gap(bed, bed2) < gap(bed, bed35) / 10 and gap(said, said35) < gap(said, said2) / 10
    noise = LatentDiffusionPipeline(tiny_model(kind_guidance={"speech": 3.5, "noise": 1.5}))
    hiss = noise("a steady noise hisses", **kwargs)
    assert hiss.meta["kind_guidance"] == "noise 1.5"
    np.testing.assert_array_equal(hiss.audio, plain("a steady noise hisses", guidance=1.5, **kwargs).audio)
    both = noise(f"{speech} over a steady hiss", compose=True, **kwargs)
    assert both.meta["kind_guidance"] == "noise 1.5, speech 3.5"
    for bad in ({"speech": -1}, {"speech": True}, {"music": 2.0}, [2.0]):
        with pytest.raises(ConfigError, match="kind_guidance="):
            tiny_model(kind_guidance=bad)


def test_speech_parts_keep_their_kinds_room_over_the_bed(monkeypatch):
    """``kind_bed_snr_db``: a spoken part asks its kind's SNR over the bed, the others ``bed_snr_db``; the mix
    is the one :func:`mix_scene` makes from the same parts with those SNRs."""
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    pipe = LatentDiffusionPipeline(tiny_model(bed_snr_db=10.0, kind_bed_snr_db={"speech": 25.0}))
    calls = []

    def spy(bed, fg, sample_rate, snr_db, **kw):
        calls.append(list(snr_db))
        return mix_scene(bed, fg, sample_rate, snr_db=snr_db, **kw)

    import soundsmith.pipelines.latent_diffusion as ld

    monkeypatch.setattr(ld, "mix_scene", spy)
    kwargs = {"duration": 1.0, "seed": 2, "progress": False, "compose": True}
    pipe("over steady rain, a bell rings, then a man says the word seven", **kwargs)
    pipe("a bell rings, then silence, then a gong sounds with rain behind", **kwargs)
    assert calls[0] == [10.0, 25.0] and calls[1][0] == 10.0 and calls[1][2] == 10.0
    for bad in ({"bed_snr_db": -1.0}, {"bed_snr_db": True}, {"kind_bed_snr_db": {"music": 20.0}},
                {"kind_bed_snr_db": {"speech": 50.0}}, {"kind_bed_snr_db": [20.0]}):  # fmt: skip
        with pytest.raises(ConfigError, match="bed_snr_db="):
            tiny_model(**bad)
