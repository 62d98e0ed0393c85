"""Tiny randomly initialised T5 and CLAP folders (built once per session) for the text-encoder tests."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = "a dog barks is barking violin plays scale the rain falls on roof".split()


def _word_tokenizer(folder: Path, specials: list[str], template: str, pad: str, eos: str) -> None:
    """Save a lower-casing word-level fast tokenizer to ``folder``; ``template`` wraps each prompt."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(specials)}
    vocab.update({w: len(specials) + i for i, w in enumerate(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(s, vocab[s]) for s in specials if s in template]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, eos_token=eos, unk_token="<unk>")
    fast.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import T5Config, T5EncoderModel

    folder = tmp_path_factory.mktemp("tiny_t5")
    config = T5Config(
        vocab_size=3 + len(WORDS), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, pad_token_id=0
    )
    torch.manual_seed(0)
    T5EncoderModel(config).save_pretrained(folder)
    _word_tokenizer(folder, ["<pad>", "</s>", "<unk>"], "$A </s>", pad="<pad>", eos="</s>")
    return folder


@pytest.fixture(scope="session")
def tiny_t5_full_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full encoder-decoder checkpoint: T5Encoder must skip the decoder."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny_t5_full")
    config = T5Config(
        vocab_size=3 + len(WORDS),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
    )
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    _word_tokenizer(folder, ["<pad>", "</s>", "<unk>"], "$A </s>", pad="<pad>", eos="</s>")
    return folder


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import ClapConfig, ClapModel

    folder = tmp_path_factory.mktemp("tiny_clap")
    config = ClapConfig(
        text_config=dict(
            vocab_size=4 + len(WORDS),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=24,
            pad_token_id=1,
        ),
        audio_config=dict(
            hidden_size=16,
            depths=[1, 1],
            num_attention_heads=[1, 1],
            patch_embeds_hidden_size=8,
            spec_size=64,
            window_size=4,
            num_mel_bins=64,
            patch_stride=(4, 4),
        ),
        projection_dim=8,
    )
    torch.manual_seed(0)
    ClapModel(config).save_pretrained(folder)
    # RoBERTa layout: <s>=0, <pad>=1 (the model's padding index), </s>=2.
    _word_tokenizer(folder, ["<s>", "<pad>", "</s>", "<unk>"], "<s> $A </s>", pad="<pad>", eos="</s>")
    return folder
