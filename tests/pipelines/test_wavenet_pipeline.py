"""WaveNetPipeline: prompt in, GeneratedAudio out; candidates, categories, priming, partial saves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundsmith.errors import ConfigError
from soundsmith.models.wavenet import WaveNet, WaveNetConfig
from soundsmith.pipelines import GeneratedAudio
from soundsmith.pipelines.wavenet import WaveNetPipeline


def tiny_pipe(**kw) -> WaveNetPipeline:
    cfg = dict(
        residual_channels=8,
        dilation_channels=8,
        skip_channels=16,
        stacks=1,
        layers_per_stack=4,
        sample_rate=8000,
    )
    cfg.update(kw)
    torch.manual_seed(0)
    return WaveNetPipeline(WaveNet(WaveNetConfig(**cfg)))


def test_call_returns_candidates_that_equal_single_runs():
    pipe = tiny_pipe()
    out = pipe("", duration=0.05, seed=3, num_candidates=2, progress=False)
    assert isinstance(out, GeneratedAudio)
    assert out.audio.shape == (2, 400) and out.audio.dtype == np.float32
    assert out.sample_rate == 8000 and out.seed == 3
    assert np.abs(out.audio).max() <= 1.0
    single = pipe("", duration=0.05, seed=4, progress=False)
    np.testing.assert_array_equal(out.audio[1], single.audio[0])


def test_text_and_category_conditioning():
    pipe = tiny_pipe(text_encoder="hashed:16", text_dim=16, gc_cardinality=2, labels=["dog", "rain"])
    a = pipe("a dog barks", duration=0.02, gc_id="dog", progress=False)
    b = pipe("rain on a roof", duration=0.02, gc_id="dog", progress=False)
    c = pipe("a dog barks", duration=0.02, gc_id=1, progress=False)
    assert a.audio.shape == (1, 160)
    assert not np.array_equal(a.audio, b.audio) and not np.array_equal(a.audio, c.audio)
    assert a.meta["gc_id"] == "dog"
    with pytest.raises(ConfigError, match="labels"):
        pipe("x", duration=0.01, gc_id="cat", progress=False)


def test_prime_and_mel_conditioning():
    pipe = tiny_pipe(lc_channels=4, hop_length=40)
    prime = np.sin(np.linspace(0, 20, 200)).astype(np.float32) * 0.5
    mel = np.random.default_rng(0).normal(size=(4, 20)).astype(np.float32)
    out = pipe("", duration=0.05, prime=prime, mel=mel, progress=False)
    assert out.audio.shape == (1, 400) and out.meta["prime_samples"] == 200


def test_save_every_writes_partial_audio(tmp_path):
    from soundsmith.audio import load_audio

    pipe = tiny_pipe()
    target = tmp_path / "partial.wav"
    out = pipe("", duration=0.1, save_every=0.025, save_path=target, progress=False)
    audio, rate = load_audio(target)
    assert rate == 8000 and audio.shape == (800,)
    np.testing.assert_allclose(audio, out.audio[0], atol=1e-4)
    with pytest.raises(ConfigError, match="save_path"):
        pipe("", duration=0.01, save_every=0.005, progress=False)


def test_bad_arguments_raise():
    pipe = tiny_pipe()
    with pytest.raises(ConfigError, match="duration"):
        pipe("", duration=0, progress=False)
    with pytest.raises(ConfigError, match="gc_id"):
        pipe("", duration=0.01, gc_id=0, progress=False)
