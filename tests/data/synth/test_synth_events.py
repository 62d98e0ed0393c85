"""Sound events: every class renders valid audio; pitch, counts and sweep directions match their labels."""

import librosa
import numpy as np
import pytest

from soundsmith.data.synth import EVENT_CLASSES, render_event
from soundsmith.data.synth.dsp import midi_to_hz, note_to_midi
from soundsmith.errors import ConfigError

SR = 16000


def _median_f0(audio: np.ndarray, midi: int) -> float:
    f = midi_to_hz(midi)
    f0, voiced, _ = librosa.pyin(audio, fmin=f / 1.5, fmax=f * 1.5, sr=SR, frame_length=1024)
    return float(np.nanmedian(f0[voiced]))


def _cents(f: float, midi: int) -> float:
    return abs(1200.0 * np.log2(f / midi_to_hz(midi)))


@pytest.mark.parametrize("name", sorted(EVENT_CLASSES))
def test_every_class_renders_valid_audio(name):
    audio, anns = render_event(name, duration=2.0, sample_rate=SR, rng=np.random.default_rng(1))
    assert audio.dtype == np.float32 and audio.shape == (2 * SR,)
    assert np.isfinite(audio).all()
    assert 0.01 < np.max(np.abs(audio)) < 1.0
    ann = anns[0]
    assert ann["class"] == name and 0.0 <= ann["onset"] < ann["offset"] <= 2.0
    assert -45.0 < ann["loudness_db"] < -10.0


def test_at_least_twenty_classes():
    assert len(EVENT_CLASSES) >= 20


@pytest.mark.parametrize(("name", "midi"), [("sine_tone", 69), ("sine_tone", 52), ("bell", 72), ("bell", 57)])
def test_measured_pitch_matches_label(name, midi):
    audio, anns = render_event(
        name, duration=1.5, sample_rate=SR, rng=np.random.default_rng(2), midi_pitch=midi
    )
    assert anns[0]["midi_pitch"] == midi
    assert _cents(_median_f0(audio, midi), midi) < 30.0


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_beep_onsets_equal_count(count):
    audio, anns = render_event(
        "beeps", duration=3.0, sample_rate=SR, rng=np.random.default_rng(count), count=count
    )
    # beeps start >= 0.25 s apart, so onsets closer than ~0.1 s (3 frames) are one beep
    onsets = librosa.onset.onset_detect(y=audio, sr=SR, units="time", wait=3)
    assert anns[0]["count"] == count
    assert len(onsets) == count


@pytest.mark.parametrize("name", ["rising_sweep", "falling_sweep"])
def test_sweeps_move_as_labelled(name):
    audio, anns = render_event(name, duration=2.0, sample_rate=SR, rng=np.random.default_rng(3))
    on, off = int(anns[0]["onset"] * SR), int(anns[0]["offset"] * SR)
    centroid = librosa.feature.spectral_centroid(y=audio[on:off], sr=SR)[0]
    slope = np.polyfit(np.arange(centroid.size), centroid, 1)[0]
    assert (slope > 0) == (name == "rising_sweep")
    assert (anns[0]["end_hz"] > anns[0]["start_hz"]) == (name == "rising_sweep")


def test_same_rng_same_audio_and_attrs_reproduce():
    a1, ann1 = render_event("rain", duration=1.0, sample_rate=SR, rng=np.random.default_rng(7))
    a2, ann2 = render_event("rain", duration=1.0, sample_rate=SR, rng=np.random.default_rng(7))
    assert np.array_equal(a1, a2) and ann1 == ann2
    a3, _ = render_event("rain", duration=1.0, sample_rate=SR, rng=np.random.default_rng(8))
    assert not np.array_equal(a1, a3)


def test_unknown_class_names_the_choices():
    with pytest.raises(ConfigError, match="unknown sound event class 'meow'"):
        render_event("meow", duration=1.0)


def test_note_names_round_trip():
    assert note_to_midi("A4") == 69 and note_to_midi("C#3") == 49 and note_to_midi("Bb2") == 46
    with pytest.raises(ValueError):
        note_to_midi("H2")
