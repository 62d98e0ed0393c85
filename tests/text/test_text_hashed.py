import subprocess
import sys

import pytest
import torch

from soundsmith.errors import TextError
from soundsmith.text import HashedTextEncoder, TextEncoder
from soundsmith.text.hashed import ngram_buckets, words

PROMPTS = ["a dog barks", "a dog is barking", "a violin plays a scale"]


def test_shapes_mask_padding_and_norm():
    enc = HashedTextEncoder(dim=32, max_length=8)
    emb = enc.encode(PROMPTS)
    assert isinstance(enc, TextEncoder) and enc.dim == 32 and enc.name == "hashed:32"
    assert emb.tokens.shape == (3, 5, 32) and emb.tokens.dtype == torch.float32
    assert emb.mask.dtype == torch.bool
    assert emb.mask.sum(dim=1).tolist() == [3, 4, 5]
    assert torch.all(emb.tokens[~emb.mask] == 0)
    assert torch.allclose(emb.pooled.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert emb.truncated == [False, False, False]


def test_similar_captions_are_closer_than_unrelated_ones():
    pooled = HashedTextEncoder().encode(PROMPTS).pooled
    sim = pooled @ pooled.T
    assert sim[0, 1] > sim[0, 2] and sim[0, 1] > sim[1, 2]


def test_words_lowercase_and_split_punctuation():
    assert words("A Dog, barking!") == ["a", "dog", ",", "barking", "!"]
    enc = HashedTextEncoder()
    assert torch.equal(enc.encode(["A DOG Barks"]).pooled, enc.encode(["a dog barks"]).pooled)
    assert enc.encode(["!!!"]).mask.sum().item() == 3  # punctuation-only still gives tokens


def test_ngram_hash_is_stable_crc32():
    # Golden values: zlib.crc32 of "3:<do", "3:dog", "3:og>", "4:<dog", "4:dog>" modulo 2**14.
    import zlib

    expected = [zlib.crc32(s.encode()) % 2**14 for s in ("3:<do", "3:dog", "3:og>", "4:<dog", "4:dog>")]
    assert ngram_buckets("dog", 2**14) == expected
    assert ngram_buckets("dog", 2**14) == [8976, 3553, 344, 9033, 2237]


def test_deterministic_across_instances_and_seeds():
    a = HashedTextEncoder(seed=0).encode(PROMPTS).tokens
    b = HashedTextEncoder(seed=0).encode(PROMPTS).tokens
    c = HashedTextEncoder(seed=1).encode(PROMPTS).tokens
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_same_embedding_in_a_new_process():
    code = (
        "from soundsmith.text import HashedTextEncoder\n"
        "e = HashedTextEncoder(dim=16).encode(['a dog barks in the rain'])\n"
        "print(' '.join(repr(float(v)) for v in e.pooled[0]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    theirs = torch.tensor([float(v) for v in out.stdout.split()])
    ours = HashedTextEncoder(dim=16).encode(["a dog barks in the rain"]).pooled[0]
    assert torch.equal(theirs, ours)


def test_batch_equals_single():
    enc = HashedTextEncoder()
    batch = enc.encode(PROMPTS)
    for i, prompt in enumerate(PROMPTS):
        single = enc.encode([prompt])
        n = single.tokens.shape[1]
        assert torch.allclose(batch.tokens[i, :n], single.tokens[0], atol=1e-6)
        assert torch.allclose(batch.pooled[i], single.pooled[0], atol=1e-6)


def test_truncation_is_flagged():
    enc = HashedTextEncoder(max_length=4)
    emb = enc.encode(["one two three four five six", "one two"])
    assert emb.tokens.shape[1] == 4
    assert emb.truncated == [True, False] and emb.num_truncated == 1
    assert torch.equal(emb.tokens[0], enc.encode(["one two three four"]).tokens[0])


def test_frozen_and_eval_even_after_train():
    enc = HashedTextEncoder()
    parent = torch.nn.Sequential(enc)
    parent.train()
    assert not enc.training
    assert all(not p.requires_grad for p in enc.parameters())
    assert not enc.encode(PROMPTS).tokens.requires_grad
    assert enc.state_dict() == {}  # the table is rebuilt from the seed, never saved


def test_forward_is_encode_and_device_follows_module():
    enc = HashedTextEncoder().to("cpu")
    assert enc.device.type == "cpu"
    assert torch.equal(enc(PROMPTS).pooled, enc.encode(PROMPTS).pooled)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_gpu():
    enc = HashedTextEncoder().to("cuda")
    emb = enc.encode(PROMPTS)
    assert emb.tokens.device.type == "cuda" and emb.mask.device.type == "cuda"
    assert torch.allclose(emb.pooled.cpu(), HashedTextEncoder().encode(PROMPTS).pooled, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"dim": 0}, {"max_length": -1}, {"seed": -2}, {"dim": 1.5}])
def test_invalid_settings_raise(kwargs):
    with pytest.raises(TextError, match="HashedTextEncoder"):
        HashedTextEncoder(**kwargs)


def test_encode_checks_prompts():
    with pytest.raises(TextError, match="prompt 1 is empty"):
        HashedTextEncoder().encode(["fine", "   "])
