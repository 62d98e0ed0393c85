import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from soundsmith.errors import ManifestError
from soundsmith.eval import adherence as adh
from soundsmith.eval.runner import evaluate
from soundsmith.models.tagger import AudioTagger, TaggerConfig

SR = 16000
N = int(0.5 * SR)


def clip(kind: str, rng: np.random.Generator, midi: int = 60, amp: float = 0.3) -> np.ndarray:
    t = np.arange(N) / SR
    if kind == "tone":
        return (amp * np.sin(2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * t)).astype(np.float32)
    if kind == "noise":
        return (amp * 0.5 * rng.normal(size=N)).astype(np.float32)
    return np.zeros(N, dtype=np.float32)


def write_set(folder: Path, kinds: list[str], seed: int) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i, kind in enumerate(kinds):
        midi = int(rng.integers(55, 80))
        amp = float(rng.uniform(0.05, 0.6))
        name = f"{kind}_{seed}_{i}.wav"
        sf.write(folder / name, clip(kind, rng, midi, amp), SR)
        rows.append({"audio": name, "kind": kind, "midi": midi, "amp": amp})
    return rows


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w") as f:
        for r in rows:
            label = [] if r["kind"] == "silence" else [r["kind"]]
            row = {
                "audio": r["audio"],
                "captions": [f"a {r['kind']}"],
                "labels": label,
                "duration": 0.5,
                "sample_rate": SR,
                "split": "test",
                "meta": {},
            }
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalset")
    ref_rows = write_set(root / "ref", ["tone", "noise"] * 12, seed=1)
    ref = write_manifest(root / "ref" / "manifest.jsonl", ref_rows)
    gen_rows = write_set(root / "gen", ["tone", "noise"] * 6, seed=2)
    with open(root / "prompts.jsonl", "w") as f:
        for r in gen_rows:
            attrs = {"midi_pitch": r["midi"]} if r["kind"] == "tone" else {}
            rms = r["amp"] / np.sqrt(2) if r["kind"] == "tone" else 0.5 * r["amp"]
            attrs["loudness_db"] = 20 * np.log10(rms)
            f.write(
                json.dumps(
                    {
                        "audio": f"gen/{r['audio']}",
                        "prompt": f"a {r['kind']}",
                        "labels": [r["kind"]],
                        "attributes": attrs,
                    }
                )
                + "\n"
            )
    write_set(root / "silent", ["silence"] * 12, seed=3)
    run = root / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 1 / (s + 1)}) + "\n" for s in range(5))
    )
    return root, ref


def tagger() -> AudioTagger:
    """A random-weight tagger; the head is scaled up so its posteriors are confident (as a trained one's)."""
    torch.manual_seed(0)
    model = AudioTagger(TaggerConfig(labels=["noise", "tone"], channels=[8, 16], embed_dim=32, dropout=0.0))
    with torch.no_grad():
        model.head.weight.mul_(30.0)
    return model


def test_end_to_end_report_and_cache(data, tmp_path):
    root, ref = data
    out = tmp_path / "report"
    m = evaluate(
        root / "gen", ref, prompts=root / "prompts.jsonl", out_dir=out, run_dir=root / "run", tagger=tagger()
    )
    s = m["summary"]
    for key in (
        "fad",
        "fad_baseline",
        "fad_inf",
        "fad_inf_baseline",
        "kl_softmax",
        "kl_sigmoid",
        "kl_softmax_baseline",
        "inception_score",
        "inception_score_baseline",
        "adherence_topk",
        "pitch_error_cents",
        "loudness_order_accuracy",
        "silence_rate",
        "clipping_rate",
    ):
        assert key in s, key
    assert s["silence_rate"] == 0.0 and s["pitch_error_cents"] < 50 and s["loudness_order_accuracy"] > 0.9
    assert m["info"]["n_generated"] == 12 and m["info"]["kl_mode"] == "marginal"
    assert len(m["per_clip"]) == 12 and len(m["worst_outliers"]) == 5
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["summary"]["fad"] == pytest.approx(s["fad"])
    html = (out / "report.html").read_text()
    assert html.count("<audio") == 12 and "loss_curves.png" in html and (out / "loss_curves.png").is_file()
    # every linked file exists, relative to the report folder
    import re

    for src in re.findall(r"src='([^']+)'", html):
        assert not Path(src).is_absolute() and (out / src).is_file(), src
    assert "real vs real" in (out / "report.md").read_text()
    # second run reuses the embedding cache (no new entries) and gives identical metrics
    n_cached = len(list((out / "cache").rglob("*.npz")))
    m2 = evaluate(root / "gen", ref, prompts=root / "prompts.jsonl", out_dir=out, tagger=tagger())
    assert len(list((out / "cache").rglob("*.npz"))) == n_cached
    # tagger entries: 12 generated + 24 reference (a shipped CLAP, when present, adds its own folder)
    assert len(list((out / "cache").glob("tagger-*/*.npz"))) == 12 + 24
    assert m2["summary"]["fad"] == pytest.approx(s["fad"], rel=1e-12)
    # an entry cached before the tagger's windows were kept is computed again, windows and all
    entry = sorted((out / "cache").glob("tagger-*/*.npz"))[0]
    with np.load(entry) as z:
        full = {k: z[k] for k in z.files}
    assert full["window_logits"].shape == full["logits"].shape and (full["window_logits"] >= full["logits"]).all()
    for stale in ({}, {"window": np.array([9.0, 9.0])}):  # no windows kept, or other windows
        kept = {k: v for k, v in full.items() if k not in ("window_logits", "window")}
        np.savez(entry, **kept, **stale, **({"window_logits": full["logits"]} if stale else {}))
        evaluate(root / "gen", ref, prompts=root / "prompts.jsonl", out_dir=out, tagger=tagger())
        with np.load(entry) as z:
            np.testing.assert_allclose(z["window_logits"], full["window_logits"], atol=1e-5)  # batched otherwise
            np.testing.assert_array_equal(z["window"], [adh.WINDOW_SECONDS, adh.WINDOW_HOP_SECONDS])


