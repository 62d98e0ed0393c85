"""Model cards (``soundsmith.models.card``): the card's counts follow the manifest, the caption set covers every
label deterministically, and the prompt check warns for an unrelated prompt but not for a training caption; a
model without a card gets no warning and no error."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import soundsmith
from soundsmith.data.manifest import ManifestRow, read_manifest, write_manifest
from soundsmith.errors import ModelError
from soundsmith.models import card as card_mod
from soundsmith.models.registry import load_model, save_model, text_encoder, weights_sha256

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from contract_checks import tiny_model_dir  # noqa: E402

UNRELATED = "photosynthesis converts light into chemical energy"

# (labels, captions, split, family, events): a small corpus shaped like the built-in one.
CLIPS = [
    (["dog"], ["a dog barks twice", "a dog barking loudly"], "train", "events", []),
    (["dog"], ["a small dog yaps"], "train", "events", []),
    (["rain"], ["steady rain falls on a roof", "rain patters"], "train", "scenes", []),
    (
        ["piano"],
        ["a piano plays a chord"],
        "train",
        "instruments",
        [{"class": "piano", "instrument": "piano"}],
    ),
    (["violin"], ["a violin plays a slow tune"], "train", "instruments", [{"instrument": "violin"}]),
    (["speech_yes"], ['a man says "yes"'], "train", "speech", [{"word": "yes"}]),
    (["speech_no", "rain"], ['a woman says "no" over rain'], "train", "scenes", [{"word": "no"}]),
    (["piano"], ["a piano melody rises"], "valid", "instruments", [{"instrument": "piano"}]),
    (["dog"], ["a dog growls"], "test", "events", []),
]


def make_manifest(path: Path) -> Path:
    rows = [
        ManifestRow(
            audio=f"audio/{i:03d}.wav",
            captions=captions,
            labels=labels,
            duration=2.0 + i,
            sample_rate=16000,
            split=split,
            meta={"family": family, "events": events, "sources": ["dsp"]},
        )
        for i, (labels, captions, split, family, events) in enumerate(CLIPS)
    ]
    return write_manifest(path, rows)


@pytest.fixture(scope="module")
def carded(tmp_path_factory):
    """A tiny latent-diffusion model directory with a card written from the tiny manifest."""
    root = tmp_path_factory.mktemp("card")
    model_dir = tiny_model_dir("latent_diffusion", root / "model")
    manifest = make_manifest(root / "data" / "manifest.jsonl")
    card_mod.write_card(model_dir, manifest, figures={"fad": 1.5}, command="soundsmith train --config x.yaml")
    return model_dir, manifest


def test_card_counts_follow_the_manifest(carded):
    model_dir, manifest_path = carded
    card = card_mod.read_card(model_dir)
    rows = read_manifest(manifest_path).rows
    train = [r for r in rows if r.split == "train"]
    data = card["training"]["data"]
    assert data["clips"] == len(rows)
    assert data["hours"] == pytest.approx(sum(r.duration for r in rows) / 3600, abs=1e-3)
    assert {s: v["clips"] for s, v in data["splits"].items()} == dict(Counter(r.split for r in rows))
    assert data["labels"] == dict(Counter(label for r in train for label in r.labels))
    assert data["families"] == dict(Counter(r.meta["family"] for r in train))
    assert data["instruments"] == {"piano": 1, "violin": 1}  # the valid split's piano is not training data
    assert data["words"] == {"yes": 1, "no": 1}
    assert data["distinct_train_captions"] == len({c for r in train for c in r.captions})
    assert card["figures"] == {"fad": 1.5}
    assert card["training"]["command"] == "soundsmith train --config x.yaml"
    assert card["family"] == "latent_diffusion"
    assert card["weights_sha256"] == weights_sha256(model_dir)


def test_card_size_counts_every_saved_tensor(carded):
    model_dir, _ = carded
    card = card_mod.read_card(model_dir)
    model = load_model(model_dir)  # the tiny VAE and vocoder are saved parts (sub-folders) of this directory
    assert card["parameters"] == sum(v.numel() for v in model.state_dict().values())
    files = [model_dir / "model.safetensors", model_dir / "vae" / "model.safetensors"]
    files.append(model_dir / "vocoder" / "model.safetensors")
    assert card["weights_bytes"] == sum(f.stat().st_size for f in files)
    assert card["components"]["text_encoder"] == {"text_encoder": "hashed:32"}
    assert card["components"]["vae"]["family"] == "vae"


def test_captions_cover_every_label_and_are_deterministic(tmp_path):
    manifest = read_manifest(make_manifest(tmp_path / "m.jsonl"))
    train = [r for r in manifest.rows if r.split == "train"]
    labels = sorted({label for r in train for label in r.labels})
    chosen = card_mod.select_captions(manifest, limit=len(labels))
    assert len(chosen) == len(labels) == len(set(chosen))
    for label in labels:
        assert any(c in r.captions for r in train if label in r.labels for c in chosen), label
    assert card_mod.select_captions(manifest, limit=len(labels)) == chosen
    everything = card_mod.select_captions(manifest, limit=1000)  # the train split's captions, no repeats
    assert sorted(everything) == sorted({c for r in train for c in r.captions})


def test_caption_embeddings_are_the_encoders_in_fp16(carded):
    model_dir, manifest = carded
    card = card_mod.read_card(model_dir)
    with safe_open(str(model_dir / card_mod.CAPTIONS_FILE), framework="pt") as f:
        assert f.get_tensor("embeddings").dtype == torch.float16
    captions, vectors, spec = card_mod.read_card_captions(model_dir)
    assert spec == "hashed:32" and card["prompt_check"]["captions"] == len(captions)
    assert captions == card_mod.select_captions(read_manifest(manifest))
    expected = text_encoder(spec).encode(captions).pooled
    torch.testing.assert_close(vectors, expected, atol=2e-3, rtol=0)


def test_unrelated_prompt_warns_and_training_caption_does_not(carded):
    model_dir, _ = carded
    pipe = soundsmith.load(model_dir)
    captions, _, _ = card_mod.read_card_captions(model_dir)
    for source in (pipe, model_dir, str(model_dir)):
        assert card_mod.prompt_warning(source, "a dog barks twice") is None
        assert card_mod.warn_if_unknown(source, captions[-1]) is None
    warning = card_mod.warn_if_unknown(pipe, UNRELATED)
    assert warning is not None and "\n" not in warning and UNRELATED in warning
    nearest, threshold = card_mod.nearest_captions(pipe, UNRELATED)
    assert len(nearest) == 3 and nearest[0][0] < threshold
    assert [s for s, _ in nearest] == sorted((s for s, _ in nearest), reverse=True)
    for sim, caption in nearest:
        assert caption in captions and f'"{caption}" ({sim:.2f})' in warning


def test_threshold_decides(carded):
    model_dir, _ = carded
    assert card_mod.prompt_warning(model_dir, "a dog barks twice", threshold=1.01) is not None
    assert card_mod.prompt_warning(model_dir, UNRELATED, threshold=-1.0) is None


def test_model_without_card_gets_no_warning(carded, tmp_path):
    model_dir, _ = carded
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare)
    (bare / card_mod.CARD_FILE).unlink()
    assert card_mod.read_card(bare) is None
    assert card_mod.warn_if_unknown(bare, UNRELATED) is None
    assert card_mod.warn_if_unknown(soundsmith.load(bare), UNRELATED) is None
    assert card_mod.warn_if_unknown(load_model(bare), UNRELATED) is None  # a bare model: no directory known


def test_damaged_card_is_named_not_raised(carded, tmp_path):
    model_dir, _ = carded
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / card_mod.CARD_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="card.json"):
        card_mod.read_card(broken)
    warning = card_mod.warn_if_unknown(broken, UNRELATED)
    assert warning is not None and "not checked" in warning and "\n" not in warning


def test_model_without_text_encoder_gets_a_card_without_prompt_check(tmp_path):
    from soundsmith.models.tagger import AudioTagger, TaggerConfig

    directory = save_model(AudioTagger(TaggerConfig(labels=["dog", "rain"])), tmp_path / "tagger")
    card_mod.write_card(directory, make_manifest(tmp_path / "m.jsonl"))
    card = json.loads((directory / card_mod.CARD_FILE).read_text())
    assert card["family"] == "tagger" and "prompt_check" not in card
    assert not (directory / card_mod.CAPTIONS_FILE).exists()
    assert card_mod.warn_if_unknown(directory, UNRELATED) is None


def test_figures_must_be_an_object(carded, tmp_path):
    model_dir, manifest = carded
    with pytest.raises(ModelError, match="figures"):
        card_mod.write_card(model_dir, manifest, figures=[1, 2])  # type: ignore[arg-type]
