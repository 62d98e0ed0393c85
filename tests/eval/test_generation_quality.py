"""scripts/ld_quality.py and soundsmith.eval.generation_quality: the one-knob sweep, the template split, an end
to end run on a tiny latent-diffusion model and a tiny synthesized corpus, and the free-text prompt file."""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from soundsmith.eval import generation_quality as gq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "contract"))
from contract_checks import tiny_model_dir  # noqa: E402

FREE_TEXT = ROOT / "configs" / "prompts" / "free_text.jsonl"


def test_sweep_varies_one_knob_at_a_time_around_the_default():
    d = gq.Setting(steps=6, guidance=3.0, duration=4.0)
    got = gq.sweep_settings(d, steps=[2, 6, 16], guidance=[1, 3, 6], durations=[1, 4, 10])
    keys = [(s.knob, s.steps, s.guidance, s.duration) for s in got]
    assert keys == [
        ("default", 6, 3.0, 4.0),
        ("steps", 2, 3.0, 4.0),
        ("steps", 16, 3.0, 4.0),
        ("guidance", 6, 1, 4.0),
        ("guidance", 6, 6, 4.0),
        ("duration", 6, 3.0, 1),
        ("duration", 6, 3.0, 10),
    ]
    assert len({s.name for s in got}) == len(got)  # names identify settings (folder names)
    assert gq.sweep_settings(d) == [d]
    # the model's own guidance: kept by the steps and duration sweeps, a guidance sweep passes its values
    own = gq.sweep_settings(
        gq.Setting(steps=6, guidance=3.0, duration=4.0, own=True), steps=[2], guidance=[2], durations=[1]
    )
    assert [(s.knob, s.own) for s in own] == [
        ("default", True), ("steps", True), ("guidance", False), ("duration", True)
    ]
    assert gq.parse_list("2, 4,8", int) == [2, 4, 8] and gq.parse_list("") == []
    with pytest.raises(gq.ConfigError, match="comma-separated"):
        gq.parse_list("2;4", int)


def test_template_split_by_hand():
    rows = [
        {"template": "c5", "adherence": 1.0, "checks": {"class": True, "pitch": True}},
        {"template": "s6", "adherence": 0.5, "checks": {"class": True, "word": False}},
        {"template": "c0", "adherence": 0.0, "checks": {"class": False}},
        {"template": "s2", "adherence": 0.5, "checks": {"class": True, "loudness": 0.0}},
        {"template": "c7", "adherence": float("nan"), "checks": {}},  # nothing judged: left out
        {"template": None, "adherence": 1.0, "checks": {"class": True}},  # no template: left out
    ]
    out = gq.template_split(rows)
    assert out["held_out"]["clips"] == 2 and out["seen"]["clips"] == 2
    assert out["held_out"]["overall"] == pytest.approx(0.75)
    assert out["seen"]["overall"] == pytest.approx(0.25)
    assert out["gap"] == pytest.approx(-0.5)
    assert out["held_out"]["attributes"] == {"class": 1.0, "pitch": 1.0, "word": 0.0}
    assert out["seen"]["attributes"] == {"class": 0.5, "loudness": 0.0}
    # the held-out set can be given: then c0 counts as held out
    assert gq.template_split(rows, held_out={"c0"})["held_out"]["clips"] == 1


def test_mean_pairwise_distance():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert gq.mean_pairwise_distance(x) == pytest.approx((5 + 0 + 5) / 3)
    assert math.isnan(gq.mean_pairwise_distance(x[:1]))


def test_targets_read_the_default_setting():
    default = {"adherence": 0.95, "attributes": {"class": 0.9, "pitch": 0.5}, "fad": 3.0, "clap": 0.30}
    default["x_real_time"] = 0.04
    real = {"fad": 2.0, "clap": 0.33}
    t = gq.check_targets(default, real, {"gap": 0.02})
    assert t["adherence"]["met"] and t["attribute_class"]["met"] and not t["attribute_pitch"]["met"]
    assert t["attribute_word"]["met"] is None  # not asked: not measured
    assert t["fad_ratio"]["value"] == pytest.approx(1.5) and t["fad_ratio"]["met"]
    assert t["clap_gap"]["value"] == pytest.approx(-0.03) and t["clap_gap"]["met"]
    assert t["held_out_template_gap"]["met"] and t["x_real_time"]["met"]
    assert not gq.check_targets(default | {"fad": 5.0}, real, None)["fad_ratio"]["met"]


