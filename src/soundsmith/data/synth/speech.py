"""Spoken words rendered with espeak-ng (from ``espeakng_loader``) through ctypes, synchronous output.

espeak-ng is initialised once per process (:func:`_engine`); it renders int16 speech at its own rate
(22,050 Hz), which is resampled to the requested rate with soxr. ``render_speech("five", voice=2)`` returns
``(audio [T] float32, [annotation])``.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Any

import numpy as np

from soundsmith.data.synth.dsp import fade, set_loudness
from soundsmith.errors import ConfigError

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMANDS = ("yes", "no", "up", "down", "left", "right", "stop", "go", "on", "off")
WORDS = DIGITS + COMMANDS
# voice variants: (label, espeak voice name, pitch 0-100, rate words/min, pitch range 0-100, gender word)
VOICES: tuple[tuple[str, str, int, int, int, str], ...] = (
    ("us_male", "en-us+m3", 45, 165, 50, "man"),
    ("us_female", "en-us+f3", 65, 160, 60, "woman"),
    ("british_male", "en-gb-x-rp+m1", 40, 150, 40, "man"),
    ("scottish_female", "en-gb-scotland+f2", 70, 150, 70, "woman"),
    ("caribbean_male", "en-029+m7", 35, 175, 50, "man"),
    ("deep_slow", "en+m2", 20, 125, 30, "man"),
    ("high_fast", "en-us+f4", 85, 210, 80, "woman"),
    ("whisper", "en+whisper", 50, 150, 50, "person"),
)
ESPEAK_RATE, ESPEAK_PITCH, ESPEAK_RANGE = 1, 3, 4  # espeak_PARAMETER values
AUDIO_OUTPUT_SYNCHRONOUS = 2
LOUDNESS_RANGE = (-30.0, -20.0)

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """The process's espeak-ng library handle, with a callback that collects the int16 samples."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = int(self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0))
        if self.sample_rate <= 0:
            raise ConfigError(
                f"espeak-ng failed to initialise with data at {data.decode()}; reinstall espeakng-loader"
            )
        self.chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: espeak holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, numsamples, events) -> int:
        if numsamples > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    def say(self, text: str, voice: str, pitch: int, rate: int, pitch_range: int) -> np.ndarray:
        """Synthesize ``text``; returns int16 samples ``[T]`` at ``self.sample_rate``."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ConfigError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((ESPEAK_RATE, rate), (ESPEAK_PITCH, pitch), (ESPEAK_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self.chunks = []
        raw = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(raw, len(raw), 0, 1, 0, 0, None, None)  # POS_CHARACTER, espeakCHARS_AUTO
        self.lib.espeak_Synchronize()
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)


@lru_cache(maxsize=1)
def _engine() -> _Espeak:
    return _Espeak()


@lru_cache(maxsize=512)
def _word_audio(word: str, voice: int, sample_rate: int) -> np.ndarray:
    """The trimmed float32 waveform ``[T]`` of ``word`` by voice ``voice`` at ``sample_rate`` (cached)."""
    from soundsmith.audio import resample

    engine = _engine()
    _, name, pitch, rate, rng_, _ = VOICES[voice]
    pcm = engine.say(word, name, pitch, rate, rng_).astype(np.float32) / 32768.0
    active = np.flatnonzero(np.abs(pcm) > 0.01 * (np.abs(pcm).max() + 1e-9))
    if active.size:
        pcm = pcm[max(active[0] - 64, 0) : active[-1] + 64]
    out = np.asarray(resample(pcm, engine.sample_rate, sample_rate), dtype=np.float32)
    out.setflags(write=False)
    return out


def draw_speech_attrs(word: str, rng: np.random.Generator, **given: Any) -> dict[str, Any]:
    """Complete a spoken word's attributes (``voice`` index, ``loudness_db``); ``given`` values win."""
    if word not in WORDS:
        raise ConfigError(f"unknown word {word!r}; choose one of {list(WORDS)}")
    voice = given.get("voice")
    voice = int(voice) if voice is not None else int(rng.integers(0, len(VOICES)))
    if not 0 <= voice < len(VOICES):
        raise ConfigError(f"voice {voice} out of range; use 0..{len(VOICES) - 1}")
    lufs = given.get("loudness_db")
    lufs = float(lufs) if lufs is not None else round(float(rng.uniform(*LOUDNESS_RANGE)), 1)
    onset_frac = float(rng.uniform(0.0, 1.0))
    onset_frac = float(given["onset_frac"]) if given.get("onset_frac") is not None else onset_frac
    return {"word": word, "voice": voice, "loudness_db": lufs, "onset_frac": onset_frac}


def render_speech(
    word: str,
    *,
    voice: int | None = None,
    duration: float = 4.0,
    sample_rate: int = 16000,
    rng: np.random.Generator | None = None,
    onset: float | None = None,
    loudness_db: float | None = None,
    onset_frac: float | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render the spoken ``word`` by voice variant ``voice`` (index into ``VOICES``) in a ``duration`` s clip.

    The word starts at ``onset`` (s), else at ``onset_frac`` of the free room (drawn when None). Returns ``(audio [T] float32,
    [annotation])``; the annotation's class is ``speech_<word>``.
    """
    if duration <= 0 or sample_rate <= 0:
        raise ConfigError(f"duration ({duration}) and sample_rate ({sample_rate}) must be positive")
    rng = rng if rng is not None else np.random.default_rng(0)
    a = draw_speech_attrs(word, rng, voice=voice, loudness_db=loudness_db, onset_frac=onset_frac)
    n = int(round(duration * sample_rate))
    spoken = _word_audio(word, a["voice"], sample_rate)[:n].astype(np.float64)
    slack = n - spoken.shape[0]
    start = int(onset * sample_rate) if onset is not None else int(a["onset_frac"] * slack)
    start = min(max(start, 0), slack)
    out = np.zeros(n)
    out[start : start + spoken.shape[0]] = fade(spoken.copy(), sample_rate, 0.005, 0.005)
    audio, reached = set_loudness(out, sample_rate, a["loudness_db"])
    label, _, _, _, _, gender = VOICES[a["voice"]]
    ann = {
        "class": f"speech_{word}",
        "onset": round(start / sample_rate, 3),
        "offset": round((start + spoken.shape[0]) / sample_rate, 3),
        "word": word,
        "voice": a["voice"],
        "voice_name": label,
        "speaker": gender,
        "loudness_db": reached,
    }
    return audio, [ann]
