"""Files that soundsmith publishes atomically get ordinary permissions, not mkstemp's owner-only 0600."""

import stat

import numpy as np

from soundsmith.audio import save_audio
from soundsmith.data import ManifestRow, write_manifest
from soundsmith.fileio import DEFAULT_FILE_MODE


def test_published_files_have_default_permissions(tmp_path):
    wav = save_audio(tmp_path / "a.wav", np.zeros(160, np.float32) + 0.1, 16000, metadata={"prompt": "x"})
    manifest = write_manifest(tmp_path / "m.jsonl", [ManifestRow("a.wav", ["x"], [], 0.01, 16000)])
    for path in (wav, manifest):
        assert stat.S_IMODE(path.stat().st_mode) == DEFAULT_FILE_MODE
    assert DEFAULT_FILE_MODE & stat.S_IRUSR and DEFAULT_FILE_MODE != 0o600
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind
