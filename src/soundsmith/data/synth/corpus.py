"""The built-in captioned corpus: draw clip specs, render them (optionally in a process pool), write a manifest.

Clip ``i`` is a pure function of ``(seed, i)`` and the arguments: its spec comes from
``numpy.random.default_rng([seed, i])``, its captions from ``default_rng([seed, i, 1])``. Files and manifest
rows are therefore byte-identical whatever the number of workers.
"""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from soundsmith.data.synth.augment import apply_chain, draw_chain
from soundsmith.data.synth.captions import caption_clip
from soundsmith.data.synth.events import EVENT_CLASSES, PITCHED, REGISTERS, draw_event_attrs, render_event
from soundsmith.data.synth.instruments import (
    INSTRUMENTS,
    PHRASES,
    draw_instrument_attrs,
    phrases_for,
    render_instrument,
)
from soundsmith.data.synth.scenes import (
    BACKGROUND_CLASSES,
    FOREGROUND_EVENTS,
    FOREGROUND_FAMILIES,
    FOREGROUND_PHRASES,
    REF_DB,
    SNR_DB,
    render_scene,
)
from soundsmith.data.synth.sources import Sources
from soundsmith.data.synth.speech import (
    PIPER_VOICES,
    VOICES,
    WORDS,
    draw_speech_attrs,
    render_speech,
    voice_count,
)
from soundsmith.errors import ConfigError

FAMILY_WEIGHTS = {"events": 0.35, "instruments": 0.30, "speech": 0.15, "scenes": 0.20}
SPLIT_WEIGHTS = {"train": 0.8, "valid": 0.1, "test": 0.1}
# Attribute combinations that only the test split contains.
HELD_OUT_EVENT_REGISTERS = (("beeps", "low"), ("bell", "middle"), ("buzzer", "low"), ("sine_tone", "high"))
HELD_OUT_SCENES = (
    ("engine_hum", "events"),
    ("noise", "instruments"),
    ("rain", "speech"),
    ("wind", "instruments"),
)
REGISTER_NAMES = ("low", "middle", "high")


def held_out_register(instrument: str) -> str:
    """The register of ``instrument`` seen only in the test split (cycles low/middle/high over instruments)."""
    return REGISTER_NAMES[list(INSTRUMENTS).index(instrument) % 3]


def held_out_voice(word: str) -> int:
    """The espeak-ng voice index that says ``word`` only in the test split."""
    return (-WORDS.index(word)) % len(VOICES)


def held_out_voices(word: str, piper: bool | None = None) -> tuple[int, ...]:
    """Every voice index that says ``word`` only in the test split: one espeak-ng voice, and one piper voice
    with piper (default: when installed; ``len(VOICES) + word index mod len(PIPER_VOICES)``)."""
    with_piper = voice_count(piper) > len(VOICES)
    piper = (len(VOICES) + WORDS.index(word) % len(PIPER_VOICES),) if with_piper else ()
    return (held_out_voice(word), *piper)


def _choice(rng: np.random.Generator, options) -> Any:
    options = list(options)
    return options[int(rng.integers(0, len(options)))]


def _draw_events(
    rng: np.random.Generator, test: bool, src: Sources, classes=tuple(EVENT_CLASSES)
) -> dict[str, Any]:
    if test:
        name, register = _choice(rng, HELD_OUT_EVENT_REGISTERS)
    else:
        name = _choice(rng, classes)
        allowed = [r for r in REGISTERS if (name, r) not in HELD_OUT_EVENT_REGISTERS]
        register = _choice(rng, allowed) if name in PITCHED else None
    attrs = draw_event_attrs(name, rng, register=register, soundfont=src.soundfont, hydrogen=src.hydrogen)
    return {"family": "events", "name": name, "attrs": attrs}


def _draw_instruments(
    rng: np.random.Generator, test: bool, duration: float, src: Sources, phrases=PHRASES
) -> dict[str, Any]:
    name = _choice(rng, INSTRUMENTS)
    held = held_out_register(name)
    register = held if test else _choice(rng, [r for r in REGISTER_NAMES if r != held])
    phrase = _choice(rng, [p for p in phrases if p in phrases_for(name)])
    attrs = draw_instrument_attrs(
        name, rng, duration, register=register, phrase=phrase, soundfont=src.soundfont
    )
    return {"family": "instruments", "name": name, "attrs": attrs}


def _draw_speech(rng: np.random.Generator, test: bool, src: Sources) -> dict[str, Any]:
    word = _choice(rng, WORDS)
    held = held_out_voices(word, src.piper)
    voices = [v for v in range(voice_count(src.piper)) if v not in held]
    voice = _choice(rng, held) if test else _choice(rng, voices)
    attrs = draw_speech_attrs(word, rng, voice=voice)
    return {"family": "speech", "name": word, "attrs": {k: v for k, v in attrs.items() if k != "word"}}


