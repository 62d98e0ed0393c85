"""Held notes tuned to the note a prompt names: the note parser, the pitch measure, the shift, the wiring."""

from __future__ import annotations

import numpy as np
import pytest

from soundsmith.errors import ConfigError
from soundsmith.pipelines.tune import (
    CUT_FADE_S,
    DIRECTION_TRIES,
    MAX_SHIFT_SEMITONES,
    TOLERANCE_SEMITONES,
    asked_direction,
    asked_note,
    asked_pitch,
    asked_register,
    cut_to_direction,
    direction_contour,
    measure_direction,
    measure_note,
    tune,
)

SR = 16000


def _midi_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _buzz(midi: float, seconds: float = 1.0, partials: int = 8, fundamental: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f = _midi_hz(midi)
    x = fundamental * np.sin(2 * np.pi * f * t)
    x += sum(np.sin(2 * np.pi * k * f * t) / k for k in range(2, partials + 1) if k * f < SR / 2)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize(
    "prompt,note",
    [
        ("a harsh buzzer at C3", 48.0),
        ("in this clip a bell at pitch C#4 rings once", 61.0),
        ("there is a bell at pitch A#4 that chimes twice", 70.0),
        ("a clarinet holds a Bb3", 58.0),
        ("an oboe plays E flat 5", 75.0),
        ("a flute at f-sharp 5", 78.0),
        ("gentle middle C held on a grand piano", 60.0),
        ("a tuning fork at concert A", 69.0),
        ("a violin plays the same note over and over on C4", 60.0),  # one note repeated: still one pitch
        ("test tone at A4, 440 hertz", 69.0),
        ("violin bowing one long, strong A4", 69.0),  # an adjective, then the note ends the clause
        ("bass guitar sounding a lone A2", 45.0),
        ("church organ holding the note G3 at full volume", 55.0),
        ("a piano holds A0", 21.0),  # the lowest note read
        ("a piano holds C8", 108.0),  # the highest
        ("a bell at C♯4", 61.0),  # the accidentals as signs
        ("a horn holding B♭3", 58.0),
    ],
)
def test_asked_note_reads_one_held_note(prompt, note):
    assert asked_note(prompt) == note


@pytest.mark.parametrize(
    "prompt",
    [
        "a harsh buzzer",  # no note
        "a piano plays a C major scale starting at C4",  # a phrase: its notes differ from the named one
        "a trumpet plays a little tune on F3",
        "a harp plays an arpeggio from E4",
        "a guitar plays a chord at G3",
        "a sine tone sweeping up from A3",
        "a woman says the word A4",  # a spoken word
        'a man says "C4"',
        "a bell at C4, then a bell at G4",  # two notes
        "a dog barks twice",
        "a B52 bomber flies over",  # a letter and digits inside a word: not a note
        "a 4 second beep at high volume",  # the article and a number: not A4
        "an F1 car engine idles in the pit lane",  # labels in prompts about unpitched sounds
        "a printer feeds an A4 sheet",
        "a C4 charge detonates",
        "a dog barks in room A3",
        "a B-2 bomber flies overhead",
        "a voice announces boarding at gate B4",  # read out
        "a radio announcer reads vitamin B6 facts",
        "a bell rings at gate B4",  # a pitched sound, but the token is a label
        "a piano plays C9",  # above the piano, above MIDI 108
        "a piano holds G#0",  # MIDI 20, under the piano's A0
        "a car door slams at B4",  # a place for a note, but no pitched sound
        "a bell with an A4 sticker rings",  # an article after a word that does not sound a note
        "A4 paper feeds through a printer with a beep",  # a token opening the prompt
    ],
)
def test_asked_note_is_none_without_one_held_note(prompt):
    assert asked_note(prompt) is None


@pytest.mark.parametrize("midi", [45.0, 52.0, 60.0, 69.0, 76.0, 84.0])
def test_measure_note_reads_a_steady_tone(midi):
    assert measure_note(_buzz(midi), SR) == pytest.approx(midi, abs=0.3)


def test_measure_note_takes_the_octave_below_when_its_partial_is_there():
    """A tone whose fundamental is weaker than its octave (YIN can read the octave): the partial at f0 is in the
    spectrum, within 12 dB of the octave's, so the note is f0, not its octave."""
    weak = _buzz(57.0, partials=6, fundamental=0.4)
    assert measure_note(weak, SR) == pytest.approx(57.0, abs=0.3)
    pure_octave = _buzz(69.0, partials=1)  # no partial an octave down: the octave stays
    assert measure_note(pure_octave, SR) == pytest.approx(69.0, abs=0.3)


def test_measure_note_is_none_for_noise_silence_and_glides():
    rng = np.random.default_rng(0)
    assert measure_note((0.3 * rng.standard_normal(SR)).astype(np.float32), SR) is None
    assert measure_note(np.zeros(SR, np.float32), SR) is None
    assert measure_note(np.zeros(100, np.float32), SR) is None
    glide = 0.3 * np.sin(2 * np.pi * np.cumsum(np.geomspace(200, 1600, SR)) / SR)  # three octaves in a second
    assert measure_note(glide.astype(np.float32), SR) is None


def test_tune_shifts_an_off_note_to_the_asked_one_and_keeps_the_length():
    buzz = _buzz(60.0)  # C4 where C3 was asked: an octave sharp, as the default renders low buzzers
    out, shift = tune(buzz, SR, 48.0)
    assert shift == pytest.approx(-12.0, abs=0.3) and isinstance(shift, float) and shift == round(shift, 2)
    assert out.dtype == np.float32 and out.shape == buzz.shape
    assert measure_note(out, SR) == pytest.approx(48.0, abs=0.3)
    up, shift_up = tune(buzz, SR, 63.0)  # three semitones up
    assert shift_up == pytest.approx(3.0, abs=0.3) and measure_note(up, SR) == pytest.approx(63.0, abs=0.3)


def test_tune_leaves_close_notes_noise_and_absurd_shifts_alone():
    buzz = _buzz(60.0)
    near, shift = tune(buzz, SR, 60.0 + TOLERANCE_SEMITONES * 0.5)
    assert shift == 0.0 and near is buzz
    noise = (0.3 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    same, shift = tune(noise, SR, 48.0)
    assert shift == 0.0 and same is noise
    far, shift = tune(buzz, SR, 60.0 + MAX_SHIFT_SEMITONES + 2)
    assert shift == 0.0 and far is buzz


# --- the pipeline ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe():
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    return LatentDiffusionPipeline(tiny_model(compose=True))


def _spy(monkeypatch, shift=-12.0):
    import soundsmith.pipelines.latent_diffusion as ld

    calls = []

    def fake(clip, sample_rate, note, strike=False, measured=None):
        calls.append((note, strike) if strike else note)
        return clip * 0.5, shift

    monkeypatch.setattr(ld, "tune_note", fake)
    return calls


def test_tune_applies_to_prompts_naming_a_note_and_is_written_in_the_provenance(pipe, monkeypatch):
    calls = _spy(monkeypatch)
    kwargs = {"duration": 0.5, "seed": 3, "progress": False}
    plain = pipe("a harsh buzzer at C3", tune=False, **kwargs)
    tuned = pipe("a harsh buzzer at C3", tune=True, **kwargs)
    assert (
        calls == [48.0] and tuned.meta["tuned_semitones"] == [[-12.0]] and "tuned_semitones" not in plain.meta
    )
    np.testing.assert_allclose(
        tuned.audio[0], plain.audio[0] * 0.5, atol=1e-6
    )  # the tuned clip is the output
    pipe("a harsh buzzer", tune=True, **kwargs)  # no note: nothing to tune
    assert calls == [48.0]


def test_each_composed_part_is_tuned_to_its_own_note(pipe, monkeypatch):
    calls = _spy(monkeypatch, shift=0.0)
    out = pipe(
        "a bell at C4 rings, then a buzzer at D3 buzzes, over steady rain",
        tune=True,
        duration=1.0,
        progress=False,
    )
    assert calls == [60.0, 50.0] and "tuned_semitones" not in out.meta  # no shift was needed: none written
    calls.clear()
    pipe("a bell at C4 rings three times", tune=True, duration=1.0, progress=False)
    assert calls == [(60.0, True)]  # a counted part: its once version, tuned with its timing kept
    calls.clear()
    pipe("a bell at C4 rings once", tune=True, duration=1.0, progress=False)
    pipe("steady rain, and a device beeps twice (low register)", tune=True, duration=1.0, progress=False)
    assert calls == [(60.0, True), ((48, 59), True)]  # once: one strike; a register, by octaves


def test_tune_is_off_for_audio_to_audio_and_the_configs_tune_is_the_default(monkeypatch):
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    calls = _spy(monkeypatch)
    pipe = LatentDiffusionPipeline(tiny_model(tune=True))
    pipe("a buzzer at C3", duration=0.5, progress=False)
    assert calls == [48.0]
    init = np.zeros(8000, np.float32)
    init[:800] = 0.3
    pipe("a buzzer at C3", init_audio=init, strength=0.5, progress=False)
    pipe("a buzzer at C3", duration=0.5, tune=False, progress=False)
    assert calls == [48.0]
    with pytest.raises(ConfigError, match="tune='on' must be true or false"):
        pipe("a buzzer at C3", duration=0.5, tune="on", progress=False)
    with pytest.raises(ConfigError, match="LatentDiffusionConfig.tune=1"):
        tiny_model(tune=1)


def test_the_shifts_follow_their_candidates_through_the_ranking(pipe, monkeypatch):
    import soundsmith.pipelines.latent_diffusion as ld

    shifts = iter([-12.0, 3.0])
    monkeypatch.setattr(ld, "tune_note", lambda clip, sr, note, strike=False: (clip, next(shifts)))
    monkeypatch.setattr(pipe, "clap_scores", lambda audio, prompt: np.array([0.1, 0.9]))
    out = pipe("a harsh buzzer at C3", tune=True, duration=0.5, seed=1, num_candidates=2, progress=False)
    assert out.meta["candidate_seeds"] == [2, 1]  # the second candidate ranks first, its shift with it
    assert out.meta["tuned_semitones"] == [[3.0], [-12.0]]


def test_a_clause_asking_several_strikes_is_not_tuned(pipe, monkeypatch):
    calls = _spy(monkeypatch)
    pipe("a beeper at C3 beeps ten times", tune=True, duration=1.0, progress=False)  # more than MAX_REPEATS
    pipe("a beeper at C3 beeps twice", tune=True, compose=False, duration=1.0, progress=False)
    assert calls == []
    pipe("a beeper at C3 beeps", tune=True, duration=1.0, progress=False)
    assert calls == [48.0]


def test_tune_leaves_non_finite_audio_alone():
    bad = _buzz(60.0)
    bad[100] = np.nan
    out, shift = tune(bad, SR, 48.0)
    assert shift == 0.0 and out is bad


def _tone(midi: float, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * _midi_hz(midi) * t)).astype(np.float32)


def test_measure_note_reads_only_the_sounding_frames():
    """Frames 25 dB or more under the loudest are not sounding: a long faint tone does not move the median."""
    faint = np.concatenate([_tone(60.0, 1.0), _tone(67.0, 3.0, amp=0.3 * 10 ** (-30 / 20))])
    assert measure_note(faint, SR) == pytest.approx(60.0, abs=0.3)
    quieter = np.concatenate([_tone(60.0, 1.0), _tone(67.0, 3.0, amp=0.3 * 10 ** (-15 / 20))])
    assert measure_note(quieter, SR) == pytest.approx(67.0, abs=0.3)  # 15 dB down still sounds: 3 s of G4


def test_measure_note_needs_half_of_the_frames_on_one_note():
    assert measure_note(np.concatenate([_tone(60.0, 1.2), _tone(64.0, 0.8)]), SR) == pytest.approx(
        60.0, abs=0.3
    )
    assert measure_note(np.concatenate([_tone(60.0, 1.0), _tone(64.0, 1.0)]), SR) is None  # two notes, 50/50


def _two_partials(below_db: float, noise_db: float | None = None) -> np.ndarray:
    """A at 220 Hz ``below_db`` under its octave at 440 Hz (plus white noise ``noise_db`` under the octave)."""
    t = np.arange(2 * SR) / SR
    x = 10 ** (below_db / 20) * np.sin(2 * np.pi * 220.0 * t) + np.sin(2 * np.pi * 440.0 * t)
    if noise_db is not None:
        x = x + 10 ** (noise_db / 20) * np.random.default_rng(0).standard_normal(t.size)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.mark.parametrize("below_db,halved", [(-3.0, True), (-10.0, True), (-14.0, False), (-30.0, False)])
def test_the_octave_below_needs_its_partial_within_12_db(below_db, halved):
    from soundsmith.pipelines.tune import _octave_below

    assert _octave_below(_two_partials(below_db), SR, 440.0) is halved


def test_the_octave_below_needs_its_partial_to_stand_out_of_the_noise():
    from soundsmith.pipelines.tune import _octave_below

    assert _octave_below(_two_partials(-6.0, noise_db=-60.0), SR, 440.0)
    assert not _octave_below(_two_partials(-6.0, noise_db=15.0), SR, 440.0)  # 220 Hz under 15 dB out of it
    assert not _octave_below(_two_partials(-6.0)[:4000], SR, 440.0)  # shorter than one analysis frame
    assert not _octave_below(_two_partials(-6.0), SR, 50.0)  # the octave below would be under 30 Hz


def test_measure_note_halves_a_reading_at_the_octave(monkeypatch):
    """When YIN reads the octave (as it did on three of the default's bells), the partial an octave below makes
    the note; without that partial the reading stands."""
    import librosa

    monkeypatch.setattr(librosa, "yin", lambda x, **kw: np.full(1 + x.size // kw["hop_length"], 440.0))
    assert measure_note(_two_partials(-6.0), SR) == pytest.approx(57.0, abs=0.01)
    assert measure_note(_two_partials(-30.0), SR) == pytest.approx(69.0, abs=0.01)


@pytest.mark.parametrize(
    "prompt,register",
    [
        ("listen: a device beeps twice (low register)", (48, 59)),
        ("there is a harsh buzzer (low register) that buzzes", (48, 59)),
        ("in this clip a steady tone (high register) plays", (72, 83)),
        ("a bell in the middle register rings once", (60, 71)),
        ("a high-pitched beep", (72, 83)),
        ("a low pitched alarm", (48, 59)),
        ("a deep electronic hum", (48, 59)),  # one word between the register and the source
        ("a high bell chimes", (72, 83)),
        ("a low, steady hum", (48, 59)),  # a comma between the register and the source
        ("a low and steady hum", (48, 59)),
        ("a high, piercing, shrill beep", (72, 83)),  # three words between
        ("a deep bass hum", (48, 59)),  # an instrument word before the source: still a hum
        ("a small brass bell rings (high register)", (72, 83)),
        ("a synth beep (low register)", (48, 59)),
        ("a low-frequency drone", (48, 59)),
        ("a beep at a high pitch", (72, 83)),
        ("a bell in the upper register", (72, 83)),
        ("a bass register hum", (48, 59)),
        ("a treble register chime", (72, 83)),
        ("a mid range tone", (60, 71)),
        ("a low ping", (48, 59)),
        ("a bell with a middle pitch", (60, 71)),
        ("a low battery beep (high register)", (72, 83)),  # "low battery" is no register; the rest is read
        ("a high and very piercing beep", (72, 83)),  # "and" is not one of the three words
    ],
)
def test_asked_register_reads_the_register_of_a_pitched_event(prompt, register):
    assert asked_register(prompt) == register and asked_pitch(prompt) == register


@pytest.mark.parametrize(
    "prompt",
    [
        "a high volume beep",  # loudness, not register
        "a low battery beep",
        "a cello plays one note in the low register",  # an instrument: a third of its own range
        "a low beep and a high beep",  # two registers
        "a high tone sweeps upward",  # a sweep: a phrase, not one held pitch
        "a man with a low voice says yes",  # speech
        "a dog barks (low register)",  # no pitched event
        "a beep",  # no register
        "a piano tone (low register)",  # an instrument's tone: a third of the piano's range
        "a singer hums (low register)",
        "a low fuel alarm",
        "a high school bell rings",
        "a low quality recording of a beep",
        "a high, piercing, very shrill beep",  # the source four words on: not the adjective's
    ],
)
def test_asked_register_is_none_without_one_register_of_a_pitched_event(prompt):
    assert asked_register(prompt) is None


def test_a_named_note_wins_over_a_register():
    assert asked_register("a beeper at C3 beeps (low register)") is None
    assert asked_pitch("a beeper at C3 beeps (low register)") == 48.0
    assert asked_pitch("a beep") is None


def test_tune_moves_a_clip_into_the_asked_register_by_whole_octaves():
    buzz = _buzz(64.0)  # E4, asked low (48-59): an octave down keeps the note name, E3
    out, shift = tune(buzz, SR, (48, 59))
    assert shift == -12.0 and measure_note(out, SR) == pytest.approx(52.0, abs=0.3)
    deep = _buzz(52.0)  # E3 asked high (72-83): two octaves up, into it
    high, up = tune(deep, SR, (72, 83))
    assert up == 24.0 and measure_note(high, SR) == pytest.approx(76.0, abs=0.5)
    inside, none = tune(_buzz(59.4), SR, (48, 59))  # within half a semitone of the register: left
    assert none == 0.0
    edge, down = tune(_buzz(59.8), SR, (48, 59))
    assert down == -12.0


def _ring(midi: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (_buzz(midi, seconds) * np.exp(-t / 0.08)).astype(np.float32)  # a strike that dies in ~0.3 s


def _rises_after_peak_db(x: np.ndarray) -> float:
    """The largest rise of the 10-ms RMS level (dB) after its loudest frame."""
    db = 20 * np.log10(np.sqrt(np.mean(np.square(x[: x.size // 160 * 160].reshape(-1, 160)), axis=1)) + 1e-9)
    after = db[int(np.argmax(db)) :]
    return float(np.max(after - np.minimum.accumulate(after)))


def test_a_strike_played_slower_does_not_beat_again():
    """A ring of two close partials beats; played an octave slower it beats at half the rate, which the event
    counter hears as more strikes. Tuned as a strike its level only falls after its top."""
    t = np.arange(SR) / SR
    f = _midi_hz(72.0)
    ring = (0.3 * (np.sin(2 * np.pi * f * t) + 0.8 * np.sin(2 * np.pi * (f + 5.0) * t)) * np.exp(-t / 0.4))
    ring = ring.astype(np.float32)
    held, shift = tune(ring, SR, 60.0)
    struck, shift_struck = tune(ring, SR, 60.0, strike=True)
    assert shift == shift_struck == pytest.approx(-12.0, abs=0.3)
    assert _rises_after_peak_db(held) > 6.0  # it beats
    assert _rises_after_peak_db(struck) < 3.5  # the counter hears a rise of 4 dB
    assert measure_note(struck, SR) == pytest.approx(60.0, abs=0.5)
    up, shift_up = tune(ring, SR, 75.0, strike=True)  # up: by the phase vocoder, as a held note
    assert shift_up == pytest.approx(3.0, abs=0.3) and measure_note(up, SR) == pytest.approx(75.0, abs=0.5)


@pytest.mark.parametrize("strike", [False, True])
def test_a_shifted_sound_starts_where_it_started(strike):
    """Played slower from t = 0, a strike at 0.9 s would move to 1.8 s (an octave down) or, with its level over
    time put back, vanish; it is played slower from where it starts sounding."""
    ring = np.concatenate([np.zeros(int(0.9 * SR), np.float32), _ring(72.0, 1.5)])
    out, shift = tune(ring, SR, 60.0, strike=strike)
    assert shift == pytest.approx(-12.0, abs=0.3) and out.shape == ring.shape
    level = np.abs(out).reshape(-1, SR // 100).max(axis=1)
    onset = int(np.argmax(level > 0.05 * level.max()))
    assert 88 <= onset <= 92  # 10-ms frames: at 0.9 s
    assert np.abs(out).max() > 0.4 * np.abs(ring).max()  # and as loud, nearly
    assert measure_note(out, SR) == pytest.approx(60.0, abs=0.5)


# --- pitch direction -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt,direction",
    [
        ("in this clip the cello plays an F major rising scale slowly", 1),
        ("a saxophone plays a falling scale starting at A#4", -1),
        ("a cello plays a G# minor scale going down at a fast pace", -1),
        ("a tone sliding up rises", 1),
        ("electronic tone gliding upward in pitch", 1),
        ("pitch dive: a pure electronic note sliding down quietly", -1),
        ("trumpet climbing through a scale, softly", 1),
        ("piano scale tumbling downward, loud", -1),
        ("as rain falls, a flute plays a rising scale", 1),  # the rain's clause asks no pitch
    ],
)
def test_asked_direction_reads_a_rising_or_falling_phrase(prompt, direction):
    assert asked_direction(prompt) == direction


@pytest.mark.parametrize(
    "prompt",
    [
        "rain falls",  # no pitched sound
        "the rising wind",
        "as rain falls, a flute plays a C major broken chord",  # the fall is the rain's
        "a siren rising and falling",  # both ways
        "a rising scale, then a falling scale",
        "a man says the word up",  # speech
        "a cello plays a long note",  # no direction
    ],
)
def test_asked_direction_is_none_without_one_direction_of_a_pitched_sound(prompt):
    assert asked_direction(prompt) is None


def _glide(start_midi: float, end_midi: float, seconds: float = 2.0) -> np.ndarray:
    midi = np.linspace(start_midi, end_midi, int(seconds * SR))
    phase = 2 * np.pi * np.cumsum(440.0 * 2 ** ((midi - 69) / 12)) / SR
    return (0.3 * np.sin(phase)).astype(np.float32)


def test_measure_direction_reads_rising_falling_and_steady_pitch():
    assert measure_direction(_glide(55, 67), SR) == 1
    assert measure_direction(_glide(67, 55), SR) == -1
    assert measure_direction(_glide(60, 60.5), SR) == 0  # under a semitone: steady
    assert measure_direction(np.zeros(SR, np.float32), SR) is None
    assert measure_direction(np.zeros(1000, np.float32), SR) is None  # too short


def test_a_part_that_moves_against_its_direction_is_drawn_again(pipe, monkeypatch):
    import soundsmith.pipelines.latent_diffusion as ld

    def falls_then_rises():
        readings = iter([-1, 1])  # the first draw falls, the second rises
        monkeypatch.setattr(ld, "measure_direction", lambda clip, sr, contour=None: next(readings))

    kwargs = {"duration": 0.5, "seed": 4, "progress": False, "compose": False}
    plain = pipe("a flute plays a rising scale", tune=False, **kwargs)
    falls_then_rises()
    out = pipe("a flute plays a rising scale", tune=True, **kwargs)
    assert out.meta["redrawn_for_direction"] == [1] and "redrawn_for_direction" not in plain.meta
    assert not np.allclose(out.audio, plain.audio)  # the second draw is the output
    falls_then_rises()
    again = pipe("a flute plays a rising scale", tune=True, **kwargs)
    np.testing.assert_array_equal(again.audio, out.audio)  # the same seed: the same redraw
    monkeypatch.setattr(ld, "measure_direction", lambda clip, sr, contour=None: -1)  # always the other way: tries run out
    stuck = pipe("a flute plays a rising scale", tune=True, **kwargs)
    assert stuck.meta["redrawn_for_direction"] == [DIRECTION_TRIES]
    monkeypatch.setattr(ld, "measure_direction", lambda clip, sr, contour=None: pytest.fail("no direction asked"))
    pipe("a flute plays a long note", tune=True, **kwargs)


def test_a_steady_or_unreadable_part_is_drawn_again_and_never_beats_a_draw_that_moves_as_asked(pipe, monkeypatch):
    import soundsmith.pipelines.latent_diffusion as ld

    kwargs = {"duration": 0.5, "seed": 4, "progress": False, "compose": False}
    prompt = "a flute plays a rising scale"

    def readings(*values):
        it = iter(values)
        monkeypatch.setattr(ld, "measure_direction", lambda clip, sr, contour=None: next(it))

    draws = []
    for first in (0, None):  # steady, or too few sounding frames to tell: drawn again; the rise is kept
        readings(first, 1)
        out = pipe(prompt, tune=True, **kwargs)
        assert out.meta["redrawn_for_direction"] == [1]
        draws.append(out.audio)
    np.testing.assert_array_equal(draws[0], draws[1])
    readings(-1, 1)
    np.testing.assert_array_equal(pipe(prompt, tune=True, **kwargs).audio, draws[0])  # the same second draw
    first_draw = pipe(prompt, tune=False, **kwargs).audio
    # steady, then falling twice: the tries run out and the first draw (steady) is kept, not the last (falling)
    readings(*([0] + [-1] * DIRECTION_TRIES))
    out = pipe(prompt, tune=True, **kwargs)
    assert out.meta["redrawn_for_direction"] == [DIRECTION_TRIES]
    np.testing.assert_array_equal(out.audio, first_draw)
    # falling, then steady, then falling: the steady second draw is kept
    readings(-1, 0, *([-1] * DIRECTION_TRIES))
    np.testing.assert_array_equal(pipe(prompt, tune=True, **kwargs).audio, draws[0])
    # steady, steady, falling: the first steady draw, not the later one
    readings(0, *([0] * (DIRECTION_TRIES - 1)), -1)
    np.testing.assert_array_equal(pipe(prompt, tune=True, **kwargs).audio, first_draw)


def test_only_the_part_that_asks_a_direction_is_checked_and_drawn_again(pipe, monkeypatch):
    import soundsmith.pipelines.latent_diffusion as ld

    seen = []

    def reading(clip, sr, contour=None):
        seen.append(clip.copy())
        return -1 if len(seen) == 1 else 1

    monkeypatch.setattr(ld, "measure_direction", reading)
    out = pipe("a flute plays a rising scale over steady rain", tune=True, duration=1.0, seed=2, progress=False)
    assert out.meta["composed"].startswith("background: steady rain") and len(seen) == 2  # the scale, twice
    assert out.meta["redrawn_for_direction"] == [1]


def test_a_strike_after_a_noisy_lead_in_stays_where_it_was():
    """Noise 30 dB under the strike before it: the strike, not the noise, is where playing slower starts."""
    noise = 0.3 * 10 ** (-30 / 20) * np.random.default_rng(3).standard_normal(int(0.9 * SR))
    t = np.arange(int(1.5 * SR)) / SR
    ring = (_buzz(72.0, 1.5) * np.exp(-t / 0.4)).astype(np.float32)
    clip = np.concatenate([noise.astype(np.float32), ring])
    out, shift = tune(clip, SR, 60.0, strike=True)
    assert shift == pytest.approx(-12.0, abs=0.3)
    level = np.abs(out).reshape(-1, SR // 100).max(axis=1)
    assert 88 <= int(np.argmax(level > 0.5 * level.max())) <= 93  # still at 0.9 s


def _beeps(midi: float, every: float, count: int, seconds: float = 4.0) -> np.ndarray:
    out = np.zeros(int(seconds * SR), np.float32)
    beep = _tone(midi, 0.15) * np.hanning(int(0.15 * SR)).astype(np.float32) ** 0.2
    for i in range(count):
        start = int((0.2 + i * every) * SR)
        out[start : start + beep.size] = beep
    return out


def _onsets(x: np.ndarray) -> list[int]:
    """10-ms frames where the level rises past half its top."""
    level = np.abs(x[: x.size // 160 * 160]).reshape(-1, 160).max(axis=1)
    loud = level > 0.5 * level.max()
    return [i for i in range(1, loud.size) if loud[i] and not loud[i - 1]] + ([0] if loud[0] else [])


def test_a_clip_of_several_events_keeps_its_rhythm_when_shifted_down():
    """Beeps once a second asked an octave lower: played slower they would come every two seconds."""
    beeps = _beeps(76.0, 1.0, 3)
    out, shift = tune(beeps, SR, (60, 71))
    assert shift == -12.0
    assert _onsets(out) == pytest.approx(_onsets(beeps), abs=6)  # within 60 ms (played slower: 1 s later)
    assert measure_note(out, SR) == pytest.approx(64.0, abs=0.5)


def test_even_decay_leaves_the_lead_in_and_the_noise_under_the_ring():
    from soundsmith.pipelines.tune import _even_decay

    rng = np.random.default_rng(5)
    lead = (1e-4 * rng.standard_normal(SR // 2)).astype(np.float32)  # -80 dB, before the top
    tail = (1e-4 * rng.standard_normal(SR // 2)).astype(np.float32)  # after the ring, far under it, in bursts
    tail[np.arange(tail.size) // 480 % 2 == 1] *= 0.01  # (30 ms on, 30 ms off: dips that are not a ring's)
    clip = np.concatenate([lead, _ring(60.0, 0.5), tail])
    out = _even_decay(clip, SR)
    np.testing.assert_array_equal(out[: SR // 2 - 160], clip[: SR // 2 - 160])
    np.testing.assert_allclose(out[-SR // 2 :], clip[-SR // 2 :], rtol=1e-5, atol=1e-12)
    assert _even_decay(np.zeros(SR, np.float32), SR).tolist() == [0.0] * SR


def test_a_tuned_ring_that_outlasts_its_spacing_is_repeated_as_generated(pipe, monkeypatch):
    """The once-part, tuned, holds no event to repeat (silenced here); as generated it does: the generated one
    is repeated, and no shift is reported for it (it was not used)."""
    import soundsmith.pipelines.latent_diffusion as ld

    monkeypatch.setattr(ld, "tune_note", lambda clip, sr, note, strike=False: (clip * 0.0, -12.0))
    monkeypatch.setattr(ld, "has_event", lambda clip, sr, spacing=None: bool(np.any(clip)))
    out = pipe("a bell at C4 rings three times", tune=True, duration=1.0, progress=False)
    assert "tuned_semitones" not in out.meta and "counted_as_asked" not in out.meta
    assert np.any(out.audio)
    monkeypatch.setattr(ld, "has_event", lambda clip, sr, spacing=None: False)  # neither has one: made as asked
    out = pipe("a bell at C4 rings three times", tune=True, duration=1.0, progress=False)
    assert "tuned_semitones" not in out.meta and out.meta["counted_as_asked"] == [0]


def test_a_held_sound_with_brief_dips_is_one_event():
    """A harsh buzzer whose level dips for 20 ms now and then is still played slower (a phase vocoder makes it
    phasey); beeps with 100-ms gaps are several events."""
    from soundsmith.pipelines.tune import _has_gaps

    buzz = _buzz(60.0, 2.0)
    for at in (0.5, 1.1, 1.6):
        buzz[int(at * SR) : int((at + 0.02) * SR)] *= 0.02  # a 34-dB dip
    assert not _has_gaps(buzz, SR)
    assert _has_gaps(_beeps(76.0, 0.3, 3), SR)  # 150-ms beeps, 150-ms gaps
    assert not _has_gaps(np.zeros(SR, np.float32), SR)


# --- answers to mutation testing (docs/testing.md) --------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt,direction",
    [("a siren sweeps upward", 1), ("a scale, then a tone going down", -1)],
)
def test_asked_direction_from_a_phrase_word_alone(prompt, direction):
    assert asked_direction(prompt) == direction  # "siren": a contour, not a pitched source of its own


def test_asked_direction_is_none_when_one_clause_goes_both_ways_and_another_one_way():
    assert asked_direction("a tone rising and falling, then a scale going up") is None


def test_measure_direction_reads_notes_not_a_noisy_tail():
    """A rise, then a second of noise as loud: YIN reads a pitch in every noise frame too; only the frames that
    repeat at their period count, so the rise is what is read."""
    noise = 0.2 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    clip = np.concatenate([_glide(55, 62, 1.5), noise])
    assert measure_direction(clip, SR) == 1
    assert measure_direction(np.concatenate([_glide(62, 55, 1.5), noise]), SR) == -1
    assert measure_direction(noise, SR) is None  # no note at all: nothing to read


def test_measure_direction_compares_the_end_with_the_start():
    """Up an octave in the first half, then down past the start: the middle is high, the end is low."""
    half = _glide(60, 72, 1.0)
    path = np.concatenate([half, _glide(72, 57, 1.0)])
    assert measure_direction(path, SR) == -1
    assert measure_direction(_glide(60, 61.5, 2.0), SR) == 1  # a semitone and a half: rising


def _scale(notes: list[float], note_s: float = 0.3) -> np.ndarray:
    return np.concatenate([_buzz(m, note_s) for m in notes])


def test_a_phrase_that_rises_then_turns_back_is_cut_where_it_last_rises():
    """Up a fifth, then back to the root and held: judged end against start it falls; cut, it rises."""
    up = [60, 62, 64, 65, 67]
    phrase = _scale(up + [60] * 6)
    assert measure_direction(phrase, SR) == -1
    cut = cut_to_direction(phrase, SR, want=1)
    assert cut is not None and cut.shape == phrase.shape and measure_direction(cut, SR) == 1
    contour = direction_contour(phrase, SR)  # read once, given to both: the same answers
    assert measure_direction(phrase, SR, contour=contour) == -1
    np.testing.assert_array_equal(cut_to_direction(phrase, SR, want=1, contour=contour), cut)
    sounding = np.flatnonzero(np.abs(cut) > 1e-6)
    top_ends = len(up) * int(0.3 * SR)  # where the fifth (the top) ends and the root comes back
    assert top_ends - int(0.15 * SR) <= sounding[-1] <= top_ends + int(0.05 * SR)
    kept = top_ends - int((0.15 + CUT_FADE_S) * SR)
    np.testing.assert_array_equal(cut[:kept], phrase[:kept])
    assert cut_to_direction(phrase, SR, want=-1) is None  # no stretch from its start falls
    falling = cut_to_direction(_scale([67, 65, 64, 62, 60] + [67] * 6), SR, want=-1)
    assert falling is not None and measure_direction(falling, SR) == -1


def test_a_phrase_is_not_cut_when_it_moves_as_asked_or_cannot_be_read():
    rising = _scale([60, 62, 64, 65, 67, 69])
    assert cut_to_direction(rising, SR, want=1) is None  # already rises
    assert cut_to_direction(np.zeros(SR, np.float32), SR, want=1) is None  # silence
    assert cut_to_direction(np.zeros(1000, np.float32), SR, want=1) is None  # too short
    assert cut_to_direction(_scale([60] * 8), SR, want=1) is None  # one held note: nothing moves
    # the rise within the first frames only (under half of the phrase): not kept as the phrase
    assert cut_to_direction(_scale([60, 64] + [57] * 10, 0.2), SR, want=1) is None


def test_a_part_no_draw_moves_as_asked_is_cut_where_it_last_did(pipe, monkeypatch):
    import soundsmith.pipelines.latent_diffusion as ld

    kwargs = {"duration": 0.5, "seed": 4, "progress": False, "compose": False, "tune": True}
    prompt = "a flute plays a rising scale"
    first_draw = pipe(prompt, **{**kwargs, "tune": False}).audio
    cuts = []

    def cut(clip, sr, want, contour=None):  # stands for a cut that rises: the clip at half its level
        cuts.append(want)
        return clip * 0.5

    monkeypatch.setattr(ld, "cut_to_direction", cut)
    monkeypatch.setattr(ld, "measure_direction", lambda clip, sr, contour=None: 1 if cuts and len(cuts) == 1 else 0)
    out = pipe(prompt, **kwargs)  # every draw stays; the first draw, cut, rises
    assert cuts == [1] and out.meta["cut_for_direction"] == [1]
    assert out.meta["redrawn_for_direction"] == [DIRECTION_TRIES]
    np.testing.assert_allclose(out.audio, first_draw * 0.5, atol=1e-6)
    cuts.clear()
    monkeypatch.setattr(ld, "measure_direction", lambda clip, sr, contour=None: 0)  # no cut rises: the first draw
    kept = pipe(prompt, **kwargs)
    assert len(cuts) == DIRECTION_TRIES + 1 and "cut_for_direction" not in kept.meta
    np.testing.assert_array_equal(kept.audio, first_draw)


def test_tune_down_by_a_fifth_and_up_keep_the_length_and_the_end():
    buzz = _buzz(60.0, 2.0)
    down, shift = tune(buzz, SR, 55.0)  # played slower by 2 ** (5 / 12)
    assert shift == pytest.approx(-5.0, abs=0.3) and measure_note(down, SR) == pytest.approx(55.0, abs=0.3)
    up, shift = tune(buzz, SR, 60.8)  # under a semitone up: still the phase vocoder, not played faster
    assert up.shape == buzz.shape and shift == pytest.approx(0.8, abs=0.3)
    assert np.abs(up[-int(0.05 * SR) :]).max() > 0.1 * np.abs(buzz).max()  # its end still sounds
    assert up[0] != 0.0 or np.abs(up[:160]).max() > 0.0


def test_a_register_out_of_reach_leaves_the_clip():
    """A tone at 95 asked low: the nearest octave inside the register is 36 semitones away (over the limit)."""
    tone = _tone(95.0, 1.0)
    out, shift = tune(tone, SR, (48, 59))
    assert shift == 0.0 and out is tone


def test_even_decay_leaves_a_plain_decay_alone():
    """Dips are filled; a level that only falls has none: a ring without beats comes out as it went in."""
    from soundsmith.pipelines.tune import _even_decay

    ring = _ring(60.0, 1.0)
    np.testing.assert_allclose(_even_decay(ring, SR), ring, rtol=1e-4, atol=1e-7)


def test_pitch_error_is_the_distance_to_a_note_or_into_a_register():
    from soundsmith.pipelines.tune import pitch_error

    a4 = _buzz(69)
    assert pitch_error(a4, SR, 69.0) == pytest.approx(0.0, abs=0.2)
    assert pitch_error(a4, SR, 60.0) == pytest.approx(9.0, abs=0.2)
    assert pitch_error(a4, SR, (72, 83)) == pytest.approx(3.0, abs=0.2)  # below the high register
    assert pitch_error(a4, SR, (60, 71)) == 0.0  # inside the middle one
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    assert pitch_error(noise, SR, 69.0) is None


@pytest.mark.parametrize(
    "notes,redraws,kept_first",
    [
        ([53.0, 48.5], 1, False),  # 5 semitones off C3, then near enough: kept, no third
        ([53.0, 54.0, 41.0], 2, True),  # both redraws further off: the first draw stays
        ([53.0, None, 57.0], 2, True),  # an unreadable draw is never kept
        ([48.8], 0, True),  # within a semitone: not drawn again
        ([None], 0, True),  # no steady pitch: not drawn again
    ],
)
def test_pitch_tries_draw_an_off_pitch_part_again_and_keep_the_nearest(monkeypatch, notes, redraws, kept_first):
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    import soundsmith.pipelines.latent_diffusion as ld
    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    calls = _spy(monkeypatch, shift=0.0)
    tuned_with = []
    spy = ld.tune_note
    monkeypatch.setattr(ld, "tune_note", lambda *a, **kw: (tuned_with.append(kw.get("measured")), spy(*a, **kw))[1])
    seen = iter(notes)
    monkeypatch.setattr(ld, "measure_note", lambda clip, sr: next(seen))
    kwargs = {"duration": 0.5, "seed": 3, "progress": False, "tune": True}
    base = LatentDiffusionPipeline(tiny_model(compose=True))("a harsh buzzer at C3", **kwargs)
    out = LatentDiffusionPipeline(tiny_model(compose=True, pitch_tries=2))("a harsh buzzer at C3", **kwargs)
    assert out.meta.get("redrawn_for_pitch", [0]) == [redraws]
    assert np.array_equal(out.audio, base.audio) == kept_first
    assert next(seen, "done") == "done"  # every draw was measured, none more
    # the tuner is given the kept draw's reading instead of reading it again (the second call: pitch_tries 2)
    kept = notes[0] if kept_first else notes[-1]
    assert calls == [48.0, 48.0] and tuned_with[-1] == kept
    with pytest.raises(ConfigError, match=r"pitch_tries=9 must be an integer from 0 to 8"):
        tiny_model(pitch_tries=9)


def test_shift_in_mel_serves_notes_from_c4_up_when_they_land_and_the_old_ways_otherwise():
    calls = []

    def landing(x, semitones):  # a re-render that lands: the buzz at the asked note
        calls.append(semitones)
        return _buzz(64)

    def off(x, semitones):  # one that does not: the clip unchanged
        calls.append(semitones)
        return x

    a4 = _buzz(69)
    out, shift = tune(a4, SR, 64.0, shift_in_mel=landing)
    assert calls == [pytest.approx(-5.0, abs=0.3)] and shift == pytest.approx(-5.0, abs=0.3)
    np.testing.assert_array_equal(out, _buzz(64))  # the re-render is the output
    calls.clear()
    out, shift = tune(a4, SR, 64.0, shift_in_mel=off)  # did not land: shifted as without it
    assert len(calls) == 1
    np.testing.assert_array_equal(out, tune(a4, SR, 64.0)[0])
    assert measure_note(out, SR) == pytest.approx(64.0, abs=0.5)
    calls.clear()
    low = _buzz(52)  # below C4: never re-rendered in the mel
    np.testing.assert_array_equal(tune(low, SR, 48.0, shift_in_mel=landing)[0], tune(low, SR, 48.0)[0])
    assert calls == []


def test_tune_in_mel_reaches_tune_and_the_pipeline_re_renders_in_the_mel(monkeypatch):
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    import soundsmith.pipelines.latent_diffusion as ld
    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    seen = []
    monkeypatch.setattr(ld, "tune_note", lambda clip, sr, note, strike=False, **kw: (seen.append(kw), (clip, 0.0))[1])
    kwargs = {"duration": 0.5, "seed": 3, "progress": False, "tune": True}
    LatentDiffusionPipeline(tiny_model(compose=True))("a harsh buzzer at C4", **kwargs)
    pipe = LatentDiffusionPipeline(tiny_model(compose=True, tune_in_mel=True))
    pipe("a harsh buzzer at C4", **kwargs)
    assert seen[0] == {} and seen[1] == {"shift_in_mel": pipe.shift_in_mel}
    clip = _buzz(69, seconds=0.5)
    made = pipe.shift_in_mel(clip, 3.0)
    assert made.shape == clip.shape and made.dtype == np.float32 and np.isfinite(made).all()
    with pytest.raises(ConfigError, match="tune_in_mel=1 must be true or false"):
        tiny_model(tune_in_mel=1)


@pytest.mark.parametrize(
    "prompt,span",
    [
        ("in this clip a cello plays a brief melody in the middle register slowly", (47, 57)),
        ("the banjo plays a little tune starting at C5 at a fast pace", (72, 84)),  # the named root's register
        ("a flute plays a single note in the low register", (60, 71)),  # a held note without a name
        ("a cello plays one note on C3", None),  # a named held note: pitch_tries' ask
        ("a beeper beeps twice (low register)", None),  # a sound event's register: moved by octaves
        ("a man says the word up in a low voice", None),
        ("a violin plays a rising scale", None),  # no register asked
    ],
)
def test_asked_instrument_register_reads_a_register_of_an_instrument(prompt, span):
    from soundsmith.pipelines.tune import asked_instrument_register

    assert asked_instrument_register(prompt) == span


def test_register_error_is_how_far_a_phrase_root_lies_outside_a_register():
    from soundsmith.pipelines.tune import register_error

    phrase = np.concatenate([_buzz(m, 0.25) for m in (60, 62, 64, 65, 67, 69, 71, 72)])  # C4 up to C5
    assert register_error(phrase, SR, (64, 75)) == pytest.approx(4.0, abs=0.5)  # its root, C4, under E4
    assert register_error(phrase, SR, (55, 66)) == 0.0
    # falling: its first and highest note is the root (the phrase reversed starts at C5)
    assert register_error(phrase[::-1].copy(), SR, (55, 66), falling=True) == pytest.approx(5.0, abs=1.0)
    assert register_error(np.zeros(SR, np.float32), SR, (55, 66)) is None


@pytest.mark.parametrize(
    "errors,redraws,kept_first",
    [
        ([4.0, 0.0], 1, False),  # the second draw's root is in the register: kept
        ([4.0, 5.0, 6.0], 2, True),  # both redraws further off: the first draw stays
        ([0.5], 0, True),  # within a semitone of it: not drawn again
    ],
)
def test_register_tries_draw_an_instruments_phrase_again_out_of_its_register(monkeypatch, errors, redraws, kept_first):
    from tests.pipelines.test_latent_diffusion_pipeline import tiny_model

    import soundsmith.pipelines.latent_diffusion as ld
    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    seen, targets = iter(errors), []

    def fake(clip, sr, target, falling=False):
        targets.append((target, falling))
        return next(seen)

    monkeypatch.setattr(ld, "register_error", fake)
    kwargs = {"duration": 0.5, "seed": 3, "progress": False, "tune": True}
    prompt = "a cello plays a descending melody in the middle register"
    base = LatentDiffusionPipeline(tiny_model())(prompt, **kwargs)
    out = LatentDiffusionPipeline(tiny_model(register_tries=2))(prompt, **kwargs)
    assert out.meta.get("redrawn_for_pitch", [0]) == [redraws]
    assert np.array_equal(out.audio, base.audio) == kept_first
    assert next(seen, "done") == "done" and set(targets) == {((47, 57), True)}
    off = LatentDiffusionPipeline(tiny_model(register_tries=2))(prompt, **{**kwargs, "tune": False})
    assert "redrawn_for_pitch" not in off.meta  # only with tune
    with pytest.raises(ConfigError, match=r"register_tries=-1 must be an integer from 0 to 8"):
        tiny_model(register_tries=-1)
