"""Property-based tests (hypothesis): audio I/O round trips, manifest parsing of any text, mel/STFT shapes.

Each property runs a bounded number of examples (``max_examples`` below, no deadline) so the file stays fast.
"""

from __future__ import annotations

import json
import math
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from soundsmith.audio import MelConfig, load_audio, mel_spectrogram, save_audio
from soundsmith.audio.dsp import istft, mel_to_linear, stft
from soundsmith.audio.io import resample
from soundsmith.data.manifest import Manifest, read_manifest
from soundsmith.errors import AudioError, ManifestError

# database=None: no .hypothesis/ folder in the working tree; a failure prints its reproducing example
BOUNDED = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
RATES = st.sampled_from([8000, 11025, 16000, 22050, 24000, 44100, 48000]) | st.integers(1000, 96000)


def _audio(seed: int, channels: int, length: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (channels, length)).astype(np.float32)


# --- audio I/O ---------------------------------------------------------------------------------------------
@BOUNDED
@given(length=st.integers(1, 3000), rate=RATES, channels=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_float_wav_round_trip_is_exact(length, rate, channels, seed):
    x = _audio(seed, channels, length)
    with tempfile.TemporaryDirectory() as d:
        path = save_audio(Path(d) / "a.wav", x if channels > 1 else x[0], rate, subtype="FLOAT")
        y, sr = load_audio(path, mono=False)
        mono, _ = load_audio(path, mono=True)
    assert sr == rate
    assert y.shape == (channels, length) and y.dtype == np.float32
    assert np.array_equal(y, x)
    np.testing.assert_allclose(mono, x.mean(axis=0), rtol=0, atol=1e-6)


@BOUNDED
@given(
    length=st.integers(1, 3000),
    rate=RATES,
    channels=st.integers(1, 4),
    ext=st.sampled_from(["wav", "flac"]),
    seed=st.integers(0, 2**16),
)
def test_pcm16_round_trip_within_one_step(length, rate, channels, ext, seed):
    x = _audio(seed, channels, length)
    with tempfile.TemporaryDirectory() as d:
        if ext == "flac" and rate > 65535 and rate % 10:
            # FLAC frame headers hold rates above 65535 Hz only in steps of 10 Hz: libFLAC refuses the rest
            with pytest.raises(AudioError, match="a.flac"):
                save_audio(Path(d) / f"a.{ext}", x, rate)
            return
        path = save_audio(Path(d) / f"a.{ext}", x, rate)
        y, sr = load_audio(path, mono=False)
    assert sr == rate and y.shape == (channels, length)
    assert np.abs(y - x).max() <= 1.0 / 32768 + 1e-7  # 16-bit quantisation: at most one step
    assert np.abs(y).max() <= 1.0


@BOUNDED
@given(length=st.integers(1, 3000), rates=st.tuples(RATES, RATES), channels=st.integers(1, 3))
@example(length=3000, rates=(24000, 44100), channels=1)  # a tie soxr alone rounds down (5,512.5 -> 5,512)
@example(length=2, rates=(44100, 11025), channels=2)  # and a tie it rounds up (0.5 -> 1)
def test_resample_length_is_rounded_ratio(length, rates, channels):
    orig, target = rates
    x = _audio(length, channels, length)
    y = resample(x, orig, target)
    # the nearest integer, ties rounded up (soxr), not Python's round-half-even: 2 samples 44.1k -> 11.025k = 1
    expected = math.floor(Fraction(length * target, orig) + Fraction(1, 2))
    assert y.shape == (channels, expected) and y.dtype == np.float32
    assert resample(x[0], orig, target).shape == (expected,)


# --- manifest parsing: any text either parses or raises ManifestError ------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
ROW_KEYS = ["audio", "captions", "labels", "duration", "sample_rate", "split", "meta"]
ROWS = st.dictionaries(st.sampled_from(ROW_KEYS) | st.text(max_size=5), JSON_VALUES, max_size=8)
GOOD_ROWS = st.fixed_dictionaries(
    {
        "audio": st.text(min_size=1, max_size=10).filter(lambda s: s.strip() and "\x00" not in s),
        "duration": st.floats(0.01, 100),
        "sample_rate": st.integers(1000, 96000),
    },
    optional={
        "captions": st.lists(st.text(max_size=10), max_size=3),
        "labels": st.lists(st.text(max_size=10), max_size=3),
        "split": st.sampled_from(["train", "valid", "test"]),
    },
)
LINES = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    ROWS.map(json.dumps),
    GOOD_ROWS.map(json.dumps),
    JSON_VALUES.map(json.dumps),
)


