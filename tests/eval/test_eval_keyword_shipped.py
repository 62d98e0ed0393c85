"""The shipped spoken-word recognizer reproduces its recorded figures on freshly synthesized clips."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "keyword"
FIGURES = ROOT / "docs" / "keyword_figures.json"


@pytest.mark.skipif(not (MODEL / "model.safetensors").is_file(), reason="models/keyword not shipped")
def test_shipped_recognizer_reproduces_its_fixed_sample_figures():
    from soundsmith.eval.recognizer import SAMPLE_SEED, figures_from_predictions, fixed_sample, predict
    from soundsmith.models.registry import load_model

    recorded = json.loads(FIGURES.read_text())
    sha = hashlib.sha256((MODEL / "model.safetensors").read_bytes()).hexdigest()
    assert sha == recorded["weights_sha256"], (
        "models/keyword changed: re-run scripts/keyword_figures.py --sample"
    )
    model = load_model(MODEL)
    clips, targets = fixed_sample(recorded["seed"])
    assert recorded["seed"] == SAMPLE_SEED and targets == recorded["targets"]
    preds = predict(model, clips)
    figures = figures_from_predictions(targets, preds, model.classes)
    assert preds == recorded["predictions"]  # CPU inference and speech rendering are deterministic
    assert figures["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-9)
    assert figures["word_accuracy"] >= 0.9 and figures["no_word_accuracy"] == 1.0
