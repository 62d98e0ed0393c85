import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from soundsmith.cli.main import main as cli_main
from soundsmith.data import DataConfig, ManifestRow, read_manifest
from soundsmith.data.dataset import ClipDataset
from soundsmith.errors import ManifestError
from soundsmith.eval.embedders import ClapEmbedder, TaggerEmbedder
from soundsmith.eval.evaluators import (
    average_precision,
    clap_retrieval,
    classification_figures,
    crop_batches,
    recall_at_k,
    retrieval_figures,
    tagger_figures,
)
from soundsmith.models.clap import AudioTextContrastive, ClapConfig
from soundsmith.models.registry import save_model
from soundsmith.models.tagger import AudioTagger, TaggerConfig

SR = 16000
LABELS = ["tone", "noise", "click"]
REPO = Path(__file__).resolve().parents[2]


def tiny_tagger(seed: int = 0) -> AudioTagger:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return AudioTagger(TaggerConfig(labels=LABELS, channels=[4, 8], embed_dim=16, dropout=0.0))


def tiny_clap(seed: int = 0) -> AudioTextContrastive:
    cfg = ClapConfig(
        text_encoder="hashed:16", text_dim=16, channels=[4, 8], audio_embed_dim=16, proj_dim=8, dropout=0.0
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return AudioTextContrastive(cfg)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """10 clips of 0.5-1.5 s (some shorter, some longer than the 1 s crop); 2 of them two-label, 1 unknown."""
    root = tmp_path_factory.mktemp("evalcorpus")
    rng = np.random.default_rng(7)
    rows = []
    for i in range(10):
        n = int(SR * (0.5 + 0.1 * i))
        kind = LABELS[i % 3]
        t = np.arange(n) / SR
        if kind == "tone":
            x = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)
        elif kind == "noise":
            x = 0.2 * rng.normal(size=n)
        else:
            x = np.zeros(n)
            x[:: SR // 8] = 0.9
        sf.write(root / f"{i}.wav", x.astype(np.float32), SR)
        labels = [kind] + (["noise"] if i in (3, 6) else []) + (["unheard"] if i == 9 else [])
        rows.append(
            {
                "audio": f"{i}.wav",
                "captions": [f"a {kind} number {i}", "another caption"],
                "labels": labels,
                "duration": n / SR,
                "sample_rate": SR,
                "split": "test" if i < 8 else "valid",
                "meta": {"id": f"c{i}", "family": "a" if i < 5 else "b"},
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


# ---------------------------------------------------------------- pure figures


def test_average_precision_hand_computed():
    # positives at ranks 1, 3, 5: AP = (1/1 + 2/3 + 3/5) / 3
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    assert average_precision(scores, np.array([1, 0, 1, 0, 1])) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # the order of the input does not matter
    perm = np.array([4, 2, 0, 3, 1])
    assert average_precision(scores[perm], np.array([1, 0, 1, 0, 1])[perm]) == pytest.approx(0.7555555)
    # ties form one threshold: {0.9}: P=1 R=.5; {0.5, 0.5}: P=2/3 R=1  -> 0.5 * 1 + 0.5 * 2/3
    assert average_precision(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 0, 1, 0])) == pytest.approx(
        0.5 + 0.5 * 2 / 3
    )
    assert average_precision(np.array([0.1, 0.2]), np.array([0, 1])) == 1.0
    assert math.isnan(average_precision(np.array([0.1, 0.2]), np.array([0, 0])))
    with pytest.raises(ValueError, match="must both be"):
        average_precision(np.zeros(3), np.zeros(2))


def test_recall_at_k_and_retrieval_figures():
    sim = torch.tensor([[0.9, 0.1, 0.2], [0.8, 0.5, 0.1], [0.1, 0.7, 0.3]])
    # ranks of the diagonal: 0, 1, 1
    assert recall_at_k(sim, 1) == pytest.approx(1 / 3)
    assert recall_at_k(sim, 2) == 1.0
    eye = torch.eye(4)
    fig = retrieval_figures(eye, eye)
    assert fig["t2a_r@1"] == fig["a2t_r@1"] == fig["t2a_r@10"] == 1.0
    assert fig["matched_score"] == pytest.approx(1.0) and fig["mismatched_score"] == pytest.approx(0.0)
    # text i matches audio i+1: R@1 = 0 both ways, matched cosine 0
    shifted = retrieval_figures(eye, eye.roll(1, dims=0))
    assert shifted["t2a_r@1"] == shifted["a2t_r@1"] == 0.0 and shifted["matched_score"] == pytest.approx(0)


def test_classification_figures_hand_computed():
    rows = [
        ManifestRow("a", labels=["x"], meta={"family": "f"}),
        ManifestRow("b", labels=["y"], meta={"family": "f"}),
        ManifestRow("c", labels=["x", "y"], meta={"family": "g"}),
        ManifestRow("d", labels=["z"], meta={"family": "g"}),  # z: unknown to the tagger
    ]
    logits = np.array([[3.0, -3.0], [1.0, -1.0], [2.0, 1.0], [-2.0, -2.0]])
    fig = classification_figures(logits, rows, ["x", "y"])
    assert fig["n_clips"] == 4 and fig["n_single_label"] == 2
    assert fig["top1_accuracy"] == 0.5  # a right, b wrong
    # exact match at 0.5: a {x} ok, b {x} vs {y} no, c {x, y} ok, d {} vs {} ok
    assert fig["exact_match_accuracy"] == 0.75
    ap_x = average_precision(logits[:, 0], np.array([1, 0, 1, 0]))
    ap_y = average_precision(logits[:, 1], np.array([0, 1, 1, 0]))
    assert fig["macro_map"] == pytest.approx((ap_x + ap_y) / 2) and fig["n_map_classes"] == 2
    assert fig["per_family"]["f"] == {"n": 2, "top1_accuracy": 0.5, "exact_match_accuracy": 0.5}
    assert fig["per_family"]["g"]["top1_accuracy"] == 0.5 and fig["unknown_labels"] == ["z"]


# ---------------------------------------------------------------- on audio


def test_crops_equal_the_datasets_deterministic_start_crop(corpus):
    m = read_manifest(corpus)
    ds = ClipDataset(m, DataConfig(clip_seconds=1.0, valid_crop="start"), split="test")
    paths = [r.audio_path(m.root) for r in m.split("test")]
    batches = list(crop_batches(paths, SR, 1.0, 3, "t", progress=False))
    assert [b.shape for b in batches] == [(3, SR), (3, SR), (2, SR)]
    ours = np.concatenate(batches)
    theirs = np.stack([ds[i]["audio"].numpy() for i in range(len(ds))])
    np.testing.assert_array_equal(ours, theirs)
    assert (ours[0, int(0.5 * SR) :] == 0).all()  # a 0.5 s clip is zero-padded


def test_tagger_figures_deterministic_batched_and_split(corpus):
    tagger = tiny_tagger()
    a = tagger_figures(tagger, corpus, "test", clip_seconds=1.0, batch_size=3, progress=False)
    b = tagger_figures(tagger, corpus, "test", clip_seconds=1.0, batch_size=8, progress=False)
    assert a["n_clips"] == 8 and a["n_single_label"] == 6 and a["bf16"] is False
    for key in ("top1_accuracy", "exact_match_accuracy", "macro_map"):
        assert 0.0 <= a[key] <= 1.0
        assert a[key] == pytest.approx(b[key], abs=1e-9)  # batch size does not change the figures
    whole = tagger_figures(TaggerEmbedder(tagger), corpus, None, clip_seconds=1.0, progress=False)
    assert whole["n_clips"] == 10 and whole["unknown_labels"] == ["unheard"]
    assert set(whole["per_family"]) == {"a", "b"}
    bf = tagger_figures(tagger, corpus, "test", clip_seconds=1.0, bf16=True, progress=False)
    assert bf["bf16"] is True and 0.0 <= bf["macro_map"] <= 1.0
    with pytest.raises(ManifestError, match="no rows with labels"):
        tagger_figures(tagger, corpus, "train", progress=False)


def test_clap_retrieval_on_tiny_model(corpus):
    clap = tiny_clap()
    fig = clap_retrieval(clap, corpus, "test", clip_seconds=1.0, batch_size=3, progress=False)
    again = clap_retrieval(ClapEmbedder(clap), corpus, "test", clip_seconds=1.0, batch_size=5, progress=False)
    assert fig["n_clips"] == 8 and fig["n_unique_queries"] == 8
    assert 0.0 <= fig["t2a_r@1"] <= fig["t2a_r@5"] <= fig["t2a_r@10"] == 1.0  # 8 clips: all within 10
    for key in ("t2a_r@1", "t2a_r@5", "a2t_r@1", "matched_score", "mismatched_score"):
        assert fig[key] == pytest.approx(again[key], abs=1e-6)
    bf = clap_retrieval(clap, corpus, "test", clip_seconds=1.0, bf16=True, progress=False)
    assert bf["bf16"] is True and -1.0 <= bf["matched_score"] <= 1.0


# ---------------------------------------------------------------- front ends


def test_cli_passes_bf16_and_model_dirs(monkeypatch, tmp_path):
    import soundsmith.eval.runner as runner

    seen = {}

    def fake_evaluate(generated, reference, **kw):
        seen.update(kw, generated=generated, reference=reference)
        return {"summary": {"fad": 1.5}}

    monkeypatch.setattr(runner, "evaluate", fake_evaluate)
    argv = ["evaluate", "--generated", "g", "--reference", "r.jsonl", "--out", str(tmp_path)]
    assert cli_main([*argv, "--bf16", "--tagger", "my/tagger", "--clap", "my/clap"]) == 0
    assert seen["bf16"] is True and seen["tagger"] == "my/tagger" and seen["clap"] == "my/clap"
    assert cli_main(argv) == 0
    assert seen["bf16"] is False and seen["tagger"] is None and seen["clap"] is None


def test_figures_script_on_model_dirs(corpus, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "evaluator_figures", REPO / "scripts" / "evaluator_figures.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tagger_dir = save_model(tiny_tagger(), tmp_path / "tagger")
    clap_dir = save_model(tiny_clap(), tmp_path / "clap")
    out = tmp_path / "fig.json"
    argv = ["--manifest", str(corpus), "--split", "all", "--tagger", str(tagger_dir), "--clap", str(clap_dir)]
    assert script.main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["tagger"]["n_clips"] == 10 and result["clap"]["n_clips"] == 10 and result["split"] is None
    assert "top1_accuracy" in capsys.readouterr().out
    missing = ["--manifest", str(tmp_path / "missing.jsonl"), "--tagger", str(tagger_dir), "--clap", "none"]
    assert script.main(missing) == 1
    assert "missing.jsonl not found" in capsys.readouterr().err
