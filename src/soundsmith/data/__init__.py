"""Data sets: manifests (JSON Lines), importers for public layouts, clip datasets and a feature cache."""

from soundsmith.data.cache import FeatureCache
from soundsmith.data.dataset import ClipDataset, DataConfig, clip_loader, collate_clips
from soundsmith.data.importers import (
    hash_split,
    import_audiocaps,
    import_audiomnist,
    import_clotho,
    import_esc50,
    import_folder,
)
from soundsmith.data.manifest import (
    SPLITS,
    Manifest,
    ManifestRow,
    Problem,
    check_manifest,
    read_manifest,
    write_manifest,
)

__all__ = [
    "SPLITS",
    "ClipDataset",
    "DataConfig",
    "FeatureCache",
    "Manifest",
    "ManifestRow",
    "Problem",
    "check_manifest",
    "clip_loader",
    "collate_clips",
    "hash_split",
    "import_audiocaps",
    "import_audiomnist",
    "import_clotho",
    "import_esc50",
    "import_folder",
    "read_manifest",
    "write_manifest",
]