def test_silence_scores_far_worse_than_real_audio(data, tmp_path):
    root, ref = data
    real = evaluate(root / "gen", ref, out_dir=tmp_path / "real", tagger=tagger(), max_report_clips=0)[
        "summary"
    ]
    silent = evaluate(root / "silent", ref, out_dir=tmp_path / "silent", tagger=tagger(), max_report_clips=0)[
        "summary"
    ]
    assert silent["fad"] > 5 * real["fad"]
    assert silent["fad_inf"] > 5 * max(real["fad_inf"], real["fad_baseline"])
    assert silent["kl_softmax"] > 5 * real["kl_softmax"]
    assert silent["kl_sigmoid"] > 5 * real["kl_sigmoid"]
    assert silent["inception_score"] == pytest.approx(1.0) and real["inception_score"] > 1.01
    assert silent["silence_rate"] == 1.0 and real["silence_rate"] == 0.0


def test_paired_kl_and_bad_inputs(data, tmp_path):
    root, ref = data
    # the reference evaluated against itself: ids pair up, KL is 0 and FAD is 0
    m = evaluate(ref, ref, out_dir=tmp_path / "self", tagger=tagger(), max_report_clips=0)
    assert m["info"]["kl_mode"] == "paired" and m["info"]["n_pairs"] == 24
    assert m["summary"]["kl_softmax"] == pytest.approx(0.0, abs=1e-9)
    assert m["summary"]["fad"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ManifestError, match="neither a folder"):
        evaluate(root / "nope", ref, out_dir=tmp_path / "x", tagger=tagger())
    bad = tmp_path / "prompts.jsonl"
    bad.write_text(json.dumps({"audio": "missing.wav", "prompt": "x"}) + "\n")
    with pytest.raises(ManifestError, match="not among the generated"):
        evaluate(root / "gen", ref, prompts=bad, out_dir=tmp_path / "y", tagger=tagger())


def test_the_windows_reach_the_class_check(data, tmp_path, monkeypatch):
    """The tagger's window logits travel from the embedding cache to every clip's measurements (generated and
    real): a clip asked for several classes is judged on them."""
    root, ref = data
    seen = []
    real = adh.measure_files

    def spy(*args, **kwargs):
        seen.append(kwargs.get("window_logits"))
        return real(*args, **kwargs)

    monkeypatch.setattr(adh, "measure_files", spy)
    evaluate(root / "gen", ref, prompts=root / "prompts.jsonl", out_dir=tmp_path / "r", tagger=tagger())
    assert seen and all(w is not None and w.ndim == 2 for w in seen)


def test_embeddings_only_skip_the_windows(data, tmp_path):
    """``windows=False`` (a caller reading the embeddings only) writes no window logits and reuses an entry that
    holds them; with a mix of both kinds of entry it returns what every entry holds."""
    from soundsmith.eval.embedders import TaggerEmbedder
    from soundsmith.eval.runner import embed_files

    root, _ = data
    files = sorted((root / "gen").glob("*.wav"))[:4]
    emb = TaggerEmbedder(tagger())
    plain = embed_files(files[:2], emb, tmp_path, windows=False)
    assert set(plain) == {"emb", "level_db", "clipped", "logits"}
    full = embed_files(files[1:3], emb, tmp_path)  # the shared file is remade with its windows
    assert full["window_logits"].shape == full["logits"].shape
    mixed = embed_files([files[1], files[0], files[3]], emb, tmp_path, windows=False)  # first one with windows
    assert "window_logits" not in mixed and len(mixed["emb"]) == 3
    np.testing.assert_allclose(mixed["emb"][0], full["emb"][0], atol=1e-5)
