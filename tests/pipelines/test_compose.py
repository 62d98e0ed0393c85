"""Layered prompts: the grammar that splits them, the mixer that lays the parts out, and the pipeline wiring."""

from __future__ import annotations

import numpy as np
import pytest

from soundsmith.errors import ConfigError
from soundsmith.pipelines.compose import ScenePlan, active_level_db, active_span, mix_scene, plan_scene

SR = 16000


@pytest.mark.parametrize(
    "prompt,background,foreground",
    [
        ("three beeps over steady rain", "steady rain", ("three beeps",)),
        ("over the sound of rain, a dog barks, then a bell rings", "the sound of rain", ("a dog barks", "a bell rings")),
        ("a scene with gusting wind: a horn plays a note", "gusting wind", ("a horn plays a note",)),
        ("as the wind blows, a snare cracks twice, then a bell rings", "the wind blows", ("a snare cracks twice", "a bell rings")),
        ("a piano plays a chord with a steady hiss behind", "a steady hiss", ("a piano plays a chord",)),
        ("first a man says seven, then a bell rings, with an engine hum in the background", "an engine hum",
         ("a man says seven", "a bell rings")),
        ("an engine hum in the background as a phone rings", "an engine hum", ("a phone rings",)),
        ("a bell rings, while it is raining", "it is raining", ("a bell rings",)),
        ("birds chirp as the sea rolls in", "the sea rolls in", ("birds chirp",)),
        ("rain falls; a dog barks", "rain falls", ("a dog barks",)),
        ("a dog barks twice in the rain", "the rain", ("a dog barks twice",)),
        ("all is quiet; a bell rings, then a gong sounds", None, ("a bell rings", "a gong sounds")),
        ("a bell rings, then a dog barks, followed by a whistle", None, ("a bell rings", "a dog barks", "a whistle")),
    ],
)  # fmt: skip
def test_layered_prompts_split_into_bed_and_ordered_parts(prompt, background, foreground):
    plan = plan_scene(prompt)
    assert plan == ScenePlan(background, foreground)
    assert plan.prompts == ([background] if background else []) + list(foreground)


@pytest.mark.parametrize(
    "prompt",
    [
        "a violin plays a slow rising scale",
        "the trumpet plays the same note over and over",
        "a tone sweeping over two octaves",
        "a man with a deep voice says seven",
        "a piano plays with feeling",
        "in this clip a bell at B4 rings twice",
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
    assert plan_scene("first a beep, then silence, then a beep") == ScenePlan(None, ("a beep", None, "a beep"))
    assert plan_scene("a click, then a short pause") == ScenePlan(None, ("a click", None))
    assert plan_scene("over rain, a bell rings, then silence").prompts == ["rain", "a bell rings"]
    assert plan_scene("birds chirp, then footsteps approach").foreground == ("birds chirp", "footsteps approach")


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
    assert freqs[spec0.argmax()] == pytest.approx(440.0, abs=2) and freqs[spec1.argmax()] == pytest.approx(880.0, abs=2)


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
    assert "composed" not in pipe("a bell rings, then a gong sounds", duration=0.5, compose=False, progress=False).meta
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
        ("three beeps over the steady sound of falling rain", ScenePlan("the steady sound of falling rain", ("three beeps",))),
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
