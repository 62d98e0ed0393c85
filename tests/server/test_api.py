"""The HTTP API against a tiny WaveNet and a gated fake family: generation, validation, limits, history."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from soundsmith.audio import read_metadata
from soundsmith.models.registry import weights_sha256
from soundsmith.server import ServerSettings, create_app
from soundsmith.server.history import History

KEY = "a-long-test-key"


def client_for(tmp_path, models, **kw) -> TestClient:
    return TestClient(create_app(ServerSettings(models=models, out_dir=tmp_path / "out", **kw)))


def wait_job(client: TestClient, url: str, headers=None, limit_s: float = 30.0) -> dict:
    """Poll a job until it leaves queued/running (bounded)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        job = client.get(url, headers=headers).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {url} still {job['status']} after {limit_s} s")


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.fixture
def client(tmp_path, wavenet_dir):
    with client_for(tmp_path, {"tiny": wavenet_dir}) as c:
        yield c


def test_health_and_models_describe_without_loading(client, wavenet_dir):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"] == ["tiny"] and health["models_loaded"] == []
    assert health["queue"] == {"pending": 0, "running": 0, "depth": 8}
    info = client.get("/v1/models").json()
    assert info["default"] == "tiny"
    (model,) = info["models"]
    assert model["family"] == "wavenet" and model["sample_rate"] == 8000 and model["loaded"] is False
    assert model["options"] == ["temperature", "top_k", "top_p"]
    assert info["limits"]["max_duration"] == 30.0


def test_generate_wav_returns_the_clip_with_provenance(client, wavenet_dir):
    r = client.post("/v1/generate.wav", json={"prompt": "a bell", "duration": 0.05, "seed": 3})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    audio, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 8000 and audio.shape == (400,) and np.abs(audio).max() > 0
    assert r.headers["x-soundsmith-seed"] == "3" and r.headers["x-soundsmith-family"] == "wavenet"
    assert r.headers["x-soundsmith-weights-sha256"] == weights_sha256(wavenet_dir)
    again = client.post("/v1/generate.wav", json={"prompt": "a bell", "duration": 0.05, "seed": 3})
    np.testing.assert_array_equal(sf.read(io.BytesIO(again.content), dtype="float32")[0], audio)
    other = client.post("/v1/generate.wav", json={"prompt": "a bell", "duration": 0.05, "seed": 4})
    assert not np.array_equal(sf.read(io.BytesIO(other.content), dtype="float32")[0], audio)
    assert client.get("/health").json()["models_loaded"] == ["tiny"]  # loaded once, on first use


def test_job_lifecycle_candidates_audio_and_spectrogram(client, tmp_path):
    r = client.post(
        "/v1/generate", json={"prompt": " rain ", "duration": 0.05, "seed": 10, "num_candidates": 2}
    )
    assert r.status_code == 202 and r.headers["location"] == r.json()["url"]
    job = wait_job(client, r.json()["url"])
    assert job["status"] == "done", job
    assert job["prompt"] == "rain" and job["seed"] == 10 and job["sample_rate"] == 8000
    assert [c["seed"] for c in job["clips"]] == [10, 11]
    assert job["meta"]["family"] == "wavenet" and job["meta"]["temperature"] == 1.0
    second = client.get(job["clips"][1]["url"])
    assert second.status_code == 200 and second.headers["content-type"] == "audio/wav"
    single = client.post("/v1/generate.wav", json={"prompt": "rain", "duration": 0.05, "seed": 11})
    np.testing.assert_array_equal(
        sf.read(io.BytesIO(second.content))[0], sf.read(io.BytesIO(single.content))[0]
    )  # candidate 1 equals a single run with seed + 1
    stored = tmp_path / "out" / "audio" / f"{job['id']}-1.wav"
    assert read_metadata(stored)["prompt"] == "rain"
    png = client.get(job["clips"][0]["spectrogram_url"])
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    listed = client.get("/v1/jobs", params={"q": "rai"}).json()["jobs"]
    assert [j["id"] for j in listed] == [single.headers["x-soundsmith-job"], job["id"]]  # newest first
    assert client.get("/v1/jobs", params={"q": "thunder"}).json()["jobs"] == []


def test_family_options_are_forwarded(client):
    r = client.post("/v1/generate", json={"prompt": "x", "duration": 0.02, "seed": 1, "temperature": 0.5})
    job = wait_job(client, r.json()["url"])
    assert job["meta"]["temperature"] == 0.5 and job["request"]["temperature"] == 0.5


