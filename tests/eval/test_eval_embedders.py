import numpy as np
import pytest
import torch

from soundsmith.errors import ModelError
from soundsmith.eval.embedders import (
    ClapEmbedder,
    Embedder,
    EncodecEmbedder,
    HFClapEmbedder,
    TaggerEmbedder,
    build_embedder,
    model_identity,
)
from soundsmith.models.clap import AudioTextContrastive, ClapConfig
from soundsmith.models.registry import save_model
from soundsmith.models.tagger import AudioTagger, TaggerConfig


def tiny_tagger(seed: int = 0) -> AudioTagger:
    torch.manual_seed(seed)
    return AudioTagger(TaggerConfig(labels=["a", "b"], channels=[4, 8], embed_dim=16, dropout=0.0))


def test_tagger_embedder_shapes_resampling_and_identity():
    emb = TaggerEmbedder(tiny_tagger())
    assert isinstance(emb, Embedder)
    x = 0.1 * torch.randn(3, 16000, generator=torch.Generator().manual_seed(0))
    e, logits = emb.embed_and_logits(x, 16000)
    assert e.shape == (3, 16) and logits.shape == (3, 2)
    assert emb.embed(x.numpy()[:1], 16000).shape == (1, 16)
    assert emb.embed(torch.randn(2, 8000), 8000).shape == (2, 16)  # resampled to 16 kHz
    assert emb.name == TaggerEmbedder(tiny_tagger()).name  # same weights, same identity
    assert emb.name != TaggerEmbedder(tiny_tagger(seed=1)).name
    bf = TaggerEmbedder(tiny_tagger(), bf16=True).embed(x, 16000)
    assert bf.dtype == torch.float32 and torch.allclose(bf, e, atol=0.1, rtol=0.1)


def test_tagger_window_logits_are_each_class_at_its_best_over_the_clip_and_its_windows():
    emb = TaggerEmbedder(tiny_tagger())
    x = 0.1 * torch.randn(2, 16000 + 4000, generator=torch.Generator().manual_seed(1))  # 1.25 s
    got = emb.window_logits(x, 16000, seconds=0.5, hop_seconds=0.25)
    starts = [0, 4000, 8000, 12000]  # every 0.25 s, the last window ending with the clip
    parts = [emb.embed_and_logits(x[:, s : s + 8000], 16000)[1] for s in starts]
    whole = emb.embed_and_logits(x, 16000)[1]
    want = torch.stack([whole, *parts]).amax(dim=0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got >= whole - 1e-6).all() and (got > whole + 1e-4).any()  # a window can only raise a class
    odd = 0.1 * torch.randn(1, 16000 + 1000, generator=torch.Generator().manual_seed(2))  # a ragged end
    tail = emb.embed_and_logits(odd[:, -8000:], 16000)[1]
    assert (emb.window_logits(odd, 16000, 0.5, 0.25) >= tail - 1e-5).all()
    given = emb.window_logits(x, 16000, 0.5, 0.25, whole=whole, batch_size=3)  # windows 3 at a time
    torch.testing.assert_close(given, got, atol=1e-5, rtol=1e-5)
    short = x[:, :8000]  # no longer than a window: the clip itself
    torch.testing.assert_close(emb.window_logits(short, 16000, 0.5, 0.25), emb.embed_and_logits(short, 16000)[1])


def test_clap_embedder_audio_and_text():
    torch.manual_seed(0)
    model = AudioTextContrastive(
        ClapConfig(text_encoder="hashed:32", text_dim=32, channels=[4], audio_embed_dim=8, proj_dim=8)
    )
    emb = ClapEmbedder(model)
    assert emb.embed(torch.randn(2, 4000), 16000).shape == (2, 8)
    assert emb.embed_text(["a dog", "rain"]).shape == (2, 8)


def test_build_embedder_specs(tmp_path):
    save_model(tiny_tagger(), tmp_path / "tagger")
    e = build_embedder(f"tagger:{tmp_path / 'tagger'}")
    assert isinstance(e, TaggerEmbedder) and e.labels == ["a", "b"]
    with pytest.raises(ModelError, match="unknown embedder"):
        build_embedder("vggishh:/x")
    with pytest.raises(ModelError, match="local weights"):
        build_embedder("encodec")
    with pytest.raises(ModelError, match="not found"):
        build_embedder(f"encodec:{tmp_path / 'missing'}")
    with pytest.raises(ModelError, match="expected a clap model"):
        build_embedder(f"clap:{tmp_path / 'tagger'}")


def test_missing_packages_give_clear_errors(tmp_path):
    for kind, package in (("panns", "panns_inference"), ("vggish", "torchvggish")):
        try:
            __import__(package)
        except ImportError:
            with pytest.raises(ModelError, match=package):
                build_embedder(f"{kind}:{tmp_path / 'w.pth'}")


def test_hf_clap_from_tiny_local_folder(tmp_path):
    from transformers import ClapConfig as HFClapConfig
    from transformers import ClapFeatureExtractor, ClapModel

    torch.manual_seed(0)
    cfg = HFClapConfig(
        text_config=dict(
            vocab_size=100,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            projection_dim=8,
            max_position_embeddings=64,
        ),
        audio_config=dict(
            spec_size=128,
            window_size=4,
            num_mel_bins=64,
            patch_size=4,
            patch_stride=(4, 4),
            hidden_size=16,
            depths=[1, 1],
            num_attention_heads=[2, 2],
            patch_embeds_hidden_size=8,
            projection_dim=8,
            enable_fusion=False,
        ),
        projection_dim=8,
    )
    ClapModel(cfg).save_pretrained(tmp_path)
    ClapFeatureExtractor(
        feature_size=64, sampling_rate=16000, hop_length=160, max_length_s=1
    ).save_pretrained(tmp_path)
    emb = build_embedder(f"laion-clap:{tmp_path}")
    assert isinstance(emb, HFClapEmbedder)
    x = 0.1 * np.random.default_rng(0).normal(size=(2, 24000)).astype(np.float32)
    a = emb.embed(x, 16000)
    assert a.shape == (2, 8)
    torch.testing.assert_close(a, emb.embed(x, 16000))  # deterministic crop
    with pytest.raises(ModelError, match="model folder"):
        HFClapEmbedder(tmp_path / "config.json")


def test_encodec_from_tiny_local_folder(tmp_path):
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    cfg = EncodecConfig(
        target_bandwidths=[1.5],
        sampling_rate=16000,
        audio_channels=1,
        hidden_size=16,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[4, 4],
        codebook_size=16,
        codebook_dim=16,
        num_lstm_layers=1,
    )
    model = EncodecModel(cfg)
    model.save_pretrained(tmp_path)
    emb = build_embedder(f"encodec:{tmp_path}")
    assert isinstance(emb, EncodecEmbedder) and emb.name == f"encodec-{model_identity(model)}"
    assert emb.embed(torch.randn(2, 8000), 16000).shape == (2, 16)
