"""Fixed-length training clips from a manifest: crop, pad, caption, labels and (cached) mel features.

Every random choice of an item (crop offset, caption) is drawn first from
``numpy.random.default_rng((seed, epoch, index))`` and applied second, so an item is a pure function of
``(seed, epoch, index)``: a resumed run sees exactly the clips it would have seen, whatever the worker count.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from soundsmith.audio import MelConfig, load_audio, mel_spectrogram
from soundsmith.data.cache import FeatureCache
from soundsmith.data.manifest import Manifest, read_manifest
from soundsmith.errors import AudioError, ConfigError, ManifestError, SoundsmithError
from soundsmith.seeding import mix_seed

log = logging.getLogger("soundsmith.data")

FEATURES = ("mel",)
LOG_FLOOR = math.log(1e-5)  # log-mel of silence (mel_spectrogram clamps at 1e-5); pads mel frames
# What a bad audio file may raise while being read, resampled or trimmed (soundfile: RuntimeError family).
_BAD_FILE_ERRORS = (SoundsmithError, OSError, RuntimeError, ValueError)


@dataclass
class DataConfig:
    """How clips are cut from a manifest and which features come with them.

    ``mel`` defaults to ``MelConfig(sample_rate=sample_rate, fmax=min(8000, sample_rate / 2))``; a dict fills
    those two defaults and the rest from MelConfig; its ``sample_rate`` must equal ``sample_rate``. ``valid_crop`` is "center" or "start".
    """

    sample_rate: int = 16000
    clip_seconds: float = 5.0
    train_split: str = "train"
    valid_split: str = "valid"
    cache_dir: str | None = None
    features: list[str] = field(default_factory=list)
    trim_silence: bool = False
    num_workers: int = 0
    seed: int = 0
    deterministic_valid: bool = True
    valid_crop: str = "center"
    trim_top_db: float = 40.0
    mel: MelConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.mel, dict):
            known = {f.name for f in fields(MelConfig)}
            unknown = sorted(set(self.mel) - known)
            if unknown:
                raise ConfigError(f"DataConfig.mel: unknown key(s) {unknown}; known: {sorted(known)}")
            defaults = {"sample_rate": self.sample_rate, "fmax": min(8000.0, self.sample_rate / 2)}
            try:
                self.mel = MelConfig(**{**defaults, **self.mel})
            except SoundsmithError as e:
                raise ConfigError(f"DataConfig.mel: {e}") from None
        if not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise ConfigError(
                f"DataConfig.sample_rate must be a positive integer (Hz), got {self.sample_rate!r}"
            )
        if not self.clip_seconds > 0:
            raise ConfigError(f"DataConfig.clip_seconds must be > 0, got {self.clip_seconds!r}")
        bad = [f for f in self.features if f not in FEATURES]
        if bad:
            raise ConfigError(f"DataConfig.features: unknown feature(s) {bad}; available: {list(FEATURES)}")
        if self.valid_crop not in ("center", "start"):
            raise ConfigError(f"DataConfig.valid_crop must be 'center' or 'start', got {self.valid_crop!r}")
        if self.num_workers < 0:
            raise ConfigError(f"DataConfig.num_workers must be >= 0, got {self.num_workers}")
        if self.seed < 0:
            raise ConfigError(f"DataConfig.seed must be >= 0, got {self.seed}")
        if self.mel is not None and self.mel.sample_rate != self.sample_rate:
            raise ConfigError(
                f"DataConfig.mel.sample_rate={self.mel.sample_rate} differs from sample_rate={self.sample_rate}; "
                "set them equal"
            )

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    def mel_config(self) -> MelConfig:
        if self.mel is not None:
            return self.mel
        return MelConfig.at_rate(self.sample_rate)


class ClipDataset(Dataset):
    """Fixed-length mono clips of ``config.clip_seconds`` at ``config.sample_rate`` from one split.

    Item (dict):
      ``audio`` float32 ``[T]`` (zero-padded right when the file is shorter), ``length`` int (valid samples),
      ``mel`` float32 ``[n_mels, T // hop + 1]`` when ``"mel" in config.features``, ``caption`` str (one drawn
      per item; "" when none), ``captions`` list[str], ``labels`` list[str], ``label_ids`` float32
      ``[len(self.labels)]`` multi-hot, ``id`` str, ``index`` int (the row used), ``skipped`` list[str]
      (bad files passed over to produce this item; gather them in the trainer when ``num_workers > 0``).

    Crops are random (a pure function of ``(seed, epoch, index)``) when ``random_crop`` and this is the
    training split or ``config.deterministic_valid`` is off; otherwise ``config.valid_crop`` ("center" or
    "start"). With mel features the crop offset is a multiple of ``hop_length`` and the mel frames are cut
    from the whole file's mel (from the cache when ``config.cache_dir`` is set), so cached and uncached items
    are identical. Bad files are logged once, recorded in ``bad_files`` and replaced by the next good row.
    """

    def __init__(
        self,
        manifest: Manifest | str | os.PathLike,
        config: DataConfig | None = None,
        split: str = "train",
        random_crop: bool = True,
        seed: int | None = None,
    ):
        self.manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
        self.config = config if config is not None else DataConfig()
        self.split = split
        self.seed = self.config.seed if seed is None else int(seed)
        if self.seed < 0:
            raise ConfigError(f"ClipDataset seed must be >= 0, got {self.seed}")
        self.rows = self.manifest.split(split)
        if not self.rows:
            counts = {s: len(self.manifest.split(s)) for s in ("train", "valid", "test")}
            raise ManifestError(
                f"manifest {self.manifest.path} has no rows in split {split!r} (rows per split: {counts}); "
                "pick another split or re-import with valid/test fractions > 0"
            )
        is_train = split == self.config.train_split
        self.random_crop = bool(random_crop) and (is_train or not self.config.deterministic_valid)
        self.labels: list[str] = self.manifest.label_set()
        self._label_index = {label: i for i, label in enumerate(self.labels)}
        self.mel_config = self.config.mel_config()
        self.want_mel = "mel" in self.config.features
        self.cache = FeatureCache(self.config.cache_dir) if self.config.cache_dir and self.want_mel else None
        self.bad_files: set[str] = set()
        self._cache_warned = False
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Select the crops and captions of ``epoch`` (call before each epoch; with persistent workers,
        recreate the loader's iterator so workers see it)."""
        self.epoch = int(epoch)

    # ---------------------------------------------------------------- items
    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.rows)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} clips")
        index %= n
        skipped: list[str] = []
        last_error: Exception | None = None
        for step in range(n):
            j = (index + step) % n
            path = str(self.rows[j].audio_path(self.manifest.root))
            if path in self.bad_files:
                skipped.append(path)
                continue
            try:
                item = self._item(j, path)
            except _BAD_FILE_ERRORS as e:
                log.warning("skipping bad audio file %s (manifest %s): %s", path, self.manifest.path, e)
                self.bad_files.add(path)
                skipped.append(path)
                last_error = e
                continue
            item["skipped"] = skipped
            return item
        raise AudioError(
            f"all {n} audio files of split {self.split!r} in manifest {self.manifest.path} are unreadable "
            f"(last error: {last_error}); run check_manifest on it to list the problems"
        )

    def _draws(self, j: int) -> tuple[float, float]:
        """(crop draw, caption draw) in [0, 1) for row ``j``: randomness drawn first, applied later."""
        epoch = self.epoch if self.random_crop else 0
        u = np.random.default_rng((self.seed, epoch, j)).random(2)
        return float(u[0]), float(u[1])

    def _item(self, j: int, path: str) -> dict[str, Any]:
        row = self.rows[j]
        u_crop, u_caption = self._draws(j)
        audio = self._load(path)  # [N]
        T, N = self.config.clip_samples, audio.shape[0]
        hop = self.mel_config.hop_length
        quantum = hop if self.want_mel else 1

        # 1. where to crop
        offset = 0
        if N > T:
            n_offsets = (N - T) // quantum + 1
            if self.random_crop:
                offset = min(int(u_crop * n_offsets), n_offsets - 1) * quantum
            elif self.config.valid_crop == "center":
                offset = (n_offsets // 2) * quantum

        # 2. cut and pad
        clip = np.zeros(T, dtype=np.float32)
        length = min(T, N - offset)
        clip[:length] = audio[offset : offset + length]
        item: dict[str, Any] = {
            "audio": torch.from_numpy(clip),
            "length": length,
            "caption": row.captions[min(int(u_caption * len(row.captions)), len(row.captions) - 1)]
            if row.captions
            else "",
            "captions": list(row.captions),
            "labels": list(row.labels),
            "label_ids": self._multi_hot(row.labels),
            "id": row.id,
            "index": j,
        }

        # 3. features, cut from the whole file's features at the same place
        if self.want_mel:
            full = self._full_mel(path, audio)  # [n_mels, N // hop + 1]
            n_frames = T // hop + 1
            start = offset // hop
            mel = np.full((full.shape[0], n_frames), LOG_FLOOR, dtype=np.float32)
            part = np.asarray(full[:, start : start + n_frames], dtype=np.float32)
            mel[:, : part.shape[1]] = part
            item["mel"] = torch.from_numpy(mel)
        return item

    def _multi_hot(self, labels: list[str]) -> torch.Tensor:
        out = torch.zeros(len(self.labels), dtype=torch.float32)
        for label in labels:
            out[self._label_index[label]] = 1.0
        return out

    def _load(self, path: str) -> np.ndarray:
        """The whole file, mono at ``config.sample_rate``, silence-trimmed if asked: float32 ``[N]``."""
        audio, _ = load_audio(path, sample_rate=self.config.sample_rate, mono=True)
        audio = np.asarray(audio, dtype=np.float32)
        if audio.size == 0:
            raise AudioError(f"audio file {path} is empty after resampling; remove it from the manifest")
        if self.config.trim_silence:
            import librosa  # slow to import; only when asked

            trimmed, _ = librosa.effects.trim(audio, top_db=self.config.trim_top_db)
            if trimmed.size > 0:  # an all-silent file stays as it is
                audio = np.ascontiguousarray(trimmed, dtype=np.float32)
        return audio

    def _feature_config(self) -> dict[str, Any]:
        """Everything besides the file's bytes that the whole-file mel depends on (the cache key)."""
        return {
            "mel": self.mel_config,
            "sample_rate": self.config.sample_rate,
            "trim_top_db": self.config.trim_top_db if self.config.trim_silence else None,
            "log": True,
        }

    def _full_mel(self, path: str, audio: np.ndarray) -> np.ndarray:
        def compute() -> np.ndarray:
            return mel_spectrogram(audio, self.mel_config).numpy().astype(np.float32)

        if self.cache is None:
            return compute()
        try:
            key = self.cache.feature_key(path, "mel", self._feature_config())
            return self.cache.get_or_compute(key, compute, mmap=True)
        except OSError as e:  # a full or read-only cache folder must not mark the audio file bad
            if not self._cache_warned:
                log.warning(
                    "feature cache %s unusable (%s); computing features without it", self.cache.directory, e
                )
                self._cache_warned = True
            return compute()


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items: ``audio [B, T]``, ``mel [B, n_mels, frames]``, ``label_ids [B, n_labels]``,
    ``length``/``index`` int64 ``[B]``; ``caption``, ``captions``, ``labels``, ``id`` stay lists;
    ``skipped`` is one flat list of the bad files passed over."""
    if not items:
        raise ValueError("collate_clips needs at least one item")
    batch: dict[str, Any] = {
        "audio": torch.stack([it["audio"] for it in items]),
        "length": torch.tensor([it["length"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "label_ids": torch.stack([it["label_ids"] for it in items]),
        "caption": [it["caption"] for it in items],
        "captions": [it["captions"] for it in items],
        "labels": [it["labels"] for it in items],
        "id": [it["id"] for it in items],
        "skipped": [p for it in items for p in it.get("skipped", [])],
    }
    if "mel" in items[0]:
        batch["mel"] = torch.stack([it["mel"] for it in items])
    return batch


def clip_loader(
    dataset: ClipDataset,
    batch_size: int,
    shuffle: bool = True,
    epoch: int = 0,
    num_workers: int | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader over ``dataset`` for one epoch: sets the epoch, shuffles with a generator seeded by
    ``(seed, epoch)`` (so the order, like the crops, is reproducible) and batches with :func:`collate_clips`."""
    dataset.set_epoch(epoch)
    workers = dataset.config.num_workers if num_workers is None else num_workers
    generator = torch.Generator().manual_seed(mix_seed(dataset.seed, epoch, "clip_loader"))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=collate_clips,
        generator=generator,
        drop_last=drop_last,
        persistent_workers=False,
    )


__all__ = ["DataConfig", "ClipDataset", "collate_clips", "clip_loader"]
