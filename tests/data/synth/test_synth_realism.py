"""Realism of the synthesized classes (issue 16): measured features, broadband wind, monophonic instruments."""

import numpy as np
import pytest

from soundsmith.data.synth import render_event, render_instrument
from soundsmith.data.synth.corpus import draw_clip_spec
from soundsmith.data.synth.instruments import INSTRUMENTS, MONOPHONIC, phrases_for
from soundsmith.data.synth.measure import realism_features
from soundsmith.errors import ConfigError

SR = 16000


def test_features_separate_noise_from_tones():
    rng = np.random.default_rng(0)
    noise = realism_features(rng.standard_normal(SR).astype(np.float32), SR)
    tone = realism_features(np.sin(2 * np.pi * 220 * np.arange(SR) / SR).astype(np.float32), SR)
    assert noise["flatness"] > 0.4 and noise["periodicity"] < 0.3
    assert tone["flatness"] < 0.01 and tone["periodicity"] > 0.9 and tone["harmonic_ratio"] > 0.9
    assert 150 < tone["centroid_hz"] < 300


@pytest.mark.parametrize("seed", range(4))
def test_wind_is_broadband_rustling_not_a_whistle(seed):
    # the old wind (low-passed noise + a 250-700 Hz band-pass "whistle") measured flatness 0.000, periodicity 0.80
    audio, ann = render_event(
        "wind", duration=3.0, sample_rate=SR, rng=np.random.default_rng(seed), wind_type="rustle"
    )
    f = realism_features(audio, SR)
    assert ann[0]["wind_type"] == "rustle"
    assert f["flatness"] > 0.03, f
    assert f["periodicity"] < 0.3, f
    assert f["centroid_hz"] > 1000.0, f


@pytest.mark.parametrize("seed", range(3))
def test_howling_wind_measures_like_the_recorded_one(seed):
    # OpenSFX's recorded "Wind": harmonic ratio 0.51, periodicity 0.32, centroid 697 Hz (old corpus: 0.95 / 0.80)
    audio, _ = render_event(
        "wind", duration=3.0, sample_rate=SR, rng=np.random.default_rng(seed), wind_type="howl"
    )
    f = realism_features(audio, SR)
    assert f["harmonic_ratio"] < 0.7 and f["periodicity"] < 0.5 and 350 < f["centroid_hz"] < 1000, f


def test_heartbeat_is_a_thud_not_a_sine():
    # the old heartbeat was two Hann-windowed sines (harmonic ratio 0.98); heart sounds are short low thuds
    audio, _ = render_event("heartbeat", duration=3.0, sample_rate=SR, rng=np.random.default_rng(1))
    f = realism_features(audio, SR)
    assert f["harmonic_ratio"] < 0.5 and f["centroid_hz"] < 400.0, f


def test_monophonic_instruments_are_the_winds_brass_and_solo_strings():
    assert {"flute", "clarinet", "trumpet", "saxophone", "oboe", "solo_voice", "violin"} <= set(MONOPHONIC)
    assert not {"piano", "organ", "acoustic_guitar", "choir", "harp"} & set(MONOPHONIC)
    assert all("chord" not in phrases_for(name) for name in MONOPHONIC)
    with pytest.raises(ConfigError, match="flute is monophonic"):
        render_instrument("flute", phrase="chord", duration=1.0)


@pytest.mark.parametrize("name", MONOPHONIC)
def test_monophonic_instruments_never_sound_two_notes_at_once(name):
    for i, phrase in enumerate(phrases_for(name)):
        _, anns = render_instrument(
            name, phrase=phrase, duration=3.0, sample_rate=SR, rng=np.random.default_rng(i)
        )
        events = sorted(anns[0]["note_events"])
        assert len(events) == len(anns[0]["notes"]) >= 1
        assert all(later[0] >= earlier[1] for earlier, later in zip(events, events[1:])), (phrase, events)


def test_chords_still_sound_together_on_polyphonic_instruments():
    _, anns = render_instrument("piano", phrase="chord", note="C4", duration=2.0)
    events = anns[0]["note_events"]
    assert len(events) == 3 and len({(on, off) for on, off, _ in events}) == 1


def test_corpus_never_gives_a_monophonic_instrument_a_chord():
    seen = set()
    for i in range(400):
        spec = draw_clip_spec(i, seed=11)
        items = spec["foreground"] if spec["family"] == "scenes" else [spec]
        for item in items:
            if item["family"] == "instruments":
                seen.add(item["name"])
                assert not (item["name"] in MONOPHONIC and item["attrs"]["phrase"] == "chord"), item
    assert len(seen) >= 20 and len(INSTRUMENTS) >= 24


def test_synthesized_drums_measure_like_recorded_ones():
    # recorded (Hydrogen kits, median of 6): hi-hat centroid ~3.4 kHz, snare periodicity ~0.6 (its heads ring);
    # the old DSP hi-hat (6 kHz high-passed hiss) centred at 6.1 kHz, the old snare measured periodicity 0.26
    hats = [
        render_event("hi_hat", duration=2.0, rng=np.random.default_rng(i), source="dsp")[0] for i in range(3)
    ]
    snares = [
        render_event("snare_drum", duration=2.0, rng=np.random.default_rng(i), source="dsp")[0]
        for i in range(3)
    ]
    assert np.median([realism_features(h, SR)["centroid_hz"] for h in hats]) < 5000.0
    assert np.median([realism_features(s, SR)["periodicity"] for s in snares]) > 0.4


def test_engine_has_mechanical_noise_not_only_a_low_hum():
    # recorded engines (OpenSFX buses/trucks): centroid ~1.6 kHz, flatness ~0.03; the old hum: 336 Hz, 0.000
    audio, _ = render_event("engine_hum", duration=3.0, sample_rate=SR, rng=np.random.default_rng(0))
    f = realism_features(audio, SR)
    assert f["centroid_hz"] > 800.0 and f["flatness"] > 0.003, f
