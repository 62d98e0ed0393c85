"""soundsmith.audio.io: load/save/metadata/resample and every bad-file case."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from soundsmith.audio import load_audio, read_metadata, resample, save_audio
from soundsmith.errors import AudioError


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()])


# --- round trips -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_save_load_round_trip(tmp_path: Path, ext: str) -> None:
    x = sine(440, 16000, 0.5)
    path = save_audio(tmp_path / f"a{ext}", x, 16000)
    y, sr = load_audio(path)
    assert sr == 16000 and y.dtype == np.float32 and y.shape == x.shape
    if ext == ".ogg":  # lossy Vorbis: small error overall, same pitch
        assert np.sqrt(np.mean((y - x) ** 2)) < 0.05
        assert abs(peak_freq(y, sr) - 440) <= 2.0
    else:  # PCM_16: within one quantisation step
        assert np.abs(y - x).max() <= 1 / 32768


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_metadata_round_trip(tmp_path: Path, ext: str) -> None:
    meta = {
        "prompt": "a dog barks – twice, «loud»",
        "seed": "42",
        "model": "wavenet-tiny",
        "note": '{"x": 1}',
    }
    path = save_audio(tmp_path / "sub" / "dir" / f"m{ext}", sine(440, 16000, 0.5), 16000, metadata=meta)
    assert path.exists()  # parent directories created
    assert read_metadata(path) == meta
    with sf.SoundFile(str(path)) as f:
        assert f.title == meta["prompt"]  # players show the prompt
    audio, sr = load_audio(path)  # the metadata chunk does not disturb reading
    assert sr == 16000 and audio.shape == (8000,)


def test_metadata_values_stored_as_strings(tmp_path: Path) -> None:
    path = save_audio(tmp_path / "m.flac", sine(440, 16000, 0.2), 16000, metadata={"seed": 7, "cfg": 3.5})
    assert read_metadata(path) == {"seed": "7", "cfg": "3.5"}


def test_read_metadata_of_foreign_file_returns_plain_fields(tmp_path: Path) -> None:
    path = tmp_path / "foreign.wav"
    with sf.SoundFile(str(path), "w", 16000, 1) as f:
        f.title = "field recording"
        f.comment = "not json"
        f.write(sine(440, 16000, 0.1))
    meta = read_metadata(path)
    assert meta["title"] == "field recording" and meta["comment"] == "not json"


def test_wav_metadata_too_large_raises_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "big.wav"
    with pytest.raises(AudioError, match="too large"):
        save_audio(path, sine(440, 16000, 0.1), 16000, metadata={"prompt": "x" * 5000})
    assert list(tmp_path.iterdir()) == []
    # FLAC holds it
    flac = save_audio(tmp_path / "big.flac", sine(440, 16000, 0.1), 16000, metadata={"prompt": "x" * 5000})
    assert read_metadata(flac)["prompt"] == "x" * 5000


def test_stereo_load_mono_mixdown_and_channels(tmp_path: Path) -> None:
    left, right = sine(440, 16000, 0.25, 0.5), sine(440, 16000, 0.25, 0.1)
    path = save_audio(tmp_path / "s.flac", np.stack([left, right]), 16000)
    mono, _ = load_audio(path)
    both, _ = load_audio(path, mono=False)
    assert both.shape == (2, len(left)) and mono.shape == (len(left),)
    np.testing.assert_allclose(mono, both.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(both[1], right, atol=1e-4)
    one, _ = load_audio(save_audio(tmp_path / "m.wav", left, 16000), mono=False)
    assert one.shape == (1, len(left))


def test_save_accepts_torch(tmp_path: Path) -> None:
    x = torch.from_numpy(sine(440, 16000, 0.2)).to(torch.float64)
    y, _ = load_audio(save_audio(tmp_path / "t.wav", x, 16000))
    assert np.abs(y - x.numpy()).max() < 1e-4


def test_save_float_subtype_is_lossless(tmp_path: Path) -> None:
    x = sine(440, 16000, 0.2) * 1.5  # beyond full scale survives FLOAT
    y, _ = load_audio(save_audio(tmp_path / "f.wav", x, 16000, subtype="FLOAT"))
    np.testing.assert_array_equal(y, x)


def test_save_is_atomic_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_audio(tmp_path / "keep.wav", sine(440, 16000, 0.2), 16000)
    before = path.read_bytes()

    def boom(self, data):  # noqa: ANN001
        raise sf.LibsndfileError(0, "disk on fire")

    monkeypatch.setattr(sf.SoundFile, "write", boom)
    with pytest.raises(AudioError, match="keep.wav"):
        save_audio(path, sine(880, 16000, 0.3), 16000)
    assert path.read_bytes() == before  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]  # no temp file left


# --- resampling ---------------------------------------------------------------------------------------


def test_resample_keeps_frequency_and_length() -> None:
    x = sine(1000, 44100, 1.0)
    y = resample(x, 44100, 16000)
    assert y.dtype == np.float32 and y.shape == (16000,)
    assert abs(peak_freq(y, 16000) - 1000) <= 1.0
    # amplitude kept (soxr HQ passband is flat at 1 kHz)
    assert abs(np.abs(y[1000:-1000]).max() - 0.5) < 0.01


def test_resample_multichannel_and_torch() -> None:
    x = np.stack([sine(1000, 44100, 0.5), sine(2000, 44100, 0.5)])
    y = resample(x, 44100, 22050)
    assert y.shape == (2, 11025)
    assert abs(peak_freq(y[1], 22050) - 2000) <= 2.0
    yt = resample(torch.from_numpy(x), 44100, 22050)
    assert isinstance(yt, torch.Tensor)
    np.testing.assert_allclose(yt.numpy(), y, atol=1e-6)
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)


def test_load_with_resampling(tmp_path: Path) -> None:
    path = save_audio(tmp_path / "hi.flac", sine(1000, 44100, 0.5), 44100)
    y, sr = load_audio(path, sample_rate=16000)
    assert sr == 16000 and y.shape == (8000,)
    assert abs(peak_freq(y, 16000) - 1000) <= 2.0


# --- bad input -----------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"nope\.wav.*not found"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="not found"):
        read_metadata(tmp_path / "nope.flac")


def test_directory_is_not_audio(tmp_path: Path) -> None:
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path / "d.wav")


def test_corrupt_bytes(tmp_path: Path) -> None:
    path = tmp_path / "junk.wav"
    path.write_bytes(b"this is not audio at all" * 20)
    with pytest.raises(AudioError, match=r"junk\.wav.*cannot decode"):
        load_audio(path)


def test_truncated_wav(tmp_path: Path) -> None:
    path = save_audio(tmp_path / "full.wav", sine(440, 16000, 1.0), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioError, match=r"cut\.wav.*truncated"):
        load_audio(cut)


@pytest.mark.parametrize("ext", [".flac", ".ogg"])
def test_truncated_compressed(tmp_path: Path, ext: str) -> None:
    path = save_audio(tmp_path / f"full{ext}", sine(440, 16000, 1.0), 16000)
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioError, match=r"cut\."):
        load_audio(cut)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav.*empty"):
        load_audio(path)
    with pytest.raises(AudioError, match="empty"):
        save_audio(tmp_path / "e.wav", np.zeros(0, np.float32), 16000)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.flac"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"zero\.flac"):
        load_audio(path)


@pytest.mark.parametrize("name", ["a.mp4", "a.txt", "noext"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(AudioError, match="use one of"):
        load_audio(path)
    with pytest.raises(AudioError, match="use one of"):
        save_audio(tmp_path / f"out_{name}", sine(440, 16000, 0.1), 16000)


def test_zero_sample_rate_in_header(tmp_path: Path) -> None:
    path = save_audio(tmp_path / "rate.wav", sine(440, 16000, 0.1), 16000)
    raw = bytearray(path.read_bytes())
    fmt = raw.find(b"fmt ")
    raw[fmt + 12 : fmt + 16] = struct.pack("<I", 0)  # sample rate field
    path.write_bytes(bytes(raw))
    with pytest.raises(AudioError, match=r"rate\.wav"):
        load_audio(path)


def test_nan_inf_on_load(tmp_path: Path) -> None:
    x = sine(440, 16000, 0.1)
    x[10] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN or Inf"):
        load_audio(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_on_save(tmp_path: Path, bad: float) -> None:
    x = sine(440, 16000, 0.1)
    x[5] = bad
    with pytest.raises(AudioError, match="NaN or Inf"):
        save_audio(tmp_path / "bad.wav", x, 16000)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rate", [0, -16000, 0.5])
def test_bad_sample_rate_arguments(tmp_path: Path, rate: float) -> None:
    with pytest.raises(AudioError, match="sample rate"):
        save_audio(tmp_path / "r.wav", sine(440, 16000, 0.1), rate)
    good = save_audio(tmp_path / "g.wav", sine(440, 16000, 0.1), 16000)
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(good, sample_rate=rate)
    with pytest.raises(AudioError, match="sample rate"):
        resample(sine(440, 16000, 0.1), 16000, rate)


def test_save_rejects_wrong_shapes(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"transpose"):
        save_audio(tmp_path / "tc.wav", np.zeros((1000, 2), np.float32), 16000)
    with pytest.raises(AudioError, match=r"\[C, T\]"):
        save_audio(tmp_path / "3d.wav", np.zeros((1, 2, 100), np.float32), 16000)
