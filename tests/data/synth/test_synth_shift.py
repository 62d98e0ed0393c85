"""Register augmentation: annotations, audio and captions move together by the shift."""

import re

import numpy as np
import pytest

from soundsmith.audio import load_audio
from soundsmith.data.manifest import read_manifest
from soundsmith.data.synth import synthesize_corpus
from soundsmith.data.synth.captions import HELD_OUT_TEMPLATES
from soundsmith.data.synth.events import render_event
from soundsmith.data.synth.instruments import register_range
from soundsmith.data.synth.shift import register_of, shift_audio, shift_corpus, shift_events
from soundsmith.errors import ConfigError
from soundsmith.eval.pitch import hz_to_midi, track_pitch

NOTE = re.compile(r"\b([A-G]#?)(\d)\b")


def _beeps(offset, count=3):
    return [
        {
            "class": "beeps",
            "midi_pitch": 64,
            "note": "E4",
            "register": "middle",
            "onset": 0.2,
            "offset": offset,
            "count": count,
            "loudness_db": -20.0,
        }
    ]


def test_event_shift_moves_pitch_register_and_times():
    (ev,) = shift_events("events", _beeps(1.5), -12, 4.0)
    assert (ev["midi_pitch"], ev["note"], ev["register"]) == (52, "E3", "low")
    assert (ev["onset"], ev["offset"], ev["count"]) == (0.4, 3.0, 3)
    (up,) = shift_events("events", _beeps(1.5), 12, 4.0)
    assert (up["note"], up["register"], up["onset"], up["offset"]) == ("E5", "high", 0.1, 0.75)
    assert _beeps(1.5)[0]["note"] == "E4"  # the input is not modified


def test_shift_refused_when_counts_would_be_cut_or_pitch_leaves_every_register():
    assert shift_events("events", _beeps(2.5), -12, 4.0) is None  # the third beep would fall past 4 s
    tone = [
        {
            "class": "sine_tone",
            "midi_pitch": 60,
            "note": "C4",
            "register": "middle",
            "onset": 0.5,
            "offset": 3.5,
        }
    ]
    (cut,) = shift_events("events", tone, -12, 4.0)  # no count: a long tone is cut at the clip's end
    assert (cut["onset"], cut["offset"], cut["register"]) == (1.0, 4.0, "low")
    high = [{**tone[0], "midi_pitch": 80, "note": "G#5", "register": "high"}]
    assert shift_events("events", high, 12, 4.0) is None  # 92 is above every register
    assert shift_events("events", tone, 0, 4.0) is None
    assert shift_events("speech", tone, 12, 4.0) is None
    assert shift_events("events", tone + tone, 12, 4.0) is None  # only clips of one event
    assert shift_events("events", [{"class": "rain", "onset": 0.0, "offset": 4.0}], 12, 4.0) is None


def _scale(bpm, tempo, root):
    return [
        {
            "class": "piano",
            "instrument": "piano",
            "phrase": "rising_scale",
            "midi_pitch": root,
            "note": "",
            "register": "middle",
            "mode": "major",
            "notes": [root, root + 2, root + 4],
            "dynamics": "soft",
            "tempo": tempo,
            "tempo_bpm": bpm,
            "onset": 0.1,
            "offset": 1.9,
            "note_events": [[0.1, 0.7, root], [0.7, 1.3, root + 2], [1.3, 1.9, root + 4]],
        }
    ]


def test_instrument_shift_moves_notes_and_renames_the_tempo():
    root = register_range("piano", "middle")[1]
    (up,) = shift_events("instruments", _scale(100, "slow", root), 12, 4.0)
    assert up["notes"] == [root + 12, root + 14, root + 16] and up["midi_pitch"] == root + 12
    assert [p for _, _, p in up["note_events"]] == up["notes"]
    assert up["note_events"][1][:2] == [0.35, 0.65]
    (fifth,) = shift_events("instruments", _scale(100, "slow", root - 7), 7, 4.0)
    assert fifth["note_events"][1][:2] == [0.467, 0.868]  # to the ms
    assert (up["tempo"], up["tempo_bpm"]) == ("fast", 200)  # twice as fast
    assert up["register"] == register_of(up, root + 12) == "high"
    (low,) = shift_events("instruments", _scale(100, "slow", root - 19), 12, 4.0)
    assert low["register"] == "middle"  # the piano's registers span 20 semitones: an octave may stay in one
    (down,) = shift_events("instruments", _scale(160, "fast", root), -12, 4.0)
    assert (down["tempo"], down["tempo_bpm"]) == ("slow", 80) and down["offset"] == 3.8
    (between,) = shift_events("instruments", _scale(130, "slow", root), 12, 4.0)
    assert "tempo" not in between and between["tempo_bpm"] == 260  # no named tempo: the captions say none


@pytest.mark.parametrize("midi, k", [(57, 12), (69, -12), (60, 7)])
def test_shifted_audio_sounds_at_the_new_pitch(midi, k):
    audio, (ann,) = render_event(
        "sine_tone", midi_pitch=midi, duration=2.0, onset=0.1, rng=np.random.default_rng(3)
    )
    moved = shift_audio(audio, 16000, k)
    assert moved.shape == audio.shape and moved.dtype == np.float32
    f0 = track_pitch(moved, 16000).f0_hz
    assert abs(hz_to_midi(float(np.nanmedian(f0))) - (midi + k)) < 0.3
    assert abs(np.abs(moved).max() - np.abs(audio).max()) < 0.05  # level kept


