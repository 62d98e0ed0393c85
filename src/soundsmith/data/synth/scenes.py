"""Scenes (Scaper-style): one background plus 1 to 3 foreground events in order, mixed at chosen SNRs.

The background sits at a reference loudness ``ref_db`` (LUFS); each foreground event is scaled to
``ref_db + snr_db``. Foreground events take consecutive slots of the clip, so captions can say "then".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from soundsmith.data.synth.dsp import PEAK_LIMIT, colored_noise, set_loudness
from soundsmith.data.synth.events import TEXTURES, render_event
from soundsmith.data.synth.instruments import render_instrument
from soundsmith.data.synth.sampled import GM_SFX
from soundsmith.data.synth.speech import render_speech
from soundsmith.errors import ConfigError

BACKGROUND_CLASSES = {
    "rain": "rain",
    "wind": "wind",
    "noise": "pink_noise",
    "engine_hum": "engine_hum",
    "seashore": "seashore",
    "quiet": None,
}
REF_DB = {"loud": (-40.0, -30.0), "quiet": (-66.0, -62.0)}  # background loudness range (LUFS)
SNR_DB = {"loud": (6.0, 20.0), "quiet": (36.0, 44.0)}
FOREGROUND_FAMILIES = ("events", "instruments", "speech")
FOREGROUND_PHRASES = ("single_note", "chord", "arpeggio", "short_melody", "repeated_note")
FOREGROUND_EVENTS = tuple(
    c
    for c in (
        "sine_tone",
        "buzzer",
        "rising_sweep",
        "falling_sweep",
        "beeps",
        "bell",
        "kick_drum",
        "snare_drum",
    )
    + (
        "hi_hat",
        "drum_beat",
        "clock_ticking",
        "bird_chirps",
        "water_drops",
        "footsteps",
        "heartbeat",
        "siren",
    )
    + ("hand_clap", "cowbell", "crash_cymbal", "tom_drum", "telephone_ring", "gunshot", "bird_tweet")
    if c not in TEXTURES
)


def render_foreground(
    fg: dict[str, Any], duration: float, sample_rate: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one foreground spec ``{"family", "name", "attrs"}`` into ``duration`` s; (audio [T], annotation)."""
    rng = np.random.default_rng(0)  # attrs are complete, so nothing is drawn from it
    family, name, attrs = fg["family"], fg["name"], dict(fg["attrs"])
    if family == "events":
        audio, anns = render_event(name, duration=duration, sample_rate=sample_rate, rng=rng, **attrs)
    elif family == "instruments":
        audio, anns = render_instrument(name, duration=duration, sample_rate=sample_rate, rng=rng, **attrs)
    elif family == "speech":
        audio, anns = render_speech(name, duration=duration, sample_rate=sample_rate, rng=rng, **attrs)
    else:
        raise ConfigError(f"unknown foreground family {family!r}; use one of {FOREGROUND_FAMILIES}")
    return audio, anns[0]


def render_scene(
    background: str,
    foreground: list[dict[str, Any]],
    *,
    ref_db: float,
    snr_db: list[float],
    duration: float = 4.0,
    sample_rate: int = 16000,
    seed: int = 0,
    soundfont: str | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Mix ``background`` (rain|wind|noise|engine_hum|seashore|quiet) at ``ref_db`` LUFS with the ``foreground`` specs.

    Foreground ``i`` (``{"family", "name", "attrs"}``, attrs complete) is rendered in slot ``i`` of
    ``len(foreground)`` equal slots at loudness ``ref_db + snr_db[i]``. ``seed`` drives the background;
    ``soundfont`` (default: the installed one) plays a recorded background (seashore).
    Returns ``(audio [T] float32, annotations)``: the background first (``role="background"``), then the
    foreground events in time order with ``snr_db`` and clip-relative ``onset``/``offset``.
    """
    if background not in BACKGROUND_CLASSES:
        raise ConfigError(f"unknown background {background!r}; choose one of {sorted(BACKGROUND_CLASSES)}")
    if not 1 <= len(foreground) <= 3 or len(snr_db) != len(foreground):
        raise ConfigError(f"a scene needs 1 to 3 foreground events with one SNR each, got {len(foreground)}")
    n = int(round(duration * sample_rate))
    bg_class = BACKGROUND_CLASSES[background]
    if bg_class is None:  # a quiet room: a faint hiss, so SNRs stay defined
        bed = colored_noise(n, np.random.default_rng(seed), 1.0)
        bg_audio, bg_db = set_loudness(bed, sample_rate, ref_db)
    else:
        bg_rng = np.random.default_rng(seed)
        recorded = {"source": soundfont} if bg_class in GM_SFX and soundfont else {}
        bg_audio, bg_ann = render_event(
            bg_class, duration=duration, sample_rate=sample_rate, rng=bg_rng, loudness_db=ref_db, **recorded
        )
        bg_db = bg_ann[0]["loudness_db"]
    mix = bg_audio.astype(np.float64)
    anns: list[dict[str, Any]] = [
        {"class": bg_class or "quiet", "role": "background", "background": background, "onset": 0.0}
        | {"offset": round(duration, 3), "loudness_db": round(float(bg_db), 2)}
    ]
    slot = duration / len(foreground)
    for i, (fg, snr) in enumerate(zip(foreground, snr_db)):
        if fg["family"] == "instruments":  # phrases have no loudness target: scale after rendering
            audio, ann = render_foreground(fg, slot, sample_rate)
            audio, reached = set_loudness(audio.astype(np.float64), sample_rate, ref_db + snr)
        else:  # events and speech render straight at the target (saves one loudness measurement)
            fg = {**fg, "attrs": {**fg["attrs"], "loudness_db": ref_db + snr}}
            audio, ann = render_foreground(fg, slot, sample_rate)
            reached = ann["loudness_db"]
        start = int(round(i * slot * sample_rate))
        mix[start : start + audio.shape[0]] += audio[: n - start]
        ann = dict(ann)
        ann["onset"] = round(ann["onset"] + i * slot, 3)
        ann["offset"] = round(ann["offset"] + i * slot, 3)
        ann["loudness_db"] = reached
        ann["snr_db"] = round(float(reached - bg_db), 2)
        ann["role"] = "foreground"
        anns.append(ann)
    peak = float(np.max(np.abs(mix)))
    if peak > PEAK_LIMIT:  # scale the whole mix: SNRs stay, absolute loudness drops by the same dB
        shift = 20.0 * np.log10(PEAK_LIMIT / peak)
        mix *= PEAK_LIMIT / peak
        for ann in anns:
            ann["loudness_db"] = round(ann["loudness_db"] + shift, 2)
    return mix.astype(np.float32), anns
