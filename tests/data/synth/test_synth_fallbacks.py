"""Optional sources missing (issue 16): the corpus falls back to TimGM6mb, DSP drums and espeak-ng voices."""

import logging
import sys

import numpy as np
import pytest

from soundsmith.data.synth import (
    VOICES,
    instruments,
    render_event,
    render_instrument,
    render_speech,
    sampled,
    speech,
)
from soundsmith.data.synth.corpus import draw_clip_spec
from soundsmith.errors import ConfigError


@pytest.fixture
def bare(monkeypatch):
    """A machine without fluid-soundfont-gm, hydrogen-drumkits and piper."""
    monkeypatch.setattr(instruments, "FLUID_PATHS", ("/nonexistent/FluidR3_GM.sf2",))
    monkeypatch.setattr(sampled, "HYDROGEN_DIRS", ("/nonexistent/drumkits",))
    monkeypatch.setitem(sys.modules, "piper", None)  # import piper -> ImportError
    sampled.hydrogen_index.cache_clear()
    speech.piper_available.cache_clear()
    yield
    sampled.hydrogen_index.cache_clear()
    speech.piper_available.cache_clear()


def test_without_debian_packages_and_piper_the_corpus_uses_what_is_there(bare, caplog):
    with caplog.at_level(logging.INFO, logger="soundsmith.data.synth.speech"):
        assert speech.voice_count() == len(VOICES)
        speech.voice_count()
    assert sum("natural speech off" in r.message for r in caplog.records) == 1  # one line, not one per word
    assert instruments.default_soundfont() == "TimGM6mb"
    assert sampled.sources_for("kick_drum") == ["dsp", "TimGM6mb"] and sampled.sources_for("tom_drum") == [
        "TimGM6mb"
    ]
    _, ann = render_instrument("choir", note="C4", phrase="chord", duration=1.0)
    assert ann[0]["source"] == "TimGM6mb"
    _, ann = render_event("drum_beat", duration=1.0, rng=np.random.default_rng(0), source=None)
    assert ann[0]["source"] in ("dsp", "TimGM6mb")
    with pytest.raises(ConfigError, match="need piper"):
        render_speech("five", voice=len(VOICES) + 1)
    specs = [draw_clip_spec(i, seed=3) for i in range(200)]
    voices = [s["attrs"]["voice"] for s in specs if s["family"] == "speech"]
    assert voices and max(voices) < len(VOICES)


def test_fluid_missing_names_the_package_to_install(bare):
    with pytest.raises(ConfigError, match="apt-get install fluid-soundfont-gm"):
        render_instrument("piano", soundfont="FluidR3_GM", duration=1.0)


def test_named_sources_reproduce_a_bare_machine_on_any_machine(tmp_path):
    from soundsmith.data.manifest import read_manifest
    from soundsmith.data.synth import synthesize_corpus
    from soundsmith.data.synth.sources import Sources

    bare_sources = ("dsp", "espeak-ng", "TimGM6mb")
    assert Sources.resolve(bare_sources) == Sources("TimGM6mb", False, False)
    specs = [draw_clip_spec(i, seed=8, sources=Sources.resolve(bare_sources)) for i in range(300)]
    for spec in specs:
        items = spec["foreground"] if spec["family"] == "scenes" else [spec]
        for item in items:
            attrs = item["attrs"]
            assert (
                attrs.get("source", "dsp") in ("dsp", "TimGM6mb")
                and attrs.get("soundfont", "TimGM6mb") == "TimGM6mb"
            )
            assert item["family"] != "speech" or attrs["voice"] < len(VOICES)
    path = synthesize_corpus(tmp_path, clips=8, seed=8, duration=1.0, sources=bare_sources, progress=False)
    assert all(set(r.meta["sources"]) <= set(bare_sources) for r in read_manifest(path))
    with pytest.raises(ConfigError, match="name no SoundFont"):
        Sources.resolve(("dsp", "espeak-ng"))
    with pytest.raises(ConfigError, match="unknown corpus sources"):
        synthesize_corpus(tmp_path, clips=1, sources=("dsp", "espeak-ng", "TimGM6mb", "mp3s"), progress=False)
