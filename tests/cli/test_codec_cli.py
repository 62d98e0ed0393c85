"""``soundsmith codec encode / decode``: a token file round-trips to audio of the input's length."""

import numpy as np
import pytest
import torch

from soundsmith.audio import load_audio, save_audio
from soundsmith.cli.main import main
from soundsmith.models.codec import Codec, CodecConfig
from soundsmith.models.registry import save_model


def test_encode_then_decode(tmp_path, capsys):
    torch.manual_seed(0)
    codec = Codec(CodecConfig(channels=4, ratios=[2, 2], dim=8, num_quantizers=4, codebook_size=16)).eval()
    save_model(codec, tmp_path / "codec")
    save_audio(tmp_path / "in.wav", 0.3 * np.sin(np.arange(1001) / 5.0).astype(np.float32), 16000)
    assert (
        main(
            [
                "codec",
                "encode",
                str(tmp_path / "in.wav"),
                "-o",
                str(tmp_path / "t.npz"),
                "--model",
                str(tmp_path / "codec"),
                "--n-q",
                "2",
            ]
        )
        == 0
    )
    with np.load(tmp_path / "t.npz") as f:
        assert f["codes"].shape == (2, 251) and int(f["length"]) == 1001
    assert main(["codec", "decode", str(tmp_path / "t.npz"), "-o", str(tmp_path / "out.wav")]) == 0
    audio, sr = load_audio(tmp_path / "out.wav")
    assert sr == 16000 and audio.shape == (1001,)


def test_decode_of_a_bad_file_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert main(["codec", "decode", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "o.wav")]) == 1
    err = capsys.readouterr().err
    assert "not a token file" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("n_q", ["0", "9"])
def test_bad_n_q(tmp_path, capsys, n_q):
    codec = Codec(CodecConfig(channels=4, ratios=[2, 2], dim=8, num_quantizers=4, codebook_size=16))
    save_model(codec, tmp_path / "codec")
    save_audio(tmp_path / "in.wav", np.zeros(100, np.float32), 16000)
    assert (
        main(
            [
                "codec",
                "encode",
                str(tmp_path / "in.wav"),
                "-o",
                str(tmp_path / "t.npz"),
                "--model",
                str(tmp_path / "codec"),
                "--n-q",
                n_q,
            ]
        )
        == 1
    )
    assert "n_q" in capsys.readouterr().err


def test_reconstruct_through_a_codec(tmp_path, capsys):
    """``soundsmith reconstruct --model CODEC --n-q N`` writes the codec's own round trip at N codebooks."""
    torch.manual_seed(0)
    codec = Codec(CodecConfig(channels=4, ratios=[2, 2], dim=8, num_quantizers=4, codebook_size=16)).eval()
    save_model(codec, tmp_path / "codec")
    signal = 0.3 * np.sin(np.arange(1001) / 5.0).astype(np.float32)
    save_audio(tmp_path / "in.wav", signal, 16000)
    argv = [
        "reconstruct",
        str(tmp_path / "in.wav"),
        "-o",
        str(tmp_path / "rt.wav"),
        "--model",
        str(tmp_path / "codec"),
    ]
    assert main([*argv, "--n-q", "2"]) == 0
    audio, sr = load_audio(tmp_path / "rt.wav")
    source, _ = load_audio(tmp_path / "in.wav")
    with torch.no_grad():
        want = codec(torch.from_numpy(source)[None], 2).audio[0].numpy()
        every = codec(torch.from_numpy(source)[None]).audio[0].numpy()
    assert sr == 16000 and audio.shape == (1001,)
    np.testing.assert_allclose(audio, np.clip(want, -1, 1), atol=1e-4)  # 16-bit PCM rounding, clipped
    assert np.abs(want - every).max() > 1e-3  # two codebooks are not all four
    assert main([*argv, "--n-q", "5"]) == 1
    assert "n_q=5" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--n-q", "2"],
        ["--model", "codec_dir", "--no-vae"],
        ["--model", "codec_dir", "--vae", "vae"],
        ["--model", "codec_dir", "--no-level-match"],
        ["--vocoder", "griffin-lim", "--refine", "2"],
        ["--vocoder", "griffin-lim", "--no-level-match"],
    ],
)
def test_reconstruct_options_of_the_other_path_are_refused(tmp_path, capsys, extra):
    """--n-q belongs to a codec, --vae / --vocoder / --no-vae to the mel path: mixing them is a one-line error."""
    save_audio(tmp_path / "in.wav", np.zeros(100, np.float32), 16000)
    argv = ["reconstruct", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.wav"), *extra]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert ("--model" in err or "--vae" in err or "Griffin-Lim" in err) and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.wav").exists()
