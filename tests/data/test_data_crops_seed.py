"""The dataset seed reaches the crops: same (seed, epoch) -> same crops; another seed, same epoch -> other crops.

Each file holds a ramp whose sample ``n`` is ``n * STEP`` (float WAV, exact), so the crop offset is read back
from the first sample of the clip: the test compares offsets, not just "some audio differs".
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from soundsmith.data import ClipDataset, DataConfig, ManifestRow, clip_loader, collate_clips, write_manifest

SR = 8000
STEP = 1.0 / 16384  # exact in float32: the offset is first_sample / STEP
N_FILES, FILE_SAMPLES, CLIP_SECONDS = 6, 8000, 0.125  # 1000-sample clips: 7001 possible offsets per file


@pytest.fixture
def ramps(tmp_path):
    rows = []
    (tmp_path / "audio").mkdir()
    for i in range(N_FILES):
        name = f"audio/ramp{i}.wav"
        sf.write(tmp_path / name, (np.arange(FILE_SAMPLES) * STEP).astype(np.float32), SR, subtype="FLOAT")
        rows.append(ManifestRow(name, [f"c{i}a", f"c{i}b"], [], FILE_SAMPLES / SR, SR, "train", {}))
    return write_manifest(tmp_path / "manifest.jsonl", rows, root=tmp_path)


def offsets(ds: ClipDataset, epoch: int) -> list[int]:
    ds.set_epoch(epoch)
    out = []
    for i in range(len(ds)):
        first = float(ds[i]["audio"][0])
        assert first / STEP == round(first / STEP)  # the ramp came back exactly
        out.append(round(first / STEP))
    return out


def _ds(manifest, seed: int) -> ClipDataset:
    return ClipDataset(manifest, DataConfig(sample_rate=SR, clip_seconds=CLIP_SECONDS), "train", seed=seed)


def test_ramp_offsets_are_the_crops(ramps):
    ds = _ds(ramps, seed=0)
    ds.set_epoch(1)
    item = ds[0]
    off = offsets(ds, 1)[0]
    expected = (np.arange(off, off + 1000) * STEP).astype(np.float32)
    assert np.array_equal(item["audio"].numpy(), expected)


def test_same_seed_and_epoch_give_the_same_crops(ramps):
    a, b = _ds(ramps, seed=11), _ds(ramps, seed=11)
    b.set_epoch(4)
    b[0]  # history does not matter
    assert offsets(a, 2) == offsets(b, 2)


@pytest.mark.parametrize("epoch", [0, 3])
def test_another_seed_gives_other_crops_in_the_same_epoch(ramps, epoch):
    a, b = offsets(_ds(ramps, seed=11), epoch), offsets(_ds(ramps, seed=12), epoch)
    # 7001 offsets per file: two independent draws coincide with probability ~1/7001 each
    assert sum(x != y for x, y in zip(a, b)) >= N_FILES - 1, (a, b)


def test_config_seed_is_the_default_and_the_argument_overrides_it(ramps):
    by_cfg = ClipDataset(ramps, DataConfig(sample_rate=SR, clip_seconds=CLIP_SECONDS, seed=12), "train")
    assert offsets(by_cfg, 3) == offsets(_ds(ramps, seed=12), 3)
    assert offsets(by_cfg, 3) != offsets(_ds(ramps, seed=11), 3)


def test_the_epoch_changes_the_crops_for_one_seed(ramps):
    ds = _ds(ramps, seed=11)
    per_epoch = [offsets(ds, e) for e in range(3)]
    assert per_epoch[0] != per_epoch[1] != per_epoch[2]


# --- the seed and the epoch reach the loader's shuffle order too -----------------------------------------------
def _order(ds: ClipDataset, epoch: int | None = None, **kw) -> list[int]:
    loader = clip_loader(ds, batch_size=2, **kw) if epoch is None else clip_loader(ds, 2, epoch=epoch, **kw)
    return [int(i) for batch in loader for i in batch["index"]]


def test_loader_order_is_a_function_of_seed_and_epoch(ramps):
    a, b = _ds(ramps, seed=11), _ds(ramps, seed=11)
    assert _order(a, 2) == _order(b, 2)
    assert sorted(_order(a, 2)) == list(range(N_FILES))  # a permutation, every clip once
    orders = {tuple(_order(_ds(ramps, seed=s), 2)) for s in range(11, 17)}
    assert len(orders) >= 4, orders  # the seed changes the order (6 seeds, 720 orders)
    per_epoch = {tuple(_order(a, e)) for e in range(6)}
    assert len(per_epoch) >= 4, per_epoch  # so does the epoch


def test_loader_defaults_shuffle_from_epoch_zero(ramps):
    ds = _ds(ramps, seed=3)
    assert _order(ds) == _order(ds, 0)  # default epoch 0, shuffled
    assert ds.epoch == 0
    assert _order(ds, 0, shuffle=False) == list(range(N_FILES))
    assert _order(ds, 0) != list(range(N_FILES)) or _order(_ds(ramps, seed=4), 0) != list(range(N_FILES))
    clip_loader(ds, 2, epoch=5)
    assert ds.epoch == 5  # the loader selects the epoch's crops


def test_collate_fields_and_types(ramps):
    ds = _ds(ramps, seed=0)
    items = [ds[0], ds[1]]
    items[1]["skipped"] = ["bad.wav"]
    batch = collate_clips(items)
    assert batch["length"].dtype == torch.long and batch["index"].dtype == torch.long
    assert batch["index"].tolist() == [0, 1] and batch["length"].tolist() == [1000, 1000]
    assert batch["captions"] == [items[0]["captions"], items[1]["captions"]]
    assert batch["labels"] == [[], []] and batch["id"] == ["audio/ramp0.wav", "audio/ramp1.wav"]
    assert batch["skipped"] == ["bad.wav"] and batch["label_ids"].dtype == torch.float32
    assert "mel" not in batch
    del items[0]["skipped"]
    assert collate_clips(items)["skipped"] == ["bad.wav"]  # an item without the key counts as none skipped
    with pytest.raises(ValueError, match="^collate_clips needs at least one item$"):
        collate_clips([])


def test_crop_and_caption_draws_are_independent_and_reach_every_choice(ramps):
    ds = _ds(ramps, seed=5)
    pairs = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(N_FILES):
            item = ds[i]
            pairs.append((round(float(item["audio"][0]) / STEP), item["caption"][-1]))  # (offset, "a" | "b")
    offsets = [o for o, _ in pairs]
    assert {c for _, c in pairs} == {"a", "b"}  # both captions of a row are drawn
    assert any(o % 2 for o in offsets)  # any sample can start a crop (no quantum without mel)
    # with one draw for both, the caption would follow the offset (second half <-> caption "b")
    follows = sum((o >= 3500) == (c == "b") for o, c in pairs)
    assert 6 <= follows <= len(pairs) - 6, follows


def test_valid_items_ignore_the_epoch(ramps, tmp_path):
    rows = [
        ManifestRow(f"audio/ramp{i}.wav", [f"c{i}{k}" for k in "abcde"], [], 1.0, SR, "valid", {})
        for i in range(3)
    ]
    manifest = write_manifest(tmp_path / "valid.jsonl", rows, root=ramps.parent)
    ds = ClipDataset(manifest, DataConfig(sample_rate=SR, clip_seconds=CLIP_SECONDS), "valid", seed=5)
    first = [(ds[i]["caption"], float(ds[i]["audio"][0])) for i in range(3)]
    ds.set_epoch(4)
    assert [(ds[i]["caption"], float(ds[i]["audio"][0])) for i in range(3)] == first


def test_index_bounds(ramps):
    ds = _ds(ramps, seed=0)
    assert ds[-N_FILES]["index"] == 0 and ds[N_FILES - 1]["index"] == N_FILES - 1
    for bad in (N_FILES, -N_FILES - 1):
        with pytest.raises(IndexError, match=f"^index {bad} out of range for {N_FILES} clips$"):
            ds[bad]
