"""A clip's mel spectrogram as a PNG (for the page), rendered once and kept beside the WAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_MELS = 96


def spectrogram_png(audio: np.ndarray, sample_rate: int) -> bytes:
    """PNG bytes of the log-mel spectrogram of ``audio`` ``[T]`` (low frequencies at the bottom, magma colours)."""
    import io

    import librosa
    from matplotlib import image

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    n_fft = 1024 if sample_rate >= 32000 else 512
    if len(audio) < n_fft:  # a clip shorter than one frame: pad with silence so the PNG is still drawn
        audio = np.pad(audio, (0, n_fft - len(audio)))
    mel = librosa.feature.melspectrogram(
        y=audio, sr=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=N_MELS, fmax=sample_rate / 2
    )  # [N_MELS, frames]
    db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    buffer = io.BytesIO()
    image.imsave(buffer, db, cmap="magma", origin="lower", vmin=-80.0, vmax=0.0, format="png")
    return buffer.getvalue()


def render_spectrogram(wav: Path, png: Path) -> Path:
    """Write ``png``, the spectrogram of the audio file ``wav`` (atomically: a reader never sees half a file)."""
    from soundsmith.audio import load_audio

    audio, sample_rate = load_audio(wav)
    tmp = png.with_suffix(".png.tmp")
    tmp.write_bytes(spectrogram_png(audio, sample_rate))
    tmp.replace(png)
    return png


def warm_up() -> None:
    """Render one silent spectrogram now: the first finished job then does not pay ~2 s of imports and set-up."""
    spectrogram_png(np.zeros(2048, dtype=np.float32), 16000)
