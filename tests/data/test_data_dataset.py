import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from soundsmith.audio import MelConfig, mel_spectrogram
from soundsmith.data import ClipDataset, DataConfig, ManifestRow, clip_loader, collate_clips, write_manifest
from soundsmith.errors import AudioError, ConfigError, ManifestError

SR = 8000
MEL = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, win_length=256, n_mels=16, fmax=4000.0)


def _cfg(**kw):
    base = dict(sample_rate=SR, clip_seconds=0.25, mel=MEL)
    base.update(kw)
    return DataConfig(**base)


@pytest.fixture
def corpus(tmp_path, tone):
    """6 train clips (one short, one stereo at 16 kHz), 2 valid; captions and labels vary."""
    specs = [
        ("a.wav", 1.0, SR, 1, ["dog"], ["c1", "c2", "c3", "c4", "c5"]),
        ("b.wav", 0.8, SR, 1, ["cat", "dog"], ["meow"]),
        ("short.wav", 0.1, SR, 1, [], []),
        ("stereo.wav", 0.6, 16000, 2, ["bird"], ["tweet"]),
        ("d.wav", 0.5, SR, 1, ["dog"], ["woof"]),
        ("e.wav", 0.7, SR, 1, ["cat"], ["purr"]),
        ("v1.wav", 1.0, SR, 1, ["dog"], ["x", "y"]),
        ("v2.wav", 0.4, SR, 1, ["owl"], ["hoot"]),
    ]
    rows = []
    for i, (name, secs, sr, ch, labels, caps) in enumerate(specs):
        tone(tmp_path / "audio" / name, seconds=secs, sr=sr, freq=200.0 + 50 * i, channels=ch)
        split = "valid" if name.startswith("v") else "train"
        rows.append(ManifestRow(f"audio/{name}", caps, labels, secs, sr, split, {}))
    return write_manifest(tmp_path / "manifest.jsonl", rows, root=tmp_path)


def test_item_shapes_and_fields(corpus):
    ds = ClipDataset(corpus, _cfg(features=["mel"]), "train")
    T = 2000
    assert len(ds) == 6 and ds.labels == ["bird", "cat", "dog", "owl"]
    for i in range(len(ds)):
        it = ds[i]
        assert it["audio"].dtype == torch.float32 and it["audio"].shape == (T,)
        assert it["mel"].shape == (16, T // 64 + 1) and it["mel"].dtype == torch.float32
        assert it["index"] == i and it["skipped"] == []
        assert it["caption"] in it["captions"] or (it["caption"] == "" and it["captions"] == [])
        assert it["label_ids"].shape == (4,)
        assert [ds.labels[k] for k in torch.nonzero(it["label_ids"]).flatten()] == sorted(it["labels"])
        assert set(it["label_ids"].tolist()) <= {0.0, 1.0}  # multi-hot
    short = ds[2]
    assert short["length"] == 800 and short["id"] == "audio/short.wav"
    assert torch.all(short["audio"][800:] == 0) and short["audio"][:800].abs().max() > 0.1
    assert ds[0]["length"] == T and ds[3]["length"] == T  # stereo 16 kHz file: mono, resampled, 0.6 s


def test_crops_are_a_pure_function_of_seed_epoch_index(corpus):
    a, b = ClipDataset(corpus, _cfg(), "train", seed=7), ClipDataset(corpus, _cfg(), "train", seed=7)
    a.set_epoch(3)
    b.set_epoch(0)
    b[0]  # history does not matter
    b.set_epoch(3)
    for i in range(len(a)):
        assert torch.equal(a[i]["audio"], b[i]["audio"]) and a[i]["caption"] == b[i]["caption"]
    crops = set()
    captions = set()
    for epoch in range(8):
        a.set_epoch(epoch)
        crops.add(a[0]["audio"][:5].numpy().tobytes())
        captions.add(a[0]["caption"])
    assert len(crops) > 3 and len(captions) > 1
    # another seed, the same epoch (3 for both): other crops (tests/data/test_data_crops_seed.py reads offsets)
    other = ClipDataset(corpus, _cfg(), "train", seed=8)
    other.set_epoch(3)
    a.set_epoch(3)
    assert not torch.equal(other[0]["audio"], a[0]["audio"])


def test_valid_crops_are_deterministic(corpus, tmp_path):
    ds = ClipDataset(corpus, _cfg(), "valid")
    assert not ds.random_crop
    first = [ds[i]["audio"] for i in range(len(ds))]
    ds.set_epoch(5)
    assert all(torch.equal(x, ds[i]["audio"]) for i, x in enumerate(first))
    full, _ = sf.read(str(tmp_path / "audio" / "v1.wav"), dtype="float32")
    start = ClipDataset(corpus, _cfg(valid_crop="start"), "valid")
    assert np.allclose(start[0]["audio"].numpy(), full[:2000], atol=1e-4)
    assert np.allclose(first[0].numpy(), full[3000:5000], atol=1e-4)  # centred: (8000 - 2000) / 2
    assert ClipDataset(corpus, _cfg(deterministic_valid=False), "valid").random_crop


def test_mel_matches_cache_and_audio_crop(corpus, tmp_path):
    plain = ClipDataset(corpus, _cfg(features=["mel"]), "train", seed=1)
    cfg = _cfg(features=["mel"], cache_dir=str(tmp_path / "cache"))
    cold, warm = ClipDataset(corpus, cfg, "train", seed=1), ClipDataset(corpus, cfg, "train", seed=1)
    for epoch in (0, 1):
        for ds in (plain, cold, warm):
            ds.set_epoch(epoch)
        for i in range(len(plain)):
            p, c = plain[i], cold[i]
            w = warm[i]
            assert torch.equal(p["audio"], c["audio"]) and torch.equal(p["mel"], c["mel"])
            assert torch.equal(c["mel"], w["mel"])
    assert cold.cache.misses == len(plain) and warm.cache.hits == 2 * len(plain)
    # interior frames equal the mel of the delivered audio crop (edges differ by the STFT padding)
    it = plain[0]
    direct = mel_spectrogram(it["audio"], MEL)
    assert torch.allclose(direct[:, 4:-4], it["mel"][:, 4:-4], atol=1e-3)
    # the short clip's mel is padded with silence after its valid frames
    assert torch.allclose(plain[2]["mel"][:, -3:], torch.full((16, 3), float(np.log(1e-5))))


def test_changed_config_does_not_read_stale_cache(corpus, tmp_path):
    cache = str(tmp_path / "cache")
    a = ClipDataset(corpus, _cfg(features=["mel"], cache_dir=cache), "valid")
    mel_a = a[0]["mel"]
    mel80 = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, win_length=256, n_mels=24, fmax=4000.0)
    b = ClipDataset(corpus, _cfg(features=["mel"], cache_dir=cache, mel=mel80), "valid")
    assert b[0]["mel"].shape[0] == 24 and b.cache.misses == 1 and mel_a.shape[0] == 16


def test_trim_silence(tmp_path, tone):
    tone(tmp_path / "t.wav", seconds=0.5)
    x, _ = sf.read(str(tmp_path / "t.wav"), dtype="float32")
    sf.write(str(tmp_path / "t.wav"), np.concatenate([np.zeros(4000, np.float32), x]), SR)
    m = write_manifest(tmp_path / "m.jsonl", [ManifestRow("t.wav", [], [], 1.0, SR, "valid", {})])
    raw = ClipDataset(m, _cfg(valid_crop="start"), "valid")[0]
    trimmed = ClipDataset(m, _cfg(valid_crop="start", trim_silence=True), "valid")[0]
    assert raw["audio"][:1000].abs().max() == 0
    assert trimmed["audio"][:1000].abs().max() > 0.1


def test_trim_settings_are_part_of_the_cache_key(tmp_path, tone):
    """Switching trimming on (or changing its threshold) must not read the untrimmed file's cached mel."""
    tone(tmp_path / "t.wav", seconds=0.5)
    x, _ = sf.read(str(tmp_path / "t.wav"), dtype="float32")
    sf.write(str(tmp_path / "t.wav"), np.concatenate([np.zeros(4000, np.float32), x]), SR)
    m = write_manifest(tmp_path / "m.jsonl", [ManifestRow("t.wav", [], [], 1.0, SR, "valid", {})])
    cache = str(tmp_path / "cache")
    mels = {}
    for name, kw in (
        ("raw", {}),
        ("trim", dict(trim_silence=True)),
        ("trim10", dict(trim_silence=True, trim_top_db=10.0)),
    ):
        ds = ClipDataset(m, _cfg(valid_crop="start", features=["mel"], cache_dir=cache, **kw), "valid")
        mels[name] = ds[0]["mel"]
        assert ds.cache.misses == 1, f"{name}: read another setting's cached mel"
        uncached = ClipDataset(m, _cfg(valid_crop="start", features=["mel"], **kw), "valid")[0]["mel"]
        assert torch.equal(mels[name], uncached)
    assert not torch.equal(mels["raw"], mels["trim"])


