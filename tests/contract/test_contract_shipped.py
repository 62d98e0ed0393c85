"""Shipped models are found by name from the source tree, from $SOUNDSMITH_MODELS and from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from soundsmith.errors import ModelError
from soundsmith.models.registry import (
    SHIPPED_DIR,
    SHIPPED_ENV,
    load_model,
    resolve_model_dir,
    save_model,
    shipped_dirs,
    shipped_models,
)
from soundsmith.models.tagger import AudioTagger, TaggerConfig

ROOT = Path(__file__).resolve().parents[2]


def _tiny_tagger(directory: Path) -> Path:
    torch.manual_seed(0)
    return save_model(AudioTagger(TaggerConfig(labels=["a", "b"])), directory)


def test_search_path_order_and_shadowing(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    _tiny_tagger(first / "mine")
    _tiny_tagger(second / "mine")
    _tiny_tagger(second / "other")
    monkeypatch.setenv(SHIPPED_ENV, os.pathsep.join([str(first), str(second)]))
    assert shipped_dirs()[:2] == [first, second] and shipped_dirs()[-1] == SHIPPED_DIR
    found = shipped_models()
    assert found["mine"] == first / "mine" and found["other"] == second / "other"
    assert resolve_model_dir("mine") == first / "mine"
    assert type(load_model("other")) is AudioTagger
    with pytest.raises(ModelError, match="no_such: not a model directory.*shipped models: .*mine, other"):
        resolve_model_dir("no_such")


def test_a_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    _tiny_tagger(tmp_path / "shipped" / "m")
    _tiny_tagger(tmp_path / "work" / "m")
    monkeypatch.setenv(SHIPPED_ENV, str(tmp_path / "shipped"))
    monkeypatch.chdir(tmp_path / "work")
    assert resolve_model_dir("m") == Path("m")


@pytest.mark.slow
@pytest.mark.skipif(not (SHIPPED_DIR / "tagger" / "config.json").is_file(), reason="no shipped tagger")
def test_shipped_model_loads_from_an_installed_wheel(tmp_path):
    # 1. a copy of the project as git would hand it out (tracked and new files), so the build leaves no trace here
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    src = tmp_path / "project"
    for name in filter(None, listed):
        rel = Path(name.decode())
        origin = ROOT / rel
        if not origin.exists() and not origin.is_symlink():
            continue  # deleted in the working tree
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            target.symlink_to(origin.readlink())
        elif origin.is_file():
            target.write_bytes(origin.read_bytes())
    # 2. build the wheel and install it (no dependencies: they are this interpreter's) into a folder of its own
    dist, site = tmp_path / "dist", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)], check=True
    )
    (wheel,) = dist.glob("soundsmith-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    # 3. load the shipped tagger from outside any source tree
    code = (
        "import soundsmith, sys; from soundsmith.models.registry import load_model, resolve_model_dir;"
        f"assert soundsmith.__file__.startswith({str(site)!r}), soundsmith.__file__;"
        "m = load_model('tagger'); print(resolve_model_dir('tagger'), type(m).__name__)"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    where, cls = r.stdout.split()
    assert Path(where).is_relative_to(site) and cls == "AudioTagger"
