"""Instrument phrases from the General MIDI SoundFont: valid audio, labelled pitch, dynamics, determinism."""

import librosa
import numpy as np
import pytest

from soundsmith.audio import measure_loudness
from soundsmith.data.synth import INSTRUMENTS, PHRASES, render_instrument
from soundsmith.data.synth.dsp import midi_to_hz
from soundsmith.errors import ConfigError

SR = 16000


@pytest.mark.parametrize("name", sorted(INSTRUMENTS))
def test_every_instrument_renders_valid_audio(name):
    audio, anns = render_instrument(name, duration=2.0, sample_rate=SR, rng=np.random.default_rng(0))
    assert audio.dtype == np.float32 and audio.shape == (2 * SR,)
    assert 0.005 < np.max(np.abs(audio)) < 1.0
    assert anns[0]["instrument"] == name and anns[0]["onset"] < anns[0]["offset"] <= 2.0


@pytest.mark.parametrize("phrase", PHRASES)
def test_every_phrase_renders(phrase):
    audio, anns = render_instrument("piano", phrase=phrase, note="C4", duration=4.0, sample_rate=SR)
    assert anns[0]["phrase"] == phrase and anns[0]["midi_pitch"] == 60
    assert 0.005 < np.max(np.abs(audio)) < 1.0
    if phrase in ("rising_scale", "falling_scale"):
        notes = anns[0]["notes"]
        assert len(notes) >= 3 and (np.diff(notes) > 0).all() == (phrase == "rising_scale")
        assert notes[0] == 60  # both start on the named note ("a falling scale starting at C4")
        assert [e[2] for e in anns[0]["note_events"]] == notes


@pytest.mark.parametrize(
    ("name", "note"), [("piano", "A4"), ("flute", "A5"), ("cello", "A3"), ("trumpet", "C5")]
)
def test_single_note_pitch_matches_label(name, note):
    audio, anns = render_instrument(name, note=note, phrase="single_note", dynamics="loud", duration=1.5)
    midi = anns[0]["midi_pitch"]
    f = midi_to_hz(midi)
    on, off = int(anns[0]["onset"] * SR), int(anns[0]["offset"] * SR)
    f0, voiced, _ = librosa.pyin(audio[on:off], fmin=f / 1.5, fmax=f * 1.5, sr=SR, frame_length=1024)
    cents = 1200 * np.log2(np.nanmedian(f0[voiced]) / f)
    assert abs(cents) < 30.0


@pytest.mark.parametrize("name", ["flute", "piano", "violin"])
def test_soft_is_at_least_6_db_quieter_than_loud(name):
    soft, _ = render_instrument(name, note="A4", phrase="single_note", dynamics="soft", duration=2.0)
    loud, _ = render_instrument(name, note="A4", phrase="single_note", dynamics="loud", duration=2.0)
    assert measure_loudness(loud, SR) - measure_loudness(soft, SR) >= 6.0


def test_rendering_is_deterministic_across_clips():
    first, _ = render_instrument("organ", note="C4", phrase="chord", duration=1.0)
    render_instrument("harp", note="G3", phrase="arpeggio", duration=1.0)  # leaves voices ringing
    again, _ = render_instrument("organ", note="C4", phrase="chord", duration=1.0)
    assert np.array_equal(first, again)


def test_bad_instrument_and_note_raise_config_error():
    with pytest.raises(ConfigError, match="unknown instrument 'kazoo'"):
        render_instrument("kazoo")
    with pytest.raises(ConfigError, match="not a note name"):
        render_instrument("piano", note="Q9")