def _read(content: bytes):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.jsonl"
        path.write_bytes(content)
        try:
            return read_manifest(path)
        except ManifestError as e:
            msg = str(e)
            assert str(path) in msg and "\n" not in msg.split(":")[0]  # names the file
            return e


@BOUNDED
@given(lines=st.lists(LINES, max_size=6))
def test_manifest_of_any_text_parses_or_raises_manifest_error(lines):
    result = _read("\n".join(lines).encode("utf-8"))
    assert isinstance(result, (Manifest, ManifestError))


@BOUNDED
@given(data=st.binary(max_size=200))
def test_manifest_of_any_bytes_parses_or_raises_manifest_error(data):
    assert isinstance(_read(data), (Manifest, ManifestError))


@BOUNDED
@given(rows=st.lists(GOOD_ROWS, min_size=1, max_size=5))
def test_valid_rows_parse_to_what_was_written(rows):
    result = _read("\n".join(json.dumps(r) for r in rows).encode("utf-8"))
    assert isinstance(result, Manifest), result
    assert [r.audio for r in result.rows] == [r["audio"] for r in rows]
    assert [r.sample_rate for r in result.rows] == [r["sample_rate"] for r in rows]
    assert [r.split for r in result.rows] == [r.get("split", "train") for r in rows]
    assert [r.captions for r in result.rows] == [r.get("captions", []) for r in rows]


# --- mel / STFT shapes for any length ----------------------------------------------------------------------------
MEL_CFGS = st.builds(
    lambda n_fft, hop_div, win_div, n_mels: MelConfig(
        sample_rate=16000,
        n_fft=n_fft,
        hop_length=max(1, n_fft // hop_div),
        win_length=n_fft // win_div,
        n_mels=n_mels,
        fmax=8000.0,
    ),
    n_fft=st.sampled_from([32, 64, 128, 256, 512]),
    hop_div=st.sampled_from([2, 4, 8]),
    win_div=st.sampled_from([1, 2]),
    n_mels=st.integers(4, 16),
)


@BOUNDED
@given(length=st.integers(1, 4000), cfg=MEL_CFGS, lead=st.lists(st.integers(1, 2), max_size=2))
def test_mel_shape_for_any_length(length, cfg, lead):
    x = torch.from_numpy(np.random.default_rng(length).uniform(-1, 1, (*lead, length)).astype(np.float32))
    mel = mel_spectrogram(x, cfg)
    frames = length // cfg.hop_length + 1
    assert mel.shape == (*lead, cfg.n_mels, frames)
    assert torch.isfinite(mel).all()
    assert mel_to_linear(mel.exp(), cfg).shape == (*lead, cfg.n_fft // 2 + 1, frames)
    spec = stft(x, cfg.n_fft, cfg.hop_length, cfg.win_length)
    assert spec.shape == (*lead, cfg.n_fft // 2 + 1, frames)
    # istft needs >= 50% window overlap (NOLA) and, by default, 2 frames: (frames - 1) * hop = 0 samples fails in
    # torch.istft with a bare RuntimeError (reported; MelConfig allows both)
    if frames > 1 and cfg.hop_length <= cfg.win_length // 2:
        assert istft(spec, cfg.n_fft, cfg.hop_length, cfg.win_length).shape == (
            *lead,
            (frames - 1) * cfg.hop_length,
        )


@BOUNDED
@given(length=st.integers(1, 3000), cfg=MEL_CFGS)
def test_stft_istft_round_trip_any_length(length, cfg):
    if cfg.hop_length > cfg.win_length // 2:
        return  # a Hann window needs >= 50% overlap to be invertible (NOLA)
    x = torch.from_numpy(np.random.default_rng(length).uniform(-1, 1, length)).double()
    spec = stft(x, cfg.n_fft, cfg.hop_length, cfg.win_length)
    y = istft(spec, cfg.n_fft, cfg.hop_length, cfg.win_length, length=length)
    assert y.shape == (length,)
    if length > cfg.n_fft // 2:  # reflect padding: exact inverse (shorter signals are zero-padded instead)
        np.testing.assert_allclose(y.numpy(), x.numpy(), atol=1e-9)


@pytest.mark.parametrize("length", [1, 2, 159, 160, 161])
def test_mel_shape_at_the_edges(length):
    cfg = MelConfig()
    assert mel_spectrogram(torch.zeros(length), cfg).shape == (64, length // 160 + 1)
