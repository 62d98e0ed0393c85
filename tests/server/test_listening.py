"""Listening tests: blind clips, OVL/REL ratings stored in SQLite, per-system means with 95% intervals as CSV."""

from __future__ import annotations

import csv
import io
import math

import pytest
from fastapi.testclient import TestClient

from soundsmith.server import ServerSettings, create_app
from soundsmith.server.listening import mean_ci95, summary, system_of

T_975_DF2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom


def test_mean_and_interval():
    mean, half = mean_ci95([50, 60, 70])
    assert mean == 60 and half == pytest.approx(T_975_DF2 * 10 / math.sqrt(3))
    assert mean_ci95([42])[0] == 42 and math.isnan(mean_ci95([42])[1])


def test_system_is_model_and_settings_not_prompt_or_seed():
    a = system_of("tiny", {"prompt": "x", "seed": 1, "duration": 1.0, "steps": None, "temperature": 0.5})
    b = system_of("tiny", {"prompt": "y", "seed": 9, "duration": 2.0, "temperature": 0.5})
    assert a == b == "tiny (temperature=0.5)" and system_of("tiny", {"prompt": "x"}) == "tiny"
    rows = summary(
        [
            {"model": "m", "request": {}, "job_id": "j", "clip": 0, "rater": "r", "ovl": 80, "rel": 40},
            {"model": "m", "request": {}, "job_id": "k", "clip": 0, "rater": "s", "ovl": 60, "rel": 60},
        ]
    )
    assert rows[0] | {"ovl_ci95": 0, "rel_ci95": 0} == {
        "system": "m", "ratings": 2, "clips": 2, "raters": 2, "ovl_mean": 70.0, "ovl_ci95": 0, "rel_mean": 50.0,
        "rel_ci95": 0,
    }  # fmt: skip


@pytest.fixture
def client(tmp_path, wavenet_dir):
    with TestClient(create_app(ServerSettings(models={"tiny": wavenet_dir}, out_dir=tmp_path / "out"))) as c:
        yield c


def test_blind_rating_round_and_csv(client):
    for body in (
        {"prompt": "=HYPERLINK(1)", "seed": 1},
        {"prompt": "rain", "seed": 2, "num_candidates": 2},
        {"prompt": "rain", "seed": 3, "temperature": 0.5},
    ):
        assert (
            client.post("/v1/generate.wav", json={"duration": 0.02, **body, "num_candidates": 1}).status_code
            == 200
        )
    seen = []
    for _ in range(10):  # bounded: 3 clips to rate
        nxt = client.get("/v1/listening/next", params={"rater": "ann"}).json()
        if nxt["clip"] is None:
            break
        assert set(nxt) == {"clip", "prompt", "audio_url", "remaining"}  # blind: no model, no settings
        assert client.get(nxt["audio_url"]).status_code == 200
        r = client.post(
            "/v1/ratings", json={"clip": nxt["clip"], "ovl": 30 + 10 * len(seen), "rel": 70, "rater": "ann"}
        )
        assert r.status_code == 201
        seen.append(nxt["clip"])
    assert len(set(seen)) == 3 and nxt == {"clip": None, "remaining": 0}
    assert client.get("/v1/listening/next", params={"rater": "bob"}).json()["remaining"] == 3

    rows = list(csv.DictReader(io.StringIO(client.get("/v1/ratings.csv").text)))
    assert [(r["system"], r["ratings"]) for r in rows] == [("tiny", "2"), ("tiny (temperature=0.5)", "1")]
    assert rows[1]["ovl_ci95"] == "" and float(rows[0]["rel_mean"]) == 70.0
    raw = client.get("/v1/ratings.csv", params={"raw": "true"})
    assert (
        raw.headers["content-type"].startswith("text/csv")
        and "attachment" in raw.headers["content-disposition"]
    )
    prompts = {r["prompt"] for r in csv.DictReader(io.StringIO(raw.text))}
    assert prompts == {"'=HYPERLINK(1)", "rain"}  # a formula is quoted, not run by a spreadsheet


@pytest.mark.parametrize(
    "change,field",
    [
        ({"ovl": 0}, "ovl"),
        ({"rel": 101}, "rel"),
        ({"ovl": 50.5}, "ovl"),
        ({"rater": ""}, "rater"),
        ({"rater": "  "}, "rater"),
        ({"clip": "../../history.sqlite"}, "clip"),
        ({"clip": "0" * 32 + "-0"}, "clip"),
        ({"stars": 5}, "stars"),
    ],
)
def test_bad_ratings_name_the_field(client, change, field):
    job = client.post("/v1/generate.wav", json={"prompt": "x", "duration": 0.02}).headers["x-soundsmith-job"]
    body = {"clip": f"{job}-0", "ovl": 50, "rel": 50, "rater": "ann", **change}
    r = client.post("/v1/ratings", json=body)
    assert r.status_code in (404, 422) and r.json()["error"]["field"] == field, r.text
    assert client.get("/v1/ratings.csv").text.count("\n") == 1  # the header only: nothing stored
