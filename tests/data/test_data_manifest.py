import json

import numpy as np
import pytest
import soundfile as sf

from soundsmith.data import Manifest, ManifestRow, check_manifest, read_manifest, write_manifest
from soundsmith.errors import ManifestError


def _row(audio="a.wav", **kw):
    d = {"audio": audio, "captions": ["a tone"], "labels": ["tone"], "duration": 0.5, "sample_rate": 8000}
    d.update(kw)
    return d


def _write_lines(path, objs):
    path.write_text("\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n")
    return path


def test_round_trip_relative_paths(tmp_path, tone):
    wav = tone(tmp_path / "audio" / "dog" / "x.wav")
    rows = [
        ManifestRow(str(wav), ["a dog"], ["dog"], 0.5, 8000, "train", {"k": 1}),
        ManifestRow(str(wav), [], [], 0.5, 8000, "valid", {}),
    ]
    out = write_manifest(tmp_path / "m" / "manifest.jsonl", rows)
    text = out.read_text()
    assert str(tmp_path) not in text  # relative paths only
    m = read_manifest(out)
    assert [r.to_dict() for r in m.rows][0]["audio"] == "../audio/dog/x.wav"
    assert m.rows[0].audio_path(m.root).resolve() == wav.resolve()
    assert m.rows[0].captions == ["a dog"] and m.rows[0].meta == {"k": 1}
    assert len(m.split("train")) == 1 and len(m.split("valid")) == 1 and m.split("test") == []
    assert m.label_set() == ["dog"]
    assert m.line_numbers == [1, 2]
    assert not list(out.parent.glob("*.tmp"))  # atomic write leaves no temp files


def test_rewrite_with_root_keeps_files(tmp_path, tone):
    wav = tone(tmp_path / "a" / "x.wav")
    m1 = read_manifest(
        write_manifest(tmp_path / "a" / "m.jsonl", [ManifestRow(str(wav), duration=0.5, sample_rate=8000)])
    )
    assert m1.rows[0].audio == "x.wav"
    m2 = read_manifest(write_manifest(tmp_path / "b" / "c" / "m.jsonl", m1.rows, root=m1.root))
    assert m2.rows[0].audio_path(m2.root).resolve() == wav.resolve()


def test_defaults_and_blank_lines(tmp_path):
    p = _write_lines(tmp_path / "m.jsonl", [{"audio": "/abs/a.wav", "duration": 1, "sample_rate": 16000}, ""])
    m = read_manifest(p)
    r = m.rows[0]
    assert (r.captions, r.labels, r.split, r.meta, r.duration) == ([], [], "train", {}, 1.0)
    assert str(r.audio_path(m.root)) == "/abs/a.wav"


def test_all_errors_collected_with_line_numbers(tmp_path):
    p = _write_lines(
        tmp_path / "bad.jsonl",
        [
            _row(),  # line 1 fine
            "{not json",  # line 2
            {"captions": []},  # line 3: missing audio, duration, sample_rate
            _row(split="training"),  # line 4
            _row(duration=0),  # line 5
            _row(sample_rate=16000.5),  # line 6
            _row(captions="a dog"),  # line 7
            _row(extra=1),  # line 8
            _row(duration=True),  # line 9
            "[1, 2]",  # line 10
        ],
    )
    with pytest.raises(ManifestError) as e:
        read_manifest(p)
    msg = str(e.value)
    assert str(p) in msg
    for line, words in [
        (2, "invalid JSON"),
        (3, "missing key 'audio'"),
        (3, "missing key 'sample_rate'"),
        (4, "'split' must be one of"),
        (5, "'duration'"),
        (6, "'sample_rate'"),
        (7, "'captions' must be a list of strings"),
        (8, "unknown key 'extra'"),
        (9, "'duration'"),
        (10, "JSON object"),
    ]:
        assert any(f"line {line}:" in ln and words in ln for ln in msg.splitlines()), (line, words)
    assert "line 1:" not in msg


def test_error_list_is_capped(tmp_path):
    p = _write_lines(tmp_path / "bad.jsonl", ["oops"] * 30)
    with pytest.raises(ManifestError, match="30 problem") as e:
        read_manifest(p)
    assert "and 10 more" in str(e.value)
    assert "line 21:" not in str(e.value)


def test_missing_manifest_file(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")


def test_write_rejects_invalid_row(tmp_path):
    with pytest.raises(ManifestError, match="row 1"):
        write_manifest(tmp_path / "m.jsonl", [ManifestRow("a.wav", duration=-1.0, sample_rate=8000)])
    assert not (tmp_path / "m.jsonl").exists()


def test_unknown_split_name():
    with pytest.raises(ManifestError, match="unknown split"):
        Manifest(rows=[]).split("dev")


def test_check_manifest_finds_problems(tmp_path, tone):
    good = tone(tmp_path / "good.wav")
    tone(tmp_path / "rate.wav", sr=16000)
    tone(tmp_path / "long.wav", seconds=1.0)
    sf.write(str(tmp_path / "nan.wav"), np.full(400, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wav file at all")
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype=np.float32), 8000)
    rows = [
        _row("good.wav"),
        _row("missing.wav"),
        _row("rate.wav"),
        _row("long.wav"),
        _row("nan.wav", duration=0.05),
        _row("garbage.wav"),
        _row("empty.wav"),
    ]
    p = _write_lines(tmp_path / "m.jsonl", rows)
    problems = check_manifest(p)
    by_row = {}
    for pr in problems:
        by_row.setdefault(pr.row, []).append(pr.message)
    assert 1 not in by_row, by_row
    assert good.exists()
    assert "not found" in by_row[2][0]
    assert any("sample rate 16000" in m for m in by_row[3])
    assert any("duration 1.000" in m for m in by_row[4])
    assert any("nan" in m.lower() for m in by_row[5]), by_row[5]
    assert 6 in by_row and 7 in by_row
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7]
    assert problems[0].audio == "missing.wav"
