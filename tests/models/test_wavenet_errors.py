"""WaveNet's named errors, dtypes and cost figure, checked exactly.

Written after ``scripts/mutation.sh models/wavenet`` showed the error paths checked only by a word of their
message and the conditioning dtypes not at all (docs/testing.md).
"""

from __future__ import annotations

import re

import pytest
import torch

from soundsmith.errors import ModelError
from soundsmith.models.wavenet import WaveNet, WaveNetConfig


def tiny(**kw) -> WaveNet:
    base = dict(residual_channels=4, dilation_channels=4, skip_channels=8, stacks=1, layers_per_stack=2)
    base.update(kw)
    torch.manual_seed(0)
    return WaveNet(WaveNetConfig(**base)).eval()


def _raises(message: str):
    return pytest.raises(ModelError, match="^" + re.escape(message) + "$")


def test_conditioning_errors_name_the_fix():
    plain = tiny()
    with _raises(
        "this WaveNet has no global conditioning (gc_cardinality=0, text_dim=0); pass gc_ids=None and text_emb=None"
    ):
        plain.global_condition(1, gc_ids=torch.tensor([0]))
    with _raises("this WaveNet has gc_cardinality=0; pass gc_ids=None"):
        tiny(text_dim=3).global_condition(1, gc_ids=torch.tensor([0]))
    with _raises("this WaveNet has lc_channels=0 (no local conditioning); pass mel=None"):
        plain.upsample_mel(torch.zeros(1, 2, 3), 4)
    with _raises("this WaveNet has text_dim=0; pass text_emb=None"):
        tiny(gc_cardinality=2).global_condition(1, text_emb=torch.zeros(1, 3))
    with _raises("gc_ids [0, 2] out of range: use 0..1"):
        tiny(gc_cardinality=2).global_condition(2, gc_ids=torch.tensor([0, 2]))
    with _raises("text_emb has dim 4, the model expects text_dim=3"):
        tiny(text_dim=3).global_condition(2, text_emb=torch.zeros(2, 4))
    with _raises("WaveNet input has shape (5,); expected [B, T] int64 codes"):
        plain(torch.zeros(5, dtype=torch.long))


def test_mel_shape_errors():
    model = tiny(lc_channels=2, hop_length=4)
    with _raises("mel has shape (2, 5); expected [B, 2, frames]"):
        model.upsample_mel(torch.zeros(2, 5), 8)  # 2-D: the band count happens to match dim 0
    with _raises("mel has shape (1, 3, 5); expected [B, 2, frames]"):
        model.upsample_mel(torch.zeros(1, 3, 5), 8)
    with _raises("mel has 2 frames x hop 4 < 9 samples; give a longer mel"):
        model.upsample_mel(torch.zeros(1, 2, 2), 9)


def test_conditioning_follows_the_model_dtype_and_batch():
    model = tiny(gc_cardinality=2, text_dim=3, lc_channels=2, hop_length=4).double()
    g = model.global_condition(3)  # no inputs: the zero (unconditional) vector, one row per item
    assert g.shape == (3, model.config.gc_channels) and g.dtype == torch.float64 and not g.any()
    g = model.global_condition(3, gc_ids=torch.tensor([1]), text_emb=torch.ones(1, 3))
    assert g.shape == (3, model.config.gc_channels) and g.dtype == torch.float64
    assert torch.equal(g[0], g[2])
    up = model.upsample_mel(
        torch.zeros(1, 2, 3, dtype=torch.float32), 10
    )  # a float32 mel for a float64 model
    assert up.shape == (1, 2, 10) and up.dtype == torch.float64


def test_macs_per_sample_counts_local_conditioning():
    base = WaveNetConfig(
        residual_channels=4, dilation_channels=4, skip_channels=8, stacks=1, layers_per_stack=2
    )
    with_lc = WaveNetConfig(
        residual_channels=4, dilation_channels=4, skip_channels=8, stacks=1, layers_per_stack=2, lc_channels=6
    )
    # each layer adds a 1x1 projection of the C mel bands to the 2D gate pre-activations
    assert with_lc.macs_per_sample() - base.macs_per_sample() == 2 * 6 * 2 * 4
