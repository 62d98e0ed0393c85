import csv
import logging

import pytest

from soundsmith.data import (
    hash_split,
    import_audiocaps,
    import_audiomnist,
    import_clotho,
    import_esc50,
    import_folder,
    read_manifest,
)
from soundsmith.errors import ManifestError


def _csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _check_files_resolve(manifest):
    for r in manifest.rows:
        assert r.audio_path(manifest.root).is_file(), r.audio


def test_hash_split_is_deterministic_and_proportional():
    keys = [f"clip_{i}.wav" for i in range(2000)]
    a = [hash_split(k, 0.1, 0.2) for k in keys]
    assert a == [hash_split(k, 0.1, 0.2) for k in keys]
    assert abs(a.count("test") / 2000 - 0.2) < 0.04 and abs(a.count("valid") / 2000 - 0.1) < 0.04
    assert a != [hash_split(k, 0.1, 0.2, seed=1) for k in keys]
    with pytest.raises(ManifestError):
        hash_split("x", 0.6, 0.5)


def test_import_folder(tmp_path, tone):
    src = tmp_path / "src"
    tone(src / "dog" / "a.wav", seconds=0.5)
    tone(src / "dog" / "b.flac", seconds=0.25, sr=16000)
    tone(src / "cat" / "deep" / "c.wav")
    tone(src / "loose.wav")
    (src / "notes.txt").write_text("not audio")
    (src / "dog" / "broken.wav").write_bytes(b"garbage")
    caps = _csv(
        tmp_path / "caps.csv",
        ["file", "caption"],
        [
            ["dog/a.wav", "a dog barks"],
            ["dog/a.wav", "barking"],
            ["b.flac", "a small dog"],
            ["nope.wav", "x"],
        ],
    )
    out = tmp_path / "out" / "manifest.jsonl"
    m = import_folder(src, out, captions_csv=caps, valid_fraction=0.3, test_fraction=0.3, seed=3)
    assert m.skipped == 1  # broken.wav
    assert m.path == out and read_manifest(out).rows == m.rows
    by_id = {r.meta["id"]: r for r in m.rows}
    assert sorted(by_id) == ["cat/deep/c.wav", "dog/a.wav", "dog/b.flac", "loose.wav"]
    assert by_id["dog/a.wav"].captions == ["a dog barks", "barking"]
    assert by_id["dog/b.flac"].captions == ["a small dog"]
    assert by_id["dog/b.flac"].sample_rate == 16000 and by_id["dog/b.flac"].duration == pytest.approx(0.25)
    assert by_id["cat/deep/c.wav"].labels == ["deep"] and by_id["loose.wav"].labels == []
    for rel, r in by_id.items():
        assert r.split == hash_split(rel, 0.3, 0.3, 3)
    _check_files_resolve(m)
    # same input, same manifest
    m2 = import_folder(
        src, tmp_path / "out2.jsonl", captions_csv=caps, valid_fraction=0.3, test_fraction=0.3, seed=3
    )
    assert [r.split for r in m2.rows] == [r.split for r in m.rows]


