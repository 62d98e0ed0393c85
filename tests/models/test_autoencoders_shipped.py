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


def test_shipped_vocoder_holds_low_notes_without_a_frame_rate_buzz():
    """Held 2 s, ten harmonics: C3 and A2. The vocoder of stop 41 (accumulated phase) keeps both pitches and puts
    next to nothing on the frame rate's lines; the one before it (models/vocoder_default) buzzed at 100 Hz and
    read A2 over an octave off (docs/autoencoders.md, "The frame-rate buzz"). When written: C3 0.01 / 0.1
    semitones off, buzz 0.0001 / 0.059; A2 0.45 / 20.7 semitones off, buzz 0.012 / 0.27."""
    from soundsmith.eval.reconstruction import frame_rate_buzz

    t = np.arange(2 * SR) / SR
    for f0, midi in ((130.81, 48.0), (110.0, 45.0)):
        note = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 11)).astype(np.float32)
        readings = {}
        for name in ("vocoder", "vocoder_default"):
            vocoder = load_model(name).eval()
            with torch.no_grad():
                mel = mel_spectrogram(torch.from_numpy(note)[None], vocoder.mel_config())
                y = vocoder(mel)[0, : note.size].numpy()
            off = track_pitch(y[SR // 4 : -SR // 4], SR, fine=True).median_midi() - midi
            readings[name] = (frame_rate_buzz(y, SR, 160), off)
        (buzz, off), (old_buzz, old_off) = readings["vocoder"], readings["vocoder_default"]
        assert buzz < 0.03 and abs(off) < (0.25 if midi == 48.0 else 1.0), readings
        assert old_buzz > 10 * buzz, readings  # the buzz the accumulated head removed
        if midi == 45.0:
            assert abs(old_off) > 12.0, readings  # ... which read A2 over an octave off
