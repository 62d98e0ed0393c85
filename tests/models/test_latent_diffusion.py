"""The latent-diffusion denoiser: shapes, any length, text masking, caption dropping, bad input."""

import pytest
import torch

from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.latent_diffusion import LatentDenoiser, LatentDenoiserConfig, rotary


def _model(seed: int = 0, **kw) -> LatentDenoiser:
    torch.manual_seed(seed)
    cfg = LatentDenoiserConfig(
        latent_channels=4,
        latent_bins=8,
        d_model=32,
        layers=2,
        heads=2,
        text_dim=16,
        text_encoder="hashed:16",
        **kw,
    )
    model = LatentDenoiser(cfg).eval()
    with (
        torch.no_grad()
    ):  # the output layers start at zero; give every weight a value so outputs depend on inputs
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def _inputs(B: int = 3, T: int = 11, L: int = 5):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, 4, 8, T, generator=g)
    t = torch.rand(B, generator=g)
    tokens = torch.randn(B, L, 16, generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    if B > 1:
        mask[1, 2:] = False
    pooled = torch.randn(B, 16, generator=g)
    return x, t, tokens, mask, pooled


def test_untrained_model_predicts_zero():
    torch.manual_seed(0)
    model = LatentDenoiser(
        LatentDenoiserConfig(latent_channels=4, latent_bins=8, d_model=32, layers=1, heads=2, text_dim=16)
    )
    out = model(*_inputs())
    assert out.shape == (3, 4, 8, 11)
    assert torch.count_nonzero(out) == 0


@pytest.mark.parametrize("T", [1, 7, 40])
def test_shape_any_length_and_batch_equals_singles(T):
    model = _model()
    x, t, tokens, mask, pooled = _inputs(T=T)
    with torch.no_grad():
        out = model(x, t, tokens, mask, pooled)
        singles = torch.cat(
            [
                model(x[i : i + 1], t[i : i + 1], tokens[i : i + 1], mask[i : i + 1], pooled[i : i + 1])
                for i in range(3)
            ]
        )
    assert out.shape == x.shape
    torch.testing.assert_close(out, singles, rtol=1e-4, atol=1e-5)


def test_padded_text_tokens_are_ignored_and_real_ones_matter():
    model = _model()
    x, t, tokens, mask, pooled = _inputs()
    with torch.no_grad():
        ref = model(x, t, tokens, mask, pooled)
        padded = tokens.clone()
        padded[1, 2:] = 50.0  # masked positions of clip 1
        torch.testing.assert_close(model(x, t, padded, mask, pooled), ref, rtol=0, atol=0)
        real = tokens.clone()
        real[1, 0] += 1.0  # a real token of clip 1 changes clip 1 only
        out = model(x, t, real, mask, pooled)
    assert (out[1] - ref[1]).abs().max() > 1e-4
    torch.testing.assert_close(out[[0, 2]], ref[[0, 2]], rtol=0, atol=0)


def test_dropped_rows_ignore_the_text():
    model = _model()
    x, t, tokens, mask, pooled = _inputs()
    drop = torch.tensor([True, False, True])
    with torch.no_grad():
        a = model(x, t, tokens, mask, pooled, drop=drop)
        b = model(x, t, torch.randn_like(tokens), mask, torch.randn_like(pooled), drop=drop)
        kept = model(x, t, tokens, mask, pooled)
    torch.testing.assert_close(a[[0, 2]], b[[0, 2]], rtol=0, atol=0)  # unconditional rows: text has no effect
    torch.testing.assert_close(a[1], kept[1], rtol=0, atol=0)  # kept row: as without drop
    assert (a[0] - kept[0]).abs().max() > 1e-4


def test_self_attention_sees_the_whole_clip():
    """A change at the last latent frame reaches the first output frame (non-causal, global context)."""
    model = _model()
    x, t, tokens, mask, pooled = _inputs(B=1, T=20)
    with torch.no_grad():
        ref = model(x, t, tokens, mask, pooled)
        x2 = x.clone()
        x2[..., -1] += 1.0
        out = model(x2, t, tokens, mask, pooled)
    assert (out[..., 0] - ref[..., 0]).abs().max() > 1e-5


def test_rotary_is_relative():
    """Rotary dot products depend on the distance between positions only."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 1, 8, generator=g).expand(1, 1, 12, 8)
    k = torch.randn(1, 1, 1, 8, generator=g).expand(1, 1, 12, 8)
    scores = rotary(q, 100.0) @ rotary(k, 100.0).transpose(-1, -2)  # [1, 1, 12, 12]
    torch.testing.assert_close(scores[0, 0, 2, 5], scores[0, 0, 6, 9])
    torch.testing.assert_close(scores[0, 0, 0, 0], scores[0, 0, 11, 11])


def test_bad_shapes_and_configs_are_clear_errors():
    model = _model()
    x, t, tokens, mask, pooled = _inputs()
    with pytest.raises(ModelError, match="latent_channels=4"):
        model(x[:, :3], t, tokens, mask, pooled)
    with pytest.raises(ModelError, match="expects 16"):
        model(x, t, tokens[..., :8], mask, pooled)
    with pytest.raises(ConfigError, match="heads"):
        LatentDenoiserConfig(d_model=30, heads=4)
    with pytest.raises(ConfigError, match="prediction"):
        LatentDenoiserConfig(prediction="score")