def test_import_folder_errors(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        import_folder(tmp_path / "missing", tmp_path / "m.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no readable audio"):
        import_folder(tmp_path / "empty", tmp_path / "m.jsonl")
    with pytest.raises(ManifestError, match="lacks column"):
        (tmp_path / "empty" / "x").mkdir()
        _csv(tmp_path / "bad.csv", ["name", "text"], [["a", "b"]])
        import_folder(tmp_path / "empty", tmp_path / "m.jsonl", captions_csv=tmp_path / "bad.csv")


def test_import_audiomnist(tmp_path, tone):
    src = tmp_path / "AudioMNIST" / "data"
    for spk in ("01", "02", "12", "30", "45"):
        for digit in (0, 5):
            tone(src / spk / f"{digit}_{spk}_0.wav", seconds=0.2)
    m = import_audiomnist(
        tmp_path / "AudioMNIST", tmp_path / "am.jsonl", valid_fraction=0.2, test_fraction=0.2
    )
    assert len(m) == 10
    r = next(r for r in m.rows if r.meta["speaker"] == "12" and r.meta["digit"] == 5)
    assert r.labels == ["five"] and r.captions == ["the digit five spoken by speaker 12"]
    split_of = {}
    for row in m.rows:  # whole speakers held out
        split_of.setdefault(row.meta["speaker"], set()).add(row.split)
    assert all(len(s) == 1 for s in split_of.values())
    splits = [next(iter(s)) for s in split_of.values()]
    assert splits.count("test") == 1 and splits.count("valid") == 1 and splits.count("train") == 3
    assert m.label_set() == ["five", "zero"]
    _check_files_resolve(m)


def test_import_clotho(tmp_path, tone):
    src = tmp_path / "clotho"
    header = ["file_name"] + [f"caption_{i}" for i in range(1, 6)]
    for part, names in [
        ("development", ["a b.wav", "c.wav"]),
        ("validation", ["v.wav"]),
        ("evaluation", ["e.wav"]),
    ]:
        for n in names:
            tone(src / part / n, seconds=0.3)
        _csv(
            src / f"clotho_captions_{part}.csv",
            header,
            [[n] + [f"{n} caption {i}" for i in range(5)] for n in names],
        )
    _csv(
        src / "clotho_captions_development.csv",
        header,
        [["a b.wav", *"abcde"], ["c.wav", *"fghij"], ["gone.wav", *"klmno"]],
    )
    m = import_clotho(src, tmp_path / "clotho.jsonl")
    assert m.skipped == 1
    assert {r.meta["id"]: r.split for r in m.rows} == {
        "development/a b.wav": "train",
        "development/c.wav": "train",
        "validation/v.wav": "valid",
        "evaluation/e.wav": "test",
    }
    assert m.rows[0].captions == list("abcde")
    assert all(len(r.captions) == 5 for r in m.rows)
    _check_files_resolve(m)
    with pytest.raises(ManifestError, match="clotho_captions"):
        import_clotho(tmp_path / "clotho" / "development", tmp_path / "x.jsonl")


def test_import_audiocaps(tmp_path, tone, caplog):
    src, audio = tmp_path / "ac", tmp_path / "ac_audio"
    header = ["audiocap_id", "youtube_id", "start_time", "caption"]
    _csv(src / "train.csv", header, [["1", "yt_A", "30", "a cat meows"], ["2", "yt_missing", "0", "lost"]])
    _csv(src / "val.csv", header, [["10", "yt_V", "0", "rain falls"], ["11", "yt_V", "0", "heavy rain"]])
    _csv(src / "test.csv", header, [["20", "yt_T", "0", "a car passes"]])
    tone(audio / "train" / "yt_A.wav")
    tone(audio / "val" / "yt_V.wav")
    tone(audio / "test" / "20.wav")  # named by audiocap_id
    with caplog.at_level(logging.WARNING, logger="soundsmith.data"):
        m = import_audiocaps(src, tmp_path / "ac.jsonl", audio_dir=audio)
    assert m.skipped == 1 and "1 caption row" in caplog.text
    by_yt = {r.meta["youtube_id"]: r for r in m.rows}
    assert sorted(by_yt) == ["yt_A", "yt_T", "yt_V"]
    assert by_yt["yt_V"].captions == ["rain falls", "heavy rain"] and by_yt["yt_V"].split == "valid"
    assert by_yt["yt_V"].meta["audiocap_ids"] == ["10", "11"]
    assert by_yt["yt_T"].split == "test" and by_yt["yt_A"].split == "train"
    assert by_yt["yt_A"].meta["start_time"] == "30"
    _check_files_resolve(m)


def test_import_esc50(tmp_path, tone):
    src = tmp_path / "ESC-50"
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    table = [
        ["1-1-A-0.wav", "1", "0", "dog", "True", "1", "A"],
        ["2-1-A-1.wav", "2", "20", "crying_baby", "False", "1", "A"],
        ["4-1-A-0.wav", "4", "0", "dog", "True", "1", "A"],
        ["5-1-A-0.wav", "5", "30", "door_wood_knock", "False", "1", "A"],
    ]
    _csv(src / "meta" / "esc50.csv", header, table)
    for row in table:
        tone(src / "audio" / row[0], seconds=0.3)
    m = import_esc50(src, tmp_path / "esc.jsonl")
    assert [r.split for r in m.rows] == ["train", "train", "valid", "test"]
    assert m.rows[1].labels == ["crying_baby"] and m.rows[1].captions == ["the sound of crying baby"]
    assert m.rows[0].meta["esc10"] is True and m.rows[3].meta["target"] == 30
    m2 = import_esc50(src, tmp_path / "esc2.jsonl", test_folds=(1,), valid_folds=(2,))
    assert [r.split for r in m2.rows] == ["test", "valid", "train", "train"]
    _check_files_resolve(m)
    with pytest.raises(ManifestError, match="esc50.csv"):
        import_esc50(tmp_path, tmp_path / "x.jsonl")
