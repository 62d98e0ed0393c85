"""Sound events from recorded samples: the General MIDI percussion kit and sound-effect programs of the corpus'
SoundFont, and Hydrogen's drum kits (Debian ``hydrogen-drumkits``).

Sources, named in each annotation's ``source``:

- ``FluidR3_GM`` / ``TimGM6mb``: the SoundFont (see :mod:`instruments`); percussion on MIDI channel 10
  (``GM_DRUM_KEYS``), sound effects as programs 120-127 (``GM_SFX``) played at a drawn key and length;
- ``hydrogen``: one kit of ``/usr/share/hydrogen/data/drumkits`` (``kit`` in the annotation); each kit's
  ``drumkit.xml`` names its instruments and their velocity layers, which :func:`hydrogen_index` maps to
  classes by name (``HYDROGEN_NAMES``);
- ``dsp``: the synthesized hits of :mod:`events` (kick, snare, hi-hat, drum beat only).

All of it is optional: without the Debian packages the SoundFont is TimGM6mb and Hydrogen is not drawn.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from typing import Any

import numpy as np

from soundsmith.data.synth.dsp import fade, place

HYDROGEN_DIRS = ("/usr/share/hydrogen/data/drumkits",)
# class -> GM percussion keys (channel 10) that play it
GM_DRUM_KEYS: dict[str, tuple[int, ...]] = {
    "kick_drum": (35, 36),
    "snare_drum": (38, 40),
    "hi_hat": (42, 44),
    "tom_drum": (41, 43, 45, 47, 48, 50),
    "crash_cymbal": (49, 57),
    "ride_cymbal": (51, 59),
    "hand_clap": (39,),
    "cowbell": (56,),
    "tambourine": (54,),
    "bongo": (60, 61),
    "conga": (62, 63, 64),
    "woodblock": (76, 77),
    "triangle": (80, 81),
    "maracas": (70,),
    "claves": (75,),
}
# class -> lowercase words that name it in a Hydrogen kit (first match wins, in this order)
HYDROGEN_NAMES: dict[str, tuple[str, ...]] = {
    "hand_clap": ("clap",),
    "cowbell": ("cowbell",),
    "tambourine": ("tambourine",),
    "bongo": ("bongo",),
    "conga": ("conga",),
    "woodblock": ("woodblock",),
    "maracas": ("maraca",),
    "claves": ("clave",),
    "triangle": ("triangle",),
    "kick_drum": ("kick", "bass drum", "bassdrum"),
    "snare_drum": ("snare",),
    "hi_hat": ("hh", "hat", "hi-hat"),
    "tom_drum": ("tom",),
    "crash_cymbal": ("crash",),
    "ride_cymbal": ("ride",),
}
PERCUSSION = tuple(c for c in GM_DRUM_KEYS if c not in ("kick_drum", "snare_drum", "hi_hat"))
# class -> (GM program, key range, note length range s, clip-filling texture?)
GM_SFX: dict[str, tuple[int, tuple[int, int], tuple[float, float], bool]] = {
    "guitar_fret_noise": (120, (52, 72), (0.3, 0.8), False),
    "breath_noise": (121, (55, 67), (0.6, 1.5), False),
    "seashore": (122, (55, 67), (1.0, 1.0), True),
    "bird_tweet": (123, (60, 76), (0.6, 1.6), False),
    "telephone_ring": (124, (60, 72), (1.0, 2.2), False),
    "helicopter": (125, (48, 67), (1.0, 1.0), True),
    "applause": (126, (55, 67), (1.0, 1.0), True),
    "gunshot": (127, (48, 67), (0.3, 0.6), False),
}
HIT_COUNTS = {c: (1, 4) for c in PERCUSSION} | {"gunshot": (1, 3)}
MAX_SAMPLE_S = 2.0  # a Hydrogen sample longer than this is cut (with a fade)


# --- Hydrogen kits ---------------------------------------------------------------------------------------


def _classify(name: str) -> str | None:
    """The class an instrument name denotes: a word of ``HYDROGEN_NAMES`` starting a word of the name
    ("tomhi2" is a tom, "Ride (Custom 22")" is not)."""
    low = name.lower()
    for cls, words in HYDROGEN_NAMES.items():
        if any(re.search(rf"(?<![a-z]){re.escape(w)}", low) for w in words):
            return cls
    return None