def _tiny_corpus(folder: Path) -> Path:
    """10 test clips of 1 s (4 prompts + 6 reference) and 2 valid ones, captioned like the corpus."""
    from soundsmith.audio import save_audio
    from soundsmith.data.synth.captions import caption_clip
    from soundsmith.data.synth.events import render_event

    classes = ["bell", "beeps", "sine_tone", "white_noise", "rising_sweep"]
    rows = []
    for i in range(12):
        split = "test" if i < 10 else "valid"
        rng = np.random.default_rng(i)
        audio, events = render_event(classes[i % len(classes)], duration=1.0, sample_rate=16000, rng=rng)
        captions, ids = caption_clip("events", events, rng, held_out=split == "test")
        save_audio(folder / f"audio/{i:03d}.wav", audio, 16000)
        meta = {"id": f"clip{i:03d}", "family": "events", "events": events, "caption_templates": ids}
        rows.append({"audio": f"audio/{i:03d}.wav", "captions": captions, "labels": [events[0]["class"]]}
                    | {"duration": 1.0, "sample_rate": 16000, "split": split, "meta": meta})  # fmt: skip
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ldq")
    model = tiny_model_dir("latent_diffusion", root / "model")
    manifest = _tiny_corpus(root / "corpus")
    free = root / "free.jsonl"
    lines = [json.loads(x) for x in FREE_TEXT.read_text().splitlines()[:2]]
    free.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = root / "out"
    argv = [
        "ld_quality.py", "--model", str(model), "--manifest", str(manifest), "--split", "test", "--limit", "4",
        "--out", str(out), "--steps", "2,3", "--guidance", "", "--durations", "", "--default-steps", "2",
        "--default-guidance", "2", "--default-duration", "1", "--seeds-variety", "2", "--free-text", str(free),
    ]  # fmt: skip
    sys.argv = argv
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts" / "ld_quality.py"), run_name="__main__")
    return exit_info.value.code, out