def test_bad_files_are_logged_once_and_replaced(corpus, tmp_path, caplog):
    (tmp_path / "audio" / "b.wav").write_bytes(b"RIFF junk")
    (tmp_path / "audio" / "d.wav").unlink()
    ds = ClipDataset(corpus, _cfg(), "train")
    with caplog.at_level(logging.WARNING, logger="soundsmith.data"):
        items = [ds[i] for i in range(len(ds))] + [ds[1]]
    assert items[1]["index"] == 2 and items[4]["index"] == 5  # next good row
    assert items[1]["skipped"] == [str(tmp_path / "audio" / "b.wav")]
    assert ds.bad_files == {str(tmp_path / "audio" / "b.wav"), str(tmp_path / "audio" / "d.wav")}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "b.wav" in warnings[0].getMessage()
    assert str(corpus) in warnings[0].getMessage()  # the manifest is named too
    assert items[-1]["index"] == 2 and items[-1]["skipped"] == [
        str(tmp_path / "audio" / "b.wav")
    ]  # known bad
    batch = collate_clips(items[:2])
    assert batch["skipped"] == [str(tmp_path / "audio" / "b.wav")]


def test_all_bad_raises(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"nothing")
    m = write_manifest(tmp_path / "m.jsonl", [ManifestRow("x.wav", [], [], 1.0, SR, "train", {})])
    with pytest.raises(AudioError, match="all 1 audio files"):
        ClipDataset(m, _cfg(), "train")[0]


def test_empty_split_and_bad_config(corpus):
    with pytest.raises(ManifestError, match="no rows in split 'test'"):
        ClipDataset(corpus, _cfg(), "test")
    with pytest.raises(ConfigError, match="features"):
        DataConfig(features=["spectrogram"])
    with pytest.raises(ConfigError, match="mel.sample_rate"):
        DataConfig(sample_rate=22050, mel=MelConfig())
    with pytest.raises(ConfigError, match="unknown key"):
        DataConfig(mel={"n_mel": 3})
    assert DataConfig(sample_rate=8000, mel={"n_mels": 20}).mel_config().n_mels == 20
    with pytest.raises(ConfigError, match="DataConfig.mel"):
        DataConfig(sample_rate=8000, mel={"fmax": 6000.0})
    assert DataConfig(sample_rate=8000).mel_config().fmax == 4000.0


def test_collate_and_loader_workers(corpus):
    ds = ClipDataset(corpus, _cfg(features=["mel"]), "train")
    b0 = list(clip_loader(ds, batch_size=4, shuffle=True, epoch=2, num_workers=0))
    b2 = list(clip_loader(ds, batch_size=4, shuffle=True, epoch=2, num_workers=2))
    assert [b["audio"].shape for b in b0] == [(4, 2000), (2, 2000)]
    assert b0[0]["mel"].shape == (4, 16, 32) and b0[0]["label_ids"].shape == (4, 4)
    assert b0[0]["length"].dtype == torch.long and isinstance(b0[0]["caption"], list)
    for x, y in zip(b0, b2):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["audio"], y["audio"])
        assert torch.equal(x["mel"], y["mel"]) and x["caption"] == y["caption"]
    b_other = list(clip_loader(ds, batch_size=4, shuffle=True, epoch=3, num_workers=0))
    assert not all(torch.equal(x["index"], y["index"]) for x, y in zip(b0, b_other))


def test_unusable_cache_falls_back_to_computing(corpus, tmp_path, monkeypatch, caplog):
    ds = ClipDataset(corpus, _cfg(features=["mel"], cache_dir=str(tmp_path / "cache")), "valid")

    def full_disk(key, value):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ds.cache, "put", full_disk)
    with caplog.at_level(logging.WARNING, logger="soundsmith.data"):
        items = [ds[0], ds[1]]
    plain = ClipDataset(corpus, _cfg(features=["mel"]), "valid")
    assert all(torch.equal(it["mel"], plain[i]["mel"]) for i, it in enumerate(items))
    assert ds.bad_files == set() and caplog.text.count("feature cache") == 1
