"""``soundsmith models card`` writes a model card and ``soundsmith models show`` prints it (or the config, size
and hash of a model without one); bad input is a one-line error."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from soundsmith.cli.main import main
from soundsmith.data.manifest import read_manifest
from soundsmith.models import card as card_mod
from soundsmith.models.registry import load_model, weights_sha256

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from contract_checks import tiny_model_dir  # noqa: E402
from test_card import make_manifest  # noqa: E402


def _flat(text: str) -> str:
    """Output with line wrapping undone (``show`` wraps long lines)."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def model_and_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("show")
    return tiny_model_dir("latent_diffusion", root / "model"), make_manifest(root / "manifest.jsonl")


def _copy(model_dir: Path, where: Path) -> Path:
    return Path(shutil.copytree(model_dir, where))


def test_card_then_show_prints_the_training_data(model_and_manifest, tmp_path, capsys):
    model_dir, manifest = model_and_manifest
    model_dir = _copy(model_dir, tmp_path / "model")
    figures = {"fad": 1.25, "speed": {"x_realtime": 40}}
    argv = ["models", "card", str(model_dir), "--data", str(manifest), "--figures", json.dumps(figures)]
    assert main([*argv, "--command", "soundsmith train --config tiny.yaml"]) == 0
    assert capsys.readouterr().out.strip() == str(model_dir / card_mod.CARD_FILE)

    assert main(["models", "show", str(model_dir)]) == 0
    out = _flat(capsys.readouterr().out)
    rows = read_manifest(manifest).rows
    train = [r for r in rows if r.split == "train"]
    labels = Counter(label for r in train for label in r.labels)
    assert f"labels ({len(labels)})" in out
    for label, n in labels.items():
        assert f"{label} {n}" in out
    assert f"{len(rows)} clips" in out and f"train {len(train)}" in out
    assert "latent_diffusion (generator)" in out
    params = sum(v.numel() for v in load_model(model_dir).state_dict().values())
    assert f"{params:,} parameters" in out
    assert weights_sha256(model_dir)[:16] in out
    assert 'fad: 1.25; speed: {"x_realtime": 40}' in out
    assert "soundsmith train --config tiny.yaml" in out
    assert "words (2) no 1, yes 1" in out or "words (2) yes 1, no 1" in out
    assert "embedded with hashed:32" in out and "other weights" not in out


def test_show_without_card_prints_config_size_and_hash(model_and_manifest, capsys):
    model_dir, _ = model_and_manifest
    assert not (model_dir / card_mod.CARD_FILE).exists()
    assert main(["models", "show", str(model_dir)]) == 0
    out = _flat(capsys.readouterr().out)
    assert weights_sha256(model_dir)[:16] in out
    assert "denoiser.d_model=32" in out and 'text_encoder="hashed:32"' in out
    assert "soundsmith models card" in out and "labels" not in out


def test_show_flags_a_card_written_for_other_weights(model_and_manifest, tmp_path, capsys):
    model_dir, manifest = model_and_manifest
    model_dir = _copy(model_dir, tmp_path / "model")
    card_mod.write_card(model_dir, manifest)
    weights = model_dir / "model.safetensors"
    state = load_file(str(weights))
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] + 1.0
    save_file(state, str(weights))
    assert main(["models", "show", str(model_dir)]) == 0
    assert "other weights" in _flat(capsys.readouterr().out)


def test_figures_from_a_file(model_and_manifest, tmp_path, capsys):
    model_dir, manifest = model_and_manifest
    model_dir = _copy(model_dir, tmp_path / "model")
    figures = tmp_path / "figures.json"
    figures.write_text(json.dumps({"adherence_top1": 0.5}))
    assert main(["models", "card", str(model_dir), "--data", str(manifest), "--figures", str(figures)]) == 0
    assert card_mod.read_card(model_dir)["figures"] == {"adherence_top1": 0.5}


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--figures", "{not json"], "not valid JSON"),
        (["--figures", "[1, 2]"], "JSON object"),
        (["--max-captions", "0"], "--max-captions"),
    ],
)
def test_bad_card_options_are_one_line_errors(model_and_manifest, tmp_path, capsys, extra, words):
    model_dir, manifest = model_and_manifest
    assert main(["models", "card", str(model_dir), "--data", str(manifest), *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err
    assert not (model_dir / card_mod.CARD_FILE).exists()


def test_missing_manifest_and_unknown_model_are_one_line_errors(model_and_manifest, tmp_path, capsys):
    model_dir, _ = model_and_manifest
    assert main(["models", "card", str(model_dir), "--data", str(tmp_path / "none.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.jsonl" in err
    assert main(["models", "show", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nowhere" in err


def test_threshold_option_is_recorded(model_and_manifest, tmp_path):
    model_dir, manifest = model_and_manifest
    model_dir = _copy(model_dir, tmp_path / "model")
    assert main(["models", "card", str(model_dir), "--data", str(manifest), "--threshold", "0.99"]) == 0
    assert card_mod.read_card(model_dir)["prompt_check"]["threshold"] == pytest.approx(0.99)
    # a caption close to, but not exactly, a training caption now warns
    assert card_mod.warn_if_unknown(model_dir, "a dog barks") is not None
    assert card_mod.warn_if_unknown(model_dir, "a dog barks twice") is None
    assert torch.is_tensor(card_mod.read_card_captions(model_dir)[1])