def test_script_end_to_end(run, capsys):
    code, out = run
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["n_prompts"] == 4 and res["n_reference"] == 6
    assert [(s["knob"], s["steps"]) for s in res["settings"]] == [("default", 2), ("steps", 3)]
    for s in res["settings"]:
        assert s["n"] == 4 and s["duration"] == 1.0 and s["audio_seconds"] == pytest.approx(4.0)
        assert 0.0 <= s["adherence"] <= 1.0
        assert s["attributes"] and all(0.0 <= v <= 1.0 for v in s["attributes"].values())
        assert s["fad"] >= 0.0 and -1.0 <= s["clap"] <= 1.0 and s["x_real_time"] > 0.0
        assert len(list((out / "settings" / s["name"] / "audio").glob("*.wav"))) == 4
    real = res["real"]
    assert real["n"] == 4 and real["fad"] >= 0.0 and -1.0 <= real["clap"] <= 1.0
    # real clips scored against their own annotations adhere better than a random tiny model's output
    assert real["adherence"] > res["settings"][0]["adherence"]
    # the same clips through the tiny model's VAE + vocoder: scored like the real ones, from the round-trip audio
    trip = res["round_trip"]
    assert trip["n"] == 4 and trip["fad"] >= 0.0 and trip["adherence"] != real["adherence"]
    import soundsmith
    from soundsmith.audio import load_audio

    rows = [json.loads(x) for x in (out / "round_trip" / "clips.jsonl").read_text().splitlines()]
    originals = [json.loads(x) for x in (out / "real" / "clips.jsonl").read_text().splitlines()]
    assert [r["meta"] for r in rows] == [r["meta"] for r in originals]  # same annotations, other audio
    pipe = soundsmith.load(res["model"])
    first, _ = load_audio(out / "real" / originals[0]["audio"], sample_rate=pipe.sample_rate)
    again, _ = load_audio(out / "round_trip" / rows[0]["audio"], sample_rate=pipe.sample_rate)
    np.testing.assert_allclose(again, pipe.round_trip(first), atol=1e-4)  # 16-bit WAV

    # real and round-trip clips are held to what the generated clips' prompts ask, no more and no less
    def asks(folder: Path) -> dict[str, dict]:
        metrics = json.loads((folder / "eval" / "metrics.json").read_text())
        return {c["id"].split("#")[0]: c["asks"] for c in metrics["per_clip"]}

    generated = asks(out / "settings" / res["settings"][0]["name"])
    assert len(generated) == 4 and generated == asks(out / "real") == asks(out / "round_trip")
    split = res["template_split"]
    assert split["held_out"]["clips"] == 4 and split["seen"]["clips"] == 4  # test captions: held out
    assert split["gap"] == pytest.approx(split["seen"]["overall"] - split["held_out"]["overall"])
    seen_prompts = [
        json.loads(x) for x in (out / "seen_templates" / "prompts.jsonl").read_text().splitlines()
    ]
    assert {p["meta"]["template"] for p in seen_prompts} <= {"c0", "c1", "c2", "c3", "c4"}
    v = res["variety"]
    assert v["seeds"] == 2 and 1 <= len(v["prompts"]) <= 2
    assert all(p["generated"] > 0.0 and p["real"] > 0.0 for p in v["prompts"])  # seeds differ
    assert res["free_text"]["n"] == 2
    assert set(res["targets"]) >= {"adherence", "fad_ratio", "clap_gap", "held_out_template_gap"}
    assert res["targets"]["fad_ratio"]["value"] == pytest.approx(res["settings"][0]["fad"] / real["fad"])
    assert (out / "quality.png").stat().st_size > 1000
    table = (out / "table.md").read_text()
    assert table.count("\n| default |") == 1 and "| real clips |" in table and "| free text |" in table
    assert "| real clips, VAE + vocoder round trip |" in table


def test_free_text_prompts_cover_every_attribute_in_the_evaluators_vocabulary():
    from soundsmith.data.synth.captions import EVENT_TEMPLATES
    from soundsmith.eval.adherence import asks_from_attributes
    from soundsmith.eval.embedders import load_eval_model
    from soundsmith.models.keyword import CORPUS_WORDS

    labels = set(load_eval_model("tagger", "tagger").config.labels)
    prompts = gq.read_prompt_file(FREE_TEXT)
    assert len(prompts) == 40 and len({p.id for p in prompts}) == 40
    covered: set[str] = set()
    loud = set()
    template_openings = [t.split("{")[0] for t in EVENT_TEMPLATES.values() if not t.startswith("{")]
    for p in prompts:
        assert p.labels and set(p.labels) <= labels, p.id
        assert not p.prompt.lower().startswith(tuple(template_openings)), p.id
        asks = asks_from_attributes(p.labels, p.attributes)
        assert asks, p.id
        if "word" in asks:
            assert asks["word"] in CORPUS_WORDS and f"speech_{asks['word']}" in p.labels
        if "pitch" in asks and "register" in asks:
            lo, hi = asks["register_range"]
            assert lo <= asks["pitch"] <= hi, p.id  # the register named is the note's
        loud.add(asks.get("loudness"))
        covered |= set(asks)
    assert set(gq.TABLE_ATTRIBUTES) <= covered
    assert {"soft", "loud"} <= loud  # loudness is judged on soft/loud pairs