def _draw_scene(rng: np.random.Generator, test: bool, duration: float, src: Sources) -> dict[str, Any]:
    k = int(rng.integers(1, 4))
    if test:
        background, forced = _choice(rng, HELD_OUT_SCENES)
        families = [_choice(rng, FOREGROUND_FAMILIES) for _ in range(k)]
        families[int(rng.integers(0, k))] = forced
    else:
        background = _choice(rng, BACKGROUND_CLASSES)
        allowed = [f for f in FOREGROUND_FAMILIES if (background, f) not in HELD_OUT_SCENES]
        families = [_choice(rng, allowed) for _ in range(k)]
    foreground = []
    for family in families:  # inner attribute combinations come from the training distribution
        if family == "events":
            foreground.append(_draw_events(rng, False, src, FOREGROUND_EVENTS))
        elif family == "instruments":
            foreground.append(_draw_instruments(rng, False, duration / k, src, FOREGROUND_PHRASES))
        else:
            foreground.append(_draw_speech(rng, False, src))
    level = "quiet" if background == "quiet" else "loud"
    return {
        "family": "scenes",
        "background": background,
        "foreground": foreground,
        "ref_db": round(float(rng.uniform(*REF_DB[level])), 1),
        "snr_db": [round(float(rng.uniform(*SNR_DB[level])), 1) for _ in range(k)],
        "seed": int(rng.integers(0, 2**31 - 1)),
        "soundfont": src.soundfont,
    }


def draw_clip_spec(
    index: int,
    seed: int,
    families: tuple[str, ...] = tuple(FAMILY_WEIGHTS),
    duration: float = 4.0,
    augment_rate: float = 0.0,
    sources: Sources | None = None,
) -> dict[str, Any]:
    """The complete description of clip ``index`` (family, split and every attribute), from ``(seed, index)``.

    ``sources`` (default: everything installed, :meth:`Sources.resolve`) limits the SoundFont, Hydrogen kits
    and piper voices drawn.

    With probability ``augment_rate`` the spec also holds a recording ``chain`` (reverb, mic EQ, noise,
    codec: :mod:`augment`), drawn from its own generator ``default_rng([seed, index, 2])`` so that the rest
    of the spec is the same whatever the rate.
    """
    rng = np.random.default_rng([seed, index])
    split = str(rng.choice(list(SPLIT_WEIGHTS), p=list(SPLIT_WEIGHTS.values())))
    weights = np.array([FAMILY_WEIGHTS[f] for f in families])
    family = families[int(rng.choice(len(families), p=weights / weights.sum()))]
    test = split == "test"
    src = sources if sources is not None else Sources.resolve()
    if family == "events":
        spec = _draw_events(rng, test, src)
    elif family == "instruments":
        spec = _draw_instruments(rng, test, duration, src)
    elif family == "speech":
        spec = _draw_speech(rng, test, src)
    else:
        spec = _draw_scene(rng, test, duration, src)
    spec = spec | {"split": split}
    if augment_rate > 0:
        chain_rng = np.random.default_rng([seed, index, 2])
        if chain_rng.random() < augment_rate:
            spec["chain"] = draw_chain(chain_rng)
    return spec


def render_clip_spec(
    spec: dict[str, Any], duration: float, sample_rate: int
) -> tuple[np.ndarray, list[dict]]:
    """Render a spec from :func:`draw_clip_spec`; returns ``(audio [T] float32, annotations)``.

    A spec's ``chain`` (recording chain) is applied after rendering; annotations keep the pre-chain levels.
    """
    audio, annotations = _render_dry(spec, duration, sample_rate)
    if "chain" in spec:
        audio = apply_chain(audio, sample_rate, spec["chain"])
    return audio, annotations


def _render_dry(spec: dict[str, Any], duration: float, sample_rate: int) -> tuple[np.ndarray, list[dict]]:
    rng = np.random.default_rng(0)  # specs are complete: nothing is drawn from it
    family = spec["family"]
    if family == "events":
        return render_event(
            spec["name"], duration=duration, sample_rate=sample_rate, rng=rng, **spec["attrs"]
        )
    if family == "instruments":
        return render_instrument(
            spec["name"], duration=duration, sample_rate=sample_rate, rng=rng, **spec["attrs"]
        )
    if family == "speech":
        return render_speech(
            spec["name"], duration=duration, sample_rate=sample_rate, rng=rng, **spec["attrs"]
        )
    return render_scene(
        spec["background"],
        spec["foreground"],
        ref_db=spec["ref_db"],
        snr_db=spec["snr_db"],
        duration=duration,
        sample_rate=sample_rate,
        seed=spec["seed"],
        soundfont=spec.get("soundfont"),
    )


@lru_cache(maxsize=8)
def _sources(names: tuple[str, ...]) -> Sources:
    return Sources.resolve(names)