BAD_REQUESTS = [
    ({"prompt": ""}, 422, "prompt", "empty"),
    ({"prompt": "   "}, 422, "prompt", "empty"),
    ({"prompt": "x" * 501}, 422, "prompt", "limit is 500"),
    ({"duration": 1e9}, 422, "duration", "<= 30"),
    ({"duration": -1}, 422, "duration", "> 0"),
    ({"duration": 0}, 422, "duration", "> 0"),
    ({"duration": "long"}, 422, "duration", "duration"),
    ({"model": "nope"}, 422, "model", "['tiny']"),
    ({"model": "../../etc/passwd"}, 422, "model", "not served here"),
    ({"num_candidates": 0}, 422, "num_candidates", "from 1 to 4"),
    ({"num_candidates": 100}, 422, "num_candidates", "from 1 to 4"),
    ({"num_candidates": True}, 422, "num_candidates", "num_candidates"),
    ({"seed": -1}, 422, "seed", "from 0"),
    ({"seed": 1.5}, 422, "seed", "seed"),
    ({"steps": 0}, 422, "steps", "from 1 to 500"),
    ({"guidance": -2}, 422, "guidance", ">= 0"),
    ({"negative_prompt": "noise"}, 422, "negative_prompt", "family wavenet"),
    ({"compose": True}, 422, "compose", "family wavenet"),
    ({"compose": "yes"}, 422, "compose", "compose"),
    ({"temperature": 0}, 422, "temperature", "> 0"),
    ({"top_p": 2}, 422, "top_p", "<= 1"),
    ({"colour": "blue"}, 422, "colour", "unknown field 'colour'"),
]


@pytest.mark.parametrize("change,status,field,words", BAD_REQUESTS)
def test_bad_requests_get_a_4xx_naming_the_field(client, change, status, field, words):
    body = {"prompt": "a bell", "duration": 0.05, **change}
    error = error_of(client.post("/v1/generate", json=body), status)
    assert error["field"] == field and words in error["message"], error
    assert client.get("/v1/jobs").json()["jobs"] == []  # nothing was queued


@pytest.mark.parametrize(
    "body,status,words",
    [
        (b'{"prompt": "a bell",', 400, "not valid JSON"),
        (b'["a bell"]', 422, "JSON object"),
        (b'{"duration": 1}', 422, "prompt is required"),
        (b'{"prompt": "a", "duration": NaN}', 422, "duration"),
        (b"", 422, "JSON body"),
    ],
)
def test_malformed_bodies(client, body, status, words):
    r = client.post("/v1/generate", content=body, headers={"Content-Type": "application/json"})
    assert words in error_of(r, status)["message"]


def test_oversized_body_is_refused(client):
    r = client.post("/v1/generate", content=b'{"prompt": "' + b"x" * 70_000 + b'"}')
    assert "over 65536 bytes" in error_of(r, 413)["message"]