def test_candidates_reach_the_pipeline_and_bad_counts_are_refused(tmp_path):
    from soundsmith.errors import ConfigError
    from soundsmith.eval.generation_quality import Prompt, QualityConfig, Setting, generate_set

    calls = []

    class Out:
        def save(self, path, index=None):
            assert index == 0  # the best candidate only, under the name the prompt rows give
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(b"")

    def pipe(prompt, **kwargs):
        calls.append(kwargs)
        return Out()

    prompts = [Prompt(id="a", prompt="a bell"), Prompt(id="b", prompt="rain")]
    generate_set(pipe, prompts, Setting(steps=2, guidance=1.0, duration=1.0), tmp_path / "one")
    generate_set(
        pipe, prompts, Setting(steps=2, guidance=1.0, duration=1.0), tmp_path / "three", candidates=3
    )
    assert ["num_candidates" in c for c in calls] == [False, False, True, True]
    assert calls[-1]["num_candidates"] == 3 and [c["seed"] for c in calls[2:]] == [0, 1]
    generate_set(pipe, prompts[:1], Setting(steps=2, guidance=1.0, duration=1.0, own=True), tmp_path / "own")
    assert "guidance" in calls[0] and calls[-1]["steps"] == 2 and "guidance" not in calls[-1]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="candidates"):
            QualityConfig(candidates=bad)


def test_rescore_reproduces_the_run_and_refuses_a_folder_without_one(run, tmp_path):
    from soundsmith.errors import ManifestError

    code, out = run
    assert code == 0
    before = json.loads((out / "results.json").read_text())
    sys.argv = ["ld_quality.py", "--rescore", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts" / "ld_quality.py"), run_name="__main__")
    assert exit_info.value.code == 0
    after = json.loads((out / "results_rescored.json").read_text())
    for key in ("adherence", "attributes", "fad", "clap"):  # same clips, same evaluators: same figures
        assert after["settings"][0][key] == pytest.approx(before["settings"][0][key])
        assert after["round_trip"][key] == pytest.approx(before["round_trip"][key])
    assert after["real"]["adherence"] == pytest.approx(before["real"]["adherence"])
    assert after["free_text"]["n"] == 2 and after["targets"].keys() == before["targets"].keys()
    assert "| real clips |" in (out / "table_rescored.md").read_text()
    with pytest.raises(ManifestError, match="results.json"):
        gq.rescore(tmp_path)


def test_compare_models_scores_two_families_on_the_same_prompts(tmp_path, capsys):
    root = tmp_path
    ld = tiny_model_dir("latent_diffusion", root / "ld")
    gan = tiny_model_dir("ganmix", root / "gan")
    manifest = _tiny_corpus(root / "corpus")
    out = root / "cmp"
    sys.argv = ["compare_models.py", "--models", str(ld), str(gan), "--manifest", str(manifest), "--limit", "3",
                "--duration", "1", "--out", str(out)]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts" / "compare_models.py"), run_name="__main__")
    assert exit_info.value.code == 0
    res = json.loads((out / "comparison.json").read_text())
    assert [m["family"] for m in res["models"]] == ["latent_diffusion", "ganmix"]
    for i, m in enumerate(res["models"]):
        assert m["n"] == 3 and 0.0 <= m["adherence"] <= 1.0 and m["fad"] >= 0.0 and m["x_real_time"] > 0
        prompts = [json.loads(x) for x in (out / f"model{i}" / "prompts.jsonl").read_text().splitlines()]
        assert [p["prompt"] for p in prompts] == [
            json.loads(x)["prompt"] for x in (out / "model0" / "prompts.jsonl").read_text().splitlines()
        ]
        assert all(p["id"].endswith(f"#s{k}") for k, p in enumerate(prompts))  # prompt i, seed i
    assert res["real"]["n"] == 3 and res["real"]["adherence"] > res["models"][0]["adherence"]
    table = (out / "table.md").read_text()
    assert (
        table.count("| latent_diffusion |") == 1 and "| ganmix |" in table and "| real clips | - |" in table
    )
    sys.argv = ["compare_models.py", "--models", str(root / "nope"), "--manifest", str(manifest), "--limit", "3",
                "--out", str(out)]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "scripts" / "compare_models.py"), run_name="__main__")
    assert exit_info.value.code == 1 and "nope" in capsys.readouterr().err