@lru_cache(maxsize=1)
def hydrogen_index() -> dict[str, list[tuple[str, str, tuple[tuple[float, float, str], ...]]]]:
    """class -> sorted [(kit, instrument name, ((velocity min, max, sample path), ...))] of installed kits.

    Empty when ``hydrogen-drumkits`` is not installed. Unnamed or unmatched instruments are left out.
    """
    index: dict[str, list] = {}
    for root in HYDROGEN_DIRS:
        if not os.path.isdir(root):
            continue
        for kit in sorted(os.listdir(root)):
            xml = os.path.join(root, kit, "drumkit.xml")
            if not os.path.isfile(xml):
                continue
            try:
                tree = ET.parse(xml)
            except ET.ParseError:
                continue
            for inst in tree.getroot().iter():
                if inst.tag.split("}")[-1] != "instrument":
                    continue
                fields = {c.tag.split("}")[-1]: c for c in inst}
                name = (fields["name"].text or "") if "name" in fields else ""
                cls = _classify(name)
                if cls is None:
                    continue
                layers = []
                for layer in inst.iter():
                    if layer.tag.split("}")[-1] != "layer":
                        continue
                    parts = {c.tag.split("}")[-1]: (c.text or "") for c in layer}
                    path = os.path.join(root, kit, parts.get("filename", ""))
                    if parts.get("filename") and os.path.isfile(path):
                        layers.append((float(parts.get("min", 0)), float(parts.get("max", 1)), path))
                if layers:
                    index.setdefault(cls, []).append((kit, name, tuple(sorted(layers))))
    return {cls: sorted(v) for cls, v in sorted(index.items())}


@lru_cache(maxsize=512)
def _sample(path: str, sample_rate: int) -> np.ndarray:
    """A Hydrogen sample as mono float64 ``[T]`` at ``sample_rate``, at most ``MAX_SAMPLE_S`` long (cached)."""
    import soundfile as sf

    from soundsmith.audio import resample

    data, sr = sf.read(path, dtype="float64", always_2d=True)
    mono = data.mean(axis=1)
    mono = np.asarray(resample(mono.astype(np.float32), sr, sample_rate), dtype=np.float64)
    if mono.shape[0] > MAX_SAMPLE_S * sample_rate:
        mono = fade(mono[: int(MAX_SAMPLE_S * sample_rate)].copy(), sample_rate, 0.0, 0.2)
    mono.setflags(write=False)
    return mono


