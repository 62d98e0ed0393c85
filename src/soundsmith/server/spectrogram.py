"""A clip's mel spectrogram as a PNG (for the page), rendered once and kept beside the WAV."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

N_MELS = 96


def render_spectrogram(wav: Path, png: Path) -> Path:
    """Write ``png``: the log-mel spectrogram of ``wav`` (low frequencies at the bottom, magma colours)."""
    import librosa
    from matplotlib import image

    from soundsmith.audio import load_audio

    audio, sr = load_audio(wav)
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    n_fft = 1024 if sr >= 32000 else 512
    if len(audio) < n_fft:  # a clip shorter than one frame: pad with silence so the PNG is still drawn
        audio = np.pad(audio, (0, n_fft - len(audio)))
    mel = librosa.feature.melspectrogram(
        y=audio, sr=sr, n_fft=n_fft, hop_length=n_fft // 4, n_mels=N_MELS, fmax=sr / 2
    )  # [N_MELS, frames]
    db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    if db.shape[1] < 2:  # too short to draw: pad so the PNG is still valid
        db = np.pad(db, ((0, 0), (0, 2 - db.shape[1])), constant_values=-80.0)
    buffer = io.BytesIO()
    image.imsave(buffer, db, cmap="magma", origin="lower", vmin=-80.0, vmax=0.0, format="png")
    tmp = png.with_suffix(".png.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(png)
    return png