def labels_of(annotations: list[dict[str, Any]]) -> list[str]:
    """Sorted class labels present in a clip (the quiet background has none)."""
    return sorted({a["class"] for a in annotations if a["class"] != "quiet"})


def make_clip(
    task: tuple[int, int, tuple[str, ...], float, int, str, float, tuple[str, ...]],
) -> dict[str, Any]:
    """Draw, render, caption and save clip ``index``; returns its manifest row as a dict (spawn-safe)."""
    from soundsmith.audio import save_audio

    index, seed, families, duration, sample_rate, out_dir, augment_rate, source_names = task
    spec = draw_clip_spec(index, seed, families, duration, augment_rate, _sources(source_names))
    audio, annotations = render_clip_spec(spec, duration, sample_rate)
    captions, template_ids = caption_clip(
        spec["family"], annotations, np.random.default_rng([seed, index, 1]), held_out=spec["split"] == "test"
    )
    rel = f"audio/{index:06d}.wav"
    save_audio(Path(out_dir) / rel, audio, sample_rate)
    meta = {"id": f"synth-{seed}-{index:06d}", "family": spec["family"], "events": annotations}
    meta["caption_templates"] = template_ids
    # what rendered it: dsp, espeak-ng, the SoundFont (FluidR3_GM / TimGM6mb), hydrogen (+ kit in the event)
    meta["sources"] = sorted({str(e.get("source", "dsp")) for e in annotations if e["class"] != "quiet"})
    if "chain" in spec:
        meta["render_chain"] = spec["chain"]
    return {
        "audio": rel,
        "captions": captions,
        "labels": labels_of(annotations),
        "duration": float(duration),
        "sample_rate": int(sample_rate),
        "split": spec["split"],
        "meta": meta,
    }


def synthesize_corpus(
    out_dir,
    *,
    clips: int | None = None,
    hours: float | None = None,
    seed: int = 0,
    families=("events", "instruments", "speech", "scenes"),
    duration: float = 4.0,
    sample_rate: int = 16000,
    workers: int = 1,
    progress: bool = True,
    augment_rate: float = 0.0,
    sources: tuple[str, ...] | list[str] | None = None,
) -> Path:
    """Write the synthetic captioned corpus: ``out_dir/audio/NNNNNN.wav`` (16-bit PCM) and ``manifest.jsonl``.

    Give ``clips`` or ``hours`` (clips = ceil(hours * 3600 / duration)). ``families`` picks a subset of
    events/instruments/speech/scenes (their weights are renormalised). Same arguments and ``seed`` give
    byte-identical files whatever ``workers`` is. ``augment_rate`` (default 0: off) is the fraction of clips
    passed through a drawn recording chain (room reverb, mic EQ, noise at an SNR, codec band limit), annotated
    in ``meta["render_chain"]``. ``sources`` names the sources to draw from (default: all installed; e.g.
    ``("dsp", "espeak-ng", "TimGM6mb")`` gives the corpus of a machine without the optional packages).
    Returns the manifest path.
    """
    from tqdm import tqdm

    from soundsmith.data.manifest import ManifestRow, write_manifest

    if (clips is None) == (hours is None):
        raise ConfigError(f"give exactly one of clips ({clips}) or hours ({hours}) for the synthetic corpus")
    if duration <= 0 or sample_rate <= 0:
        raise ConfigError(f"duration ({duration}) and sample_rate ({sample_rate}) must be positive")
    if not 0.0 <= augment_rate <= 1.0:
        raise ConfigError(f"augment_rate ({augment_rate}) must be between 0 and 1")
    n = int(clips) if clips is not None else math.ceil(float(hours) * 3600.0 / duration)
    if n <= 0:
        raise ConfigError(f"the corpus needs at least one clip; got clips={clips}, hours={hours}")
    families = tuple(families)
    unknown = [f for f in families if f not in FAMILY_WEIGHTS]
    if unknown or not families:
        raise ConfigError(f"unknown families {unknown or families}; choose from {list(FAMILY_WEIGHTS)}")
    source_names = Sources.resolve(sources).names()  # errors now, not in a worker
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    tasks = [
        (
            i,
            int(seed),
            families,
            float(duration),
            int(sample_rate),
            str(out),
            float(augment_rate),
            source_names,
        )
        for i in range(n)
    ]
    bar = tqdm(total=n, desc="synth", unit="clip", disable=not progress)
    rows: list[dict[str, Any]] = []
    if workers <= 1:
        for task in tasks:
            rows.append(make_clip(task))
            bar.update(1)
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=int(workers), mp_context=context) as pool:
            for row in pool.map(make_clip, tasks, chunksize=max(1, min(16, n // (4 * workers)))):
                rows.append(row)  # map yields in index order
                bar.update(1)
    bar.close()
    return write_manifest(out / "manifest.jsonl", [ManifestRow(**r) for r in rows])