def hydrogen_hit(cls: str, kit: str, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One recorded hit of ``cls`` from ``kit`` (instrument and velocity layer drawn from ``rng``) ``[T]``."""
    options = [(name, layers) for k, name, layers in hydrogen_index().get(cls, []) if k == kit]
    _, layers = options[int(rng.integers(0, len(options)))]
    velocity = float(rng.uniform(0.6, 1.0))
    chosen = [p for lo, hi, p in layers if lo <= velocity <= hi] or [layers[-1][2]]
    return np.array(_sample(chosen[0], sample_rate)) * velocity


def hydrogen_kits(cls: str) -> list[str]:
    """Installed Hydrogen kits that have an instrument of class ``cls`` (sorted; empty when none)."""
    return sorted({kit for kit, _, _ in hydrogen_index().get(cls, [])})


# --- sources drawn into a spec -----------------------------------------------------------------------------


def sources_for(cls: str, soundfont: str | None = None, hydrogen: bool = True) -> list[str]:
    """The sources that can render ``cls``: ``dsp`` (synthesized hits), the SoundFont (``soundfont``, default
    the installed one), ``hydrogen`` (when ``hydrogen`` and a kit has the instrument)."""
    from soundsmith.data.synth.instruments import default_soundfont

    out = ["dsp"] if cls in ("kick_drum", "snare_drum", "hi_hat", "drum_beat") else []
    if cls in GM_DRUM_KEYS or cls in GM_SFX:
        out.append(soundfont or default_soundfont())
    kit_cls = "kick_drum" if cls == "drum_beat" else cls
    if (
        hydrogen
        and hydrogen_kits(kit_cls)
        and (cls != "drum_beat" or (hydrogen_kits("snare_drum") and hydrogen_kits("hi_hat")))
    ):
        out.append("hydrogen")
    return out


def draw_source(cls: str, rng: np.random.Generator, given: dict[str, Any]) -> dict[str, Any]:
    """``source`` (and ``kit`` for Hydrogen) of a sampled-capable class; ``given`` values win (``soundfont`` and
    ``hydrogen`` in ``given`` restrict the choice, see :class:`sources.Sources`)."""
    options = sources_for(cls, given.get("soundfont"), given.get("hydrogen", True))
    source = given.get("source") or str(rng.choice(options))
    out: dict[str, Any] = {"source": source}
    if source == "hydrogen":
        kits = hydrogen_kits("kick_drum" if cls == "drum_beat" else cls)
        if cls == "drum_beat":
            kits = [k for k in kits if k in hydrogen_kits("snare_drum") and k in hydrogen_kits("hi_hat")]
        out["kit"] = given.get("kit") or str(rng.choice(kits))
    return out


# --- renderers ---------------------------------------------------------------------------------------------


def soundfont_hit(cls: str, soundfont: str, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One GM percussion hit of ``cls`` (key and velocity drawn) from ``soundfont`` ``[T]``."""
    from soundsmith.data.synth.instruments import render_notes

    keys = GM_DRUM_KEYS[cls]
    key = int(keys[int(rng.integers(0, len(keys)))])
    length = int(1.2 * sample_rate)
    velocity = int(rng.integers(80, 121))
    return render_notes(0, [(0, length // 2, key, velocity)], length, sample_rate, soundfont, drums=True)


def hit(cls: str, a: dict[str, Any], sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One hit of ``cls`` from the spec's source (``a["source"]``, ``a.get("kit")``) ``[T]``."""
    if a["source"] == "hydrogen":
        return hydrogen_hit(cls, a["kit"], sample_rate, rng)
    return soundfont_hit(cls, a["source"], sample_rate, rng)


def counted_hits(cls: str):
    """Renderer of ``count`` hits of a percussion class (sampled), evenly spaced with a little jitter."""

    def render(n, sr, rng, a, onset):
        count, step = a["count"], int(rng.uniform(0.3, 0.6) * sr)
        if count > 1:  # every annotated hit fits in the clip
            step = max(min(step, (n - int(0.35 * sr)) // (count - 1)), int(0.08 * sr))
        total = (count - 1) * step
        slack = max(n - total - int(0.3 * sr), 0)
        start = int(onset * sr) if onset is not None else int(rng.integers(0, slack + 1))
        out = np.zeros(n)
        last = start
        for i in range(count):
            x = hit(cls, a, sr, rng)
            pos = start + i * step
            place(out, x, pos)
            last = pos + min(x.shape[0], int(0.5 * sr))
        return out, start / sr, min(last, n) / sr

    return render


def sfx(cls: str):
    """Renderer of a GM sound-effect program: one note at the drawn key (``midi_key``) and length."""
    program, _, _, texture = GM_SFX[cls]

    def render(n, sr, rng, a, onset):
        from soundsmith.data.synth.instruments import render_notes

        if texture:
            events = [(0, n, a["midi_key"], 110)]
            start, stop = 0, n
        else:
            length = int(a["length_s"] * sr)
            count = a.get("count", 1)
            gap = int(rng.uniform(0.15, 0.5) * sr)
            if count * length + (count - 1) * gap > n - int(0.2 * sr):  # shrink to fit every annotated shot
                length = max((n - int(0.2 * sr) - (count - 1) * gap) // count, int(0.1 * sr))
            total = count * length + (count - 1) * gap
            slack = max(n - total - int(0.2 * sr), 0)
            start = int(onset * sr) if onset is not None else int(rng.integers(0, slack + 1))
            starts = [start + i * (length + gap) for i in range(count)]
            events = [(s, s + length, a["midi_key"], 110) for s in starts]
            stop = min(events[-1][1] + int(0.3 * sr), n)
        out = render_notes(program, events, n, sr, a["source"])
        return fade(out, sr, 0.0, 0.05), start / sr, stop / sr

    return render


def draw_sfx_attrs(cls: str, rng: np.random.Generator, given: dict[str, Any]) -> dict[str, Any]:
    """Key (pitch variation) and note length (duration variation) of a GM sound effect; ``given`` wins."""
    from soundsmith.data.synth.instruments import default_soundfont

    _, (lo, hi), (short, long), texture = GM_SFX[cls]
    key = given.get("midi_key")
    out: dict[str, Any] = {"midi_key": int(key) if key is not None else int(rng.integers(lo, hi + 1))}
    if not texture:
        length = given.get("length_s")
        out["length_s"] = float(length) if length is not None else round(float(rng.uniform(short, long)), 2)
    out["source"] = given.get("source") or given.get("soundfont") or default_soundfont()
    return out
