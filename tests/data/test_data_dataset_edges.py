"""ClipDataset and DataConfig at their edges: whole messages and boundaries, the mel defaults, resampling of a
short clip at another rate, the trim level, the loader's arguments, a batch of one, and the bad-file log line."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from soundsmith.data import ClipDataset, DataConfig, ManifestRow, clip_loader, collate_clips, write_manifest
from soundsmith.errors import AudioError, ConfigError, ManifestError

SR = 8000


def manifest(tmp_path, rows):
    return write_manifest(tmp_path / "m.jsonl", rows, root=tmp_path)


def test_data_config_boundaries_and_whole_messages():
    DataConfig(sample_rate=1, clip_seconds=1e-3, num_workers=0, seed=0)
    cases = [
        ({"sample_rate": 0}, r"^DataConfig.sample_rate must be a positive integer \(Hz\), got 0$"),
        (
            {"sample_rate": 16000.0},
            r"^DataConfig.sample_rate must be a positive integer \(Hz\), got 16000.0$",
        ),
        ({"clip_seconds": 0.0}, r"^DataConfig.clip_seconds must be > 0, got 0.0$"),
        ({"valid_crop": "end"}, r"^DataConfig.valid_crop must be 'center' or 'start', got 'end'$"),
        ({"num_workers": -1}, r"^DataConfig.num_workers must be >= 0, got -1$"),
        ({"seed": -1}, r"^DataConfig.seed must be >= 0, got -1$"),
        (
            {"sample_rate": 22050, "mel": {"sample_rate": 16000}},
            r"^DataConfig.mel.sample_rate=16000 differs from sample_rate=22050; set them equal$",
        ),
    ]
    for kw, match in cases:
        with pytest.raises(ConfigError, match=match):
            DataConfig(**kw)


@pytest.mark.parametrize(
    ("rate", "fmax"), [(22050, 8000.0), (16000, 8000.0), (12000, 6000.0), (8000, 4000.0)]
)
def test_the_default_mel_follows_the_rate_up_to_8_khz(rate, fmax):
    for mel in (
        DataConfig(sample_rate=rate).mel_config(),
        DataConfig(sample_rate=rate, mel={"n_mels": 20}).mel,
    ):
        assert mel.sample_rate == rate and mel.fmax == fmax


def test_dataset_defaults_and_whole_messages(tmp_path, tone):
    tone(tmp_path / "a.wav", seconds=0.3, sr=SR)
    rows = [ManifestRow("a.wav", ["x"], [], 0.3, SR, split, {}) for split in ("train", "train", "valid")]
    m = manifest(tmp_path, rows)
    assert ClipDataset(m).config == DataConfig()  # no config: the defaults
    ds = ClipDataset(m, DataConfig(sample_rate=SR, clip_seconds=0.25))
    assert ds.split == "train" and len(ds) == 2 and ds.epoch == 0
    first = ds[0]["audio"]
    ds.set_epoch(0)
    assert np.array_equal(ds[0]["audio"].numpy(), first.numpy())  # a fresh dataset is at epoch 0
    with pytest.raises(
        ManifestError,
        match=r"^manifest .*m.jsonl has no rows in split 'test' \(rows per split: \{'train': 2, 'valid': 1, 'test': 0\}\); pick "
        r"another split or re-import with valid/test fractions > 0$",
    ):
        ClipDataset(m, DataConfig(sample_rate=SR), "test")
    with pytest.raises(ConfigError, match=r"^ClipDataset seed must be >= 0, got -2$"):
        ClipDataset(m, DataConfig(sample_rate=SR), seed=-2)


def test_a_clip_at_another_rate_is_resampled_before_its_length_is_taken(tmp_path, tone):
    tone(tmp_path / "hi.wav", seconds=0.1, sr=16000, channels=2)  # 1,600 stereo samples at 16 kHz
    m = manifest(tmp_path, [ManifestRow("hi.wav", [], [], 0.1, 16000, "train", {})])
    item = ClipDataset(m, DataConfig(sample_rate=SR, clip_seconds=0.25), "train")[0]
    assert item["length"] == 800 and item["audio"].shape == (
        2000,
    )  # 0.1 s at 8 kHz, mono, padded to the crop


def test_one_sample_files_load_and_the_trim_level_is_the_configs(tmp_path):
    sf.write(str(tmp_path / "one.wav"), np.array([0.5], np.float32), SR)
    x = np.zeros(SR, np.float32)
    x[2000:6000] = 0.5 * np.sin(np.arange(4000) * 0.3)
    x[1000:2000] = 0.02 * np.sin(np.arange(1000) * 0.3)  # -28 dB below the tone: kept at 40 dB, cut at 20 dB
    sf.write(str(tmp_path / "quiet.wav"), x, SR)
    m = manifest(
        tmp_path,
        [
            ManifestRow("one.wav", [], [], 1 / SR, SR, "train", {}),
            ManifestRow("quiet.wav", [], [], 1.0, SR, "valid", {}),
        ],
    )
    assert ClipDataset(m, DataConfig(sample_rate=SR, clip_seconds=0.25), "train")[0]["length"] == 1
    lengths = {
        db: ClipDataset(
            m, DataConfig(sample_rate=SR, clip_seconds=1.0, trim_silence=True, trim_top_db=db), "valid"
        )[0]["length"]
        for db in (20.0, 40.0)
    }
    assert lengths[20.0] < lengths[40.0] < SR
    sf.write(str(tmp_path / "silent.wav"), np.zeros(3000, np.float32), SR)  # nothing to keep: stays whole
    m = manifest(tmp_path, [ManifestRow("silent.wav", [], [], 3000 / SR, SR, "train", {})])
    cfg = DataConfig(sample_rate=SR, clip_seconds=1.0, trim_silence=True)
    assert ClipDataset(m, cfg, "train")[0]["length"] == 3000


def test_loader_arguments_win_over_the_config_and_a_batch_of_one_collates(tmp_path, tone):
    rows = []
    for i in range(5):
        tone(tmp_path / f"{i}.wav", seconds=0.3, sr=SR, freq=300.0 + 40 * i)
        rows.append(ManifestRow(f"{i}.wav", [f"c{i}"], [], 0.3, SR, "train", {}))
    ds = ClipDataset(
        manifest(tmp_path, rows), DataConfig(sample_rate=SR, num_workers=2, features=["mel"]), "train"
    )
    loader = clip_loader(ds, batch_size=2, num_workers=0, drop_last=True)
    assert loader.num_workers == 0 and loader.drop_last is True and len(list(loader)) == 2
    assert clip_loader(ds, batch_size=2).num_workers == 2
    one = collate_clips([ds[0]])
    assert one["mel"].shape[0] == 1 and one["audio"].shape[0] == 1


def test_a_bad_file_is_logged_with_its_path_manifest_and_error(tmp_path, tone, caplog):
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    tone(tmp_path / "ok.wav", seconds=0.3, sr=SR)
    rows = [
        ManifestRow("bad.wav", [], [], 0.3, SR, "train", {}),
        ManifestRow("ok.wav", [], [], 0.3, SR, "train", {}),
    ]
    m = manifest(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        item = ClipDataset(m, DataConfig(sample_rate=SR), "train")[0]
    assert item["id"] == "ok.wav"
    line = next(r.getMessage() for r in caplog.records if "skipping bad audio file" in r.getMessage())
    assert line.startswith(f"skipping bad audio file {tmp_path / 'bad.wav'} (manifest {m}): ")
    assert len(line) > len(f"skipping bad audio file {tmp_path / 'bad.wav'} (manifest {m}): ") + 5
    only_bad = manifest(tmp_path, rows[:1])
    with pytest.raises(
        AudioError,
        match=r"\(last error: .*bad.wav: cannot decode the file .*\); run check_manifest on it to list",
    ):
        ClipDataset(only_bad, DataConfig(sample_rate=SR), "train")[0]


def test_random_crops_reach_both_ends_of_a_clip(tmp_path):
    T = 2000  # clip_seconds 0.25 at 8 kHz
    ramp = np.arange(T + 2, dtype=np.float32) / (4 * T)  # three possible offsets: 0, 1 and 2
    sf.write(str(tmp_path / "ramp.wav"), ramp, SR, subtype="FLOAT")
    m = manifest(tmp_path, [ManifestRow("ramp.wav", [], [], (T + 2) / SR, SR, "train", {})])
    ds = ClipDataset(m, DataConfig(sample_rate=SR, clip_seconds=0.25), "train")
    offsets = set()
    for epoch in range(60):
        ds.set_epoch(epoch)
        offsets.add(int(round(float(ds[0]["audio"][0]) * 4 * T)))
    assert offsets == {0, 1, 2}
