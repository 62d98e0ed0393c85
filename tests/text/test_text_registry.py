import pytest
import torch

from soundsmith.errors import TextError
from soundsmith.text import VALID_SPECS, HashedTextEncoder, build_text_encoder


@pytest.mark.parametrize(
    "spec, dim, seed",
    [("hashed", 128, 0), ("hashed:64", 64, 0), ("hashed:64:3", 64, 3), (" Hashed:32 ", 32, 0)],
)
def test_hashed_specs(spec, dim, seed):
    enc = build_text_encoder(spec)
    assert isinstance(enc, HashedTextEncoder)
    assert (enc.dim, enc.seed) == (dim, seed)


def test_name_rebuilds_an_equivalent_encoder():
    enc = build_text_encoder("hashed:48:7")
    again = build_text_encoder(enc.name)
    prompts = ["a bell rings"]
    assert torch.equal(enc.encode(prompts).pooled, again.encode(prompts).pooled)


def test_unknown_spec_lists_valid_ones():
    with pytest.raises(TextError, match="unknown text encoder spec 'bert'") as info:
        build_text_encoder("bert")
    for spec in VALID_SPECS:
        assert spec in str(info.value)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("hashed:abc", "DIM must be a positive integer"),
        ("hashed:0", "DIM must be a positive integer"),
        ("hashed:8:-1", "SEED must be a non-negative"),
        ("hashed:8:1:2", "too many fields"),
        ("t5:", "needs a local folder"),
        ("clap", "needs a local folder"),
        ("", "empty"),
    ],
)
def test_malformed_specs(spec, fragment):
    with pytest.raises(TextError, match=fragment):
        build_text_encoder(spec)


def test_missing_folder_names_path_and_expected_files(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(TextError, match="no_such_model") as info:
        build_text_encoder(f"t5:{missing}")
    assert "config.json" in str(info.value) and "model.safetensors" in str(info.value)
    with pytest.raises(TextError, match="no_such_model"):
        build_text_encoder(f"clap:{missing}")
