"""The server does not care which family it serves: every declared generator, built from its tiny preset and
saved as a model directory, is served through the same endpoints."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from soundsmith import families
from soundsmith.pipelines import generator_families
from soundsmith.server import ServerSettings, create_app
from soundsmith.server.catalog import accepted_options

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from contract_checks import tiny_model_dir  # noqa: E402


@pytest.mark.parametrize("name", generator_families())
def test_generator_family_is_served(name, tmp_path):
    model_dir = tiny_model_dir(name, tmp_path / name)
    settings = ServerSettings(models={name: model_dir}, out_dir=tmp_path / "out")
    with TestClient(create_app(settings)) as client:
        (info,) = client.get("/v1/models").json()["models"]
        assert info["family"] == name
        assert info["options"] == accepted_options(families.get(name).pipeline_class())
        body = {"prompt": "a bell rings", "duration": 0.1, "seed": 2, "steps": 2}
        r = client.post("/v1/generate.wav", json=body)
        assert r.status_code == 200, r.text
        audio, sr = sf.read(io.BytesIO(r.content), dtype="float32")
        assert sr == info["sample_rate"] and audio.shape == (round(0.1 * sr),)
        assert r.headers["x-soundsmith-family"] == name
        again = client.post("/v1/generate.wav", json=body)
        np.testing.assert_array_equal(sf.read(io.BytesIO(again.content), dtype="float32")[0], audio)