def test_unknown_paths_and_traversal_attempts_are_404(client):
    r = client.post("/v1/generate.wav", json={"prompt": "a", "duration": 0.02, "seed": 0})
    job_id = r.headers["x-soundsmith-job"]
    assert client.get(f"/v1/audio/{job_id}-0.wav").status_code == 200
    for path in (
        f"/v1/audio/{job_id}-5.wav",  # no such candidate
        "/v1/audio/..%2Fhistory.sqlite",
        "/v1/audio/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        f"/v1/audio/{job_id}-0.wav%00.png",
        "/v1/audio/" + "0" * 32 + "-0.wav",
        "/v1/jobs/..%2F..%2Fhistory.sqlite",
        "/static/..%2Fapp.py",
        "/nowhere",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("application/json") or path.startswith("/static"), path


def test_api_key(tmp_path, wavenet_dir):
    with client_for(tmp_path, {"tiny": wavenet_dir}, api_key=KEY) as c:
        assert c.get("/health").json()["auth"] is True  # health stays open
        assert c.get("/").status_code == 200  # so does the page (it holds no data)
        error = error_of(c.get("/v1/models"), 401)
        assert "API key" in error["message"]
        assert error_of(c.get("/v1/models", headers={"Authorization": "Bearer wrong-key-123"}), 401)
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200
        assert error_of(c.post("/v1/generate", json={"prompt": "a"}), 401)


def test_full_queue_answers_429_then_recovers(tmp_path, gate):
    with client_for(tmp_path, {"gate": gate}, queue_depth=2, workers=1) as c:
        first = c.post("/v1/generate", json={"prompt": "one", "duration": 0.01})
        assert gate.started.wait(10)
        second = c.post("/v1/generate", json={"prompt": "two", "duration": 0.01})
        assert first.status_code == second.status_code == 202
        assert c.get(second.json()["url"]).json()["position"] == 1
        full = c.post("/v1/generate", json={"prompt": "three", "duration": 0.01})
        assert "queue depth 2" in error_of(full, 429)["message"] and full.headers["retry-after"] == "5"
        assert c.get("/health").json()["queue"] == {"pending": 2, "running": 1, "depth": 2}
        gate.gate.set()
        assert [wait_job(c, r.json()["url"])["status"] for r in (first, second)] == ["done", "done"]
        assert c.post("/v1/generate.wav", json={"prompt": "four", "duration": 0.01}).status_code == 200
        assert [call["prompt"] for call in gate.calls] == ["one", "two", "four"]


def test_job_waiting_past_the_timeout_fails_explicitly(tmp_path, gate):
    with client_for(tmp_path, {"gate": gate}, timeout_s=0.2) as c:
        first = c.post("/v1/generate", json={"prompt": "one", "duration": 0.01})
        assert gate.started.wait(10)
        second = c.post("/v1/generate", json={"prompt": "two", "duration": 0.01})
        time.sleep(0.3)  # the second job is now older than the timeout
        gate.gate.set()
        assert wait_job(c, first.json()["url"])["status"] == "done"
        late = wait_job(c, second.json()["url"])
        assert late["status"] == "failed" and "timed out" in late["error"]


def test_pipeline_errors_fail_the_job_and_the_server_stays_up(tmp_path, gate):
    gate.gate.set()
    with client_for(tmp_path, {"gate": gate}) as c:
        user = c.post("/v1/generate.wav", json={"prompt": "refuse", "duration": 0.01})
        assert "refuses" in error_of(user, 422)["message"]
        bug = c.post("/v1/generate.wav", json={"prompt": "crash", "duration": 0.01})
        assert "internal error: RuntimeError: boom" in error_of(bug, 500)["message"]
        failed = c.get("/v1/jobs").json()["jobs"]
        assert [j["status"] for j in failed] == ["failed", "failed"]
        ok = c.post("/v1/generate.wav", json={"prompt": "fine", "duration": 0.01, "negative_prompt": " hum "})
        assert ok.status_code == 200 and gate.calls[-1]["negative_prompt"] == "hum"
        error = error_of(c.post("/v1/generate.wav", json={"prompt": "x", "num_candidates": 2}), 422)
        assert error["field"] == "num_candidates"


def test_shutdown_fails_queued_jobs_and_refuses_new_ones(tmp_path, gate):
    with client_for(tmp_path, {"gate": gate}) as c:
        running = c.post("/v1/generate", json={"prompt": "one", "duration": 0.01}).json()
        assert gate.started.wait(10)
        queued = c.post("/v1/generate", json={"prompt": "two", "duration": 0.01}).json()
        c.app.state.runner.shutdown(wait=False)
        assert "shutting down" in error_of(c.post("/v1/generate", json={"prompt": "x"}), 503)["message"]
        dropped = c.get(queued["url"]).json()
        assert dropped["status"] == "failed" and "shut down before this job started" in dropped["error"]
        gate.gate.set()
        assert wait_job(c, running["url"])["status"] == "done"  # the running job finishes


def test_history_survives_a_restart_and_unfinished_jobs_are_failed(tmp_path, wavenet_dir):
    models = {"tiny": wavenet_dir}
    with client_for(tmp_path, models) as c:
        done = c.post("/v1/generate.wav", json={"prompt": "kept", "duration": 0.02, "seed": 5})
        audio = done.content
    # a server killed with a job in flight leaves it 'running' in the index
    History(tmp_path / "out" / "history.sqlite").add("f" * 32, "tiny", "lost", {"prompt": "lost"})
    with client_for(tmp_path, models) as c:
        jobs = {j["prompt"]: j for j in c.get("/v1/jobs").json()["jobs"]}
        assert jobs["kept"]["status"] == "done" and jobs["kept"]["seed"] == 5
        assert c.get(jobs["kept"]["clips"][0]["url"]).content == audio
        assert (
            jobs["lost"]["status"] == "failed" and "stopped before this job finished" in jobs["lost"]["error"]
        )


def test_page_and_openapi_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="prompt"' in page.text and "/static/app.js" in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "/v1/generate" in script.text
    schema = client.get("/openapi.json").json()
    assert {"/v1/generate", "/v1/generate.wav", "/v1/jobs/{job_id}", "/health"} <= set(schema["paths"])
    fields = schema["components"]["schemas"]["GenerateRequest"]["properties"]
    assert {"prompt", "duration", "seed", "steps", "guidance", "num_candidates", "negative_prompt"} <= set(
        fields
    )
    assert json.loads(json.dumps(schema))  # plain JSON


def test_load_script_below_and_above_the_queue_depth(tmp_path, gate):
    from soundsmith.server.loadtest import local_server, run_load

    gate.gate.set()
    body = {"prompt": "load", "duration": 0.01, "seed": 0}
    with local_server({"gate": gate}, tmp_path / "out", queue_depth=2) as url:
        below = run_load(url, clients=2, requests=8, body=body, max_seconds=60)
        assert below["ok"] == 8 and below["errors"] == below["refused_429"] == 0
        gate.gate.clear()  # hold the first job: the other clients find the queue full
        threading.Timer(2.0, gate.gate.set).start()
        above = run_load(url, clients=4, requests=4, body=body, max_seconds=60)
        assert above["errors"] == 0 and above["refused_429"] >= 1 and above["ok"] >= 2
    with pytest.raises(ValueError, match="loopback"):
        run_load("http://10.0.0.1:8000", clients=1, requests=1, body=body)
