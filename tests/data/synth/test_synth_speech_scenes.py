"""Spoken words (espeak-ng) and scenes (background + foreground events at SNRs)."""

import numpy as np
import pytest

from soundsmith.data.synth import VOICES, WORDS, render_scene, render_speech
from soundsmith.errors import ConfigError

SR = 16000


def test_vocabulary_and_voices():
    assert len(WORDS) == 20 and {"zero", "nine", "yes", "off"} <= set(WORDS)
    assert len(VOICES) >= 6


@pytest.mark.parametrize("voice", range(len(VOICES)))
def test_every_voice_speaks(voice):
    audio, anns = render_speech("five", voice=voice, duration=2.0, sample_rate=SR)
    ann = anns[0]
    assert audio.shape == (2 * SR,) and 0.01 < np.max(np.abs(audio)) < 1.0
    assert ann["class"] == "speech_five" and ann["word"] == "five" and ann["voice"] == voice
    on, off = int(ann["onset"] * SR), int(ann["offset"] * SR)
    inside = np.sqrt(np.mean(audio[on:off] ** 2))
    outside = np.sqrt(np.mean(np.concatenate([audio[:on], audio[off:]]) ** 2) + 1e-12)
    assert 0.1 < ann["offset"] - ann["onset"] < 1.5 and inside > 10 * outside


def test_voices_differ_and_speech_is_deterministic():
    a, _ = render_speech("yes", voice=0, duration=1.5, onset=0.2)
    b, _ = render_speech("yes", voice=1, duration=1.5, onset=0.2)
    c, _ = render_speech("yes", voice=0, duration=1.5, onset=0.2)
    assert not np.array_equal(a, b) and np.array_equal(a, c)


def test_unknown_word_raises():
    with pytest.raises(ConfigError, match="unknown word 'banana'"):
        render_speech("banana")


def _fg():
    bell = {"family": "events", "name": "bell", "attrs": {"midi_pitch": 72, "count": 2, "seed": 3}}
    word = {"family": "speech", "name": "go", "attrs": {"voice": 1, "onset_frac": 0.3}}
    return [bell, word]


def test_scene_mixes_background_and_ordered_foreground():
    audio, anns = render_scene("rain", _fg(), ref_db=-35.0, snr_db=[10.0, 15.0], duration=4.0, sample_rate=SR)
    assert audio.shape == (4 * SR,) and np.max(np.abs(audio)) < 1.0
    bg, bell, word = anns
    assert bg["role"] == "background" and bg["class"] == "rain"
    assert bell["class"] == "bell" and word["class"] == "speech_go"
    assert bell["onset"] < 2.0 <= word["onset"] < word["offset"] <= 4.0
    assert bell["snr_db"] == pytest.approx(10.0, abs=0.5) and word["snr_db"] == pytest.approx(15.0, abs=0.5)


def test_quiet_scene_and_bad_input():
    audio, anns = render_scene("quiet", _fg()[:1], ref_db=-64.0, snr_db=[40.0], duration=2.0, sample_rate=SR)
    assert anns[0]["class"] == "quiet" and np.max(np.abs(audio)) > 0.01
    with pytest.raises(ConfigError, match="unknown background 'snow'"):
        render_scene("snow", _fg(), ref_db=-35.0, snr_db=[1.0, 2.0])
    with pytest.raises(ConfigError, match="1 to 3 foreground"):
        render_scene("rain", _fg(), ref_db=-35.0, snr_db=[1.0])
