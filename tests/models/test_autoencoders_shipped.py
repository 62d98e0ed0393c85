"""The shipped mel VAE and vocoder still do their job on a constructed clip whose answer is known: a held E4 then
three beeps. Random-weight tests check shapes; these catch a change to the architecture or the normalisation that
the shipped weights no longer fit (a padding, a stride, a sign, the mel scaling), which shapes alone let through."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundsmith.audio import mel_spectrogram
from soundsmith.eval.attributes import count_events
from soundsmith.eval.pitch import track_pitch
from soundsmith.models.registry import load_model

SR = 16000


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    t = np.arange(SR) / SR
    x = np.zeros(2 * SR, np.float32)
    x[:SR] = 0.3 * np.sin(2 * np.pi * 329.63 * t) * np.minimum(1, 20 * t)  # E4, MIDI 64, 50 ms fade-in
    for k in range(3):  # three 125 ms beeps at A5, 300 ms apart
        start = SR + int(0.3 * k * SR)
        x[start : start + SR // 8] = 0.3 * np.sin(2 * np.pi * 880 * t[: SR // 8])
    return x


def test_shipped_vae_reconstructs_the_log_mel(clip):
    vae = load_model("vae").eval()
    with torch.no_grad():
        mel = mel_spectrogram(torch.from_numpy(clip)[None], vae.mel_config())
        mean, logvar = vae.encode(mel)
        rec = vae.decode(mean, mel.shape[-1])
    assert rec.shape == mel.shape
    error = float((rec - mel).abs().mean())
    baseline = float((mel - mel.mean()).abs().mean())  # the clip's own mean as the reconstruction
    assert error < 0.4 and error < 0.2 * baseline  # 0.19 against 2.57 when written
    assert float(logvar.max()) <= 20.0 and float(logvar.min()) >= -30.0


def test_shipped_vocoder_keeps_the_mel_the_pitch_and_the_count(clip):
    vocoder = load_model("vocoder").eval()
    with torch.no_grad():
        mel = mel_spectrogram(torch.from_numpy(clip)[None], vocoder.mel_config())
        audio = vocoder(mel)[0, : clip.size]
        again = mel_spectrogram(audio[None], vocoder.mel_config())[..., : mel.shape[-1]]
    assert float((again - mel).abs().mean()) < 0.6  # 0.30 when written
    y = audio.numpy()
    assert abs(track_pitch(y[:SR], SR).median_midi() - 64.0) < 0.5
    assert count_events(y[SR:], SR) == 3
