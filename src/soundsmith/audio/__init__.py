"""Audio core: file I/O and resampling, torch DSP (STFT, mel, Griffin-Lim, mu-law), loudness."""

from soundsmith.audio.dsp import (
    MelConfig,
    change_speed,
    griffin_lim,
    istft,
    mel_filterbank,
    mel_spectrogram,
    mel_to_linear,
    mu_law_decode,
    mu_law_encode,
    peak_normalize,
    stft,
)
from soundsmith.audio.io import (
    READ_EXTENSIONS,
    WRITE_FORMATS,
    load_audio,
    read_metadata,
    resample,
    save_audio,
)
from soundsmith.audio.loudness import SILENCE_DBFS, measure_loudness, normalize_loudness

__all__ = [
    "READ_EXTENSIONS",
    "SILENCE_DBFS",
    "WRITE_FORMATS",
    "MelConfig",
    "change_speed",
    "griffin_lim",
    "istft",
    "load_audio",
    "measure_loudness",
    "mel_filterbank",
    "mel_spectrogram",
    "mel_to_linear",
    "mu_law_decode",
    "mu_law_encode",
    "normalize_loudness",
    "peak_normalize",
    "read_metadata",
    "resample",
    "save_audio",
    "stft",
]
