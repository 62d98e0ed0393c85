"""Token-LM pipeline: seeds, guidance, streaming chunks == the returned audio, audio-prompt continuation."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from soundsmith import families
from soundsmith.errors import ConfigError
from soundsmith.models.token_lm import revert_pattern
from soundsmith.pipelines.token_lm import TokenLMPipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from contract_checks import build  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    _, model = build(families.get("token_lm"))
    return TokenLMPipeline(model.eval())


def test_same_seed_same_tokens_and_audio(pipe):
    a = pipe("a bell", duration=0.01, seed=5, progress=False)
    b = pipe("a bell", duration=0.01, seed=5, progress=False)
    c = pipe("a bell", duration=0.01, seed=6, progress=False)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)
    assert a.audio.shape == (1, 160) and a.meta["pattern"] == "delay"
    two = pipe("a bell", duration=0.01, seed=5, num_candidates=2, progress=False)
    np.testing.assert_array_equal(two.audio[0], a.audio[0])
    np.testing.assert_array_equal(two.audio[1], c.audio[0])


def test_guidance_and_sampling_settings_change_the_result(pipe):
    base = pipe("a bell", duration=0.01, seed=1, progress=False).audio
    assert not np.array_equal(pipe("a bell", duration=0.01, seed=1, guidance=1.0, progress=False).audio, base)
    greedy1 = pipe("a bell", duration=0.01, seed=1, temperature=0.0, progress=False).audio
    greedy2 = pipe("a bell", duration=0.01, seed=2, temperature=0.0, progress=False).audio
    np.testing.assert_array_equal(greedy1, greedy2)  # greedy ignores the seed
    np.testing.assert_array_equal(pipe("a bell", duration=0.01, seed=1, steps=4, progress=False).audio, base)
    with pytest.raises(ConfigError, match="top_p"):
        pipe("a bell", duration=0.01, top_p=0.0, progress=False)


def test_streamed_chunks_concatenate_to_the_returned_audio(pipe):
    chunks: list[tuple[int, np.ndarray]] = []
    # 0.03 s = 120 frames = 123 delay steps: longer than the tiny context (64 steps), so the window slides
    out = pipe(
        "rain",
        duration=0.03,
        seed=0,
        num_candidates=2,
        progress=False,
        on_chunk=lambda i, a: chunks.append((i, a)),
    )
    assert len([c for i, c in chunks if i == 0]) > 3  # several chunks, not one at the end
    for index in range(2):
        streamed = np.concatenate([c for i, c in chunks if i == index])
        assert streamed.shape == (480,)
        np.testing.assert_allclose(streamed, out.audio[index], atol=1e-5)
    assert out.meta["first_chunk_s"] > 0


def test_continuation_keeps_the_prompt_tokens(pipe, monkeypatch):
    model = pipe.model
    prompt = 0.3 * np.sin(2 * np.pi * 440 * np.arange(40) / 16000).astype(np.float32)  # 10 frames
    want = model.audio_to_codes(torch.from_numpy(prompt)[None])  # [1, K, 10]
    seen = []
    original = model.codes_to_audio
    monkeypatch.setattr(
        model, "codes_to_audio", lambda codes, length=None: seen.append(codes) or original(codes, length)
    )
    out = pipe("a bell", duration=0.01, seed=0, init_audio=prompt, progress=False)
    assert out.meta["prompt_frames"] == 10
    assert torch.equal(seen[-1][..., :10], want)
    with pytest.raises(ConfigError, match="longer than duration"):
        pipe("a bell", duration=0.001, init_audio=prompt, progress=False)


def test_empty_prompt_is_unconditional(pipe):
    a = pipe("", duration=0.01, seed=0, progress=False).audio
    assert a.shape == (1, 160) and np.isfinite(a).all()


def test_revert_of_generated_steps_uses_only_valid_slots():
    codes = torch.arange(12).view(1, 3, 4)
    seq = torch.full((1, 3, 6), -1)
    seq[0, 0, :4], seq[0, 1, 1:5], seq[0, 2, 2:6] = codes[0, 0], codes[0, 1], codes[0, 2]
    assert torch.equal(revert_pattern(seq, "delay", 4), codes)


def test_stream_writer_writes_the_audio_as_it_comes(pipe, tmp_path):
    from soundsmith.audio import load_audio
    from soundsmith.pipelines.streaming import StreamWriter

    with StreamWriter(tmp_path / "s.wav", pipe.sample_rate, num_candidates=2) as writer:
        out = pipe("rain", duration=0.02, seed=0, num_candidates=2, progress=False, on_chunk=writer)
    for i, path in enumerate(writer.paths):
        assert path.name == f"s-{i}.wav"
        audio, _ = load_audio(path)
        np.testing.assert_allclose(audio, out.audio[i], atol=1e-5)