def test_shift_corpus_writes_recaptioned_clips(tmp_path):
    src = synthesize_corpus(
        tmp_path / "src", clips=40, seed=5, duration=2.0, families=("events", "instruments"), progress=False
    )
    source = read_manifest(src)
    by_id = {r.id: r for r in source}
    out = read_manifest(shift_corpus(src, tmp_path / "shifted", seed=1))
    assert len(out) > 0
    for row in out:
        orig = by_id[row.meta["shifted_from"]]
        assert orig.split == row.split == "train" and row.id == f"{orig.id}{row.meta['shift_semitones']:+d}st"
        k = row.meta["shift_semitones"]
        (ev,), (old,) = row.meta["events"], orig.meta["events"]
        assert ev["midi_pitch"] == old["midi_pitch"] + k and ev["register"] != old["register"]
        assert row.labels == orig.labels and row.sample_rate == orig.sample_rate
        assert not any(t in HELD_OUT_TEMPLATES for t in row.meta["caption_templates"])
        for caption in row.captions:  # a caption that names a note names the moved one
            for name, octave in NOTE.findall(caption):
                assert f"{name}{octave}" == ev["note"] != old["note"], caption
            for register in ("low", "middle", "high"):
                if f"{register} register" in caption:
                    assert register == ev["register"], caption
        audio, sr = load_audio(row.audio_path(out.root))
        assert sr == 16000 and audio.shape == (32000,)
    assert {r.meta["shift_semitones"] for r in out} <= {-12, 12}


def test_shift_corpus_bad_arguments(tmp_path):
    src = synthesize_corpus(
        tmp_path / "src", clips=4, seed=2, duration=2.0, families=("speech",), progress=False
    )
    with pytest.raises(ConfigError, match="no train clip"):
        shift_corpus(src, tmp_path / "out")
    with pytest.raises(ConfigError, match="semitones"):
        shift_corpus(src, tmp_path / "out", semitones=(0,))


def test_shift_boundaries_rounding_and_unknown_instruments():
    assert register_of({"class": "beeps"}, 59) == "low" and register_of({"class": "beeps"}, 60) == "middle"
    assert register_of({"class": "beeps"}, 83) == "high" and register_of({"class": "beeps"}, 47) is None
    (edge,) = shift_events("events", _beeps(2.0), -12, 4.0)  # the last beep ends exactly at the clip's end
    assert edge["offset"] == 4.0 and edge["count"] == 3
    late = [{**_beeps(2.5)[0], "onset": 2.0, "count": None}]
    del late[0]["count"]
    assert shift_events("events", late, -12, 4.0) is None  # starts at 4.0 s: nothing left in the clip
    (fifth,) = shift_events("events", _beeps(1.5), 7, 4.0)  # 2 ** (7/12) times faster: times to the ms
    assert (fifth["onset"], fifth["offset"]) == (0.133, 1.001) and fifth["note"] == "B4"
    unknown = [{**_scale(100, "slow", 60)[0], "instrument": "theremin"}]
    assert shift_events("instruments", unknown, 12, 4.0) is None
    repeated = _scale(100, "slow", register_range("piano", "middle")[1])
    repeated[0].update(phrase="repeated_note", count=3, offset=1.9)
    repeated[0]["note_events"][-1][1] = 2.5  # the last note rings past the half: slowed, it would be cut
    assert shift_events("instruments", repeated, -12, 4.0) is None
    no_name = _scale(130, "slow", 60)
    del no_name[0]["tempo"]
    (up,) = shift_events("instruments", no_name, 12, 4.0)
    assert "tempo" not in up and up["tempo_bpm"] == 260


def test_shift_corpus_is_seeded_limited_and_can_list_its_source(tmp_path):
    src = synthesize_corpus(
        tmp_path / "src", clips=30, seed=9, duration=2.0, families=("events", "instruments"), progress=False
    )
    one = shift_corpus(src, tmp_path / "a", seed=3)
    assert one == tmp_path / "a" / "manifest.jsonl"
    assert shift_corpus(src, tmp_path / "b", seed=3).read_text() == one.read_text().replace("/a/", "/b/")
    rows = read_manifest(one).rows
    every = read_manifest(shift_corpus(src, tmp_path / "c", seed=3, every_shift=True)).rows
    assert len(every) > len(rows) and {r.meta["shifted_from"] for r in every} == {
        r.meta["shifted_from"] for r in rows
    }
    assert all(sum(r.meta["shifted_from"] == s.meta["shifted_from"] for r in every) <= 2 for s in every)
    picks = [read_manifest(shift_corpus(src, tmp_path / f"s{s}", seed=s)).rows for s in range(4)]
    assert len({tuple(r.id for r in p) for p in picks}) > 1  # the seed draws the direction
    for r in rows:
        assert len(r.meta["caption_templates"]) == len(r.captions) == 3 and r.split == "train"
    assert len(read_manifest(shift_corpus(src, tmp_path / "d", limit=2)).rows) == 2
    both = read_manifest(shift_corpus(src, tmp_path / "e", seed=3, with_source=True))
    source = read_manifest(src)
    assert len(both.rows) == len(source.rows) + len(rows)
    for mine, theirs in zip(both.rows, source.rows):
        assert mine.audio_path(both.root).resolve() == theirs.audio_path(source.root).resolve()
        assert mine.captions == theirs.captions and mine.split == theirs.split
    shift_corpus(src, tmp_path / "f", semitones=(24, -24), change_register=False)  # two octaves: allowed
    with pytest.raises(ConfigError, match="semitones"):
        shift_corpus(src, tmp_path / "g", semitones=(25,))
