"""Sound events rendered with numpy/scipy DSP: 22 classes with natural variation.

``render_event(name, duration=..., sample_rate=..., rng=..., **attrs)`` renders one described event as
``(audio [T] float32, [event annotation])``. Attributes not given are drawn from ``rng`` first
(:func:`draw_event_attrs`), then the audio is rendered from them (randomness drawn first, applied second).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from soundsmith.data.synth.dsp import (
    colored_noise,
    decay_env,
    fade,
    filt,
    midi_to_hz,
    midi_to_note,
    place,
    set_loudness,
)
from soundsmith.data.synth.sampled import (
    GM_SFX,
    HIT_COUNTS,
    PERCUSSION,
    counted_hits,
    draw_sfx_attrs,
    draw_source,
    hit,
    sfx,
)
from soundsmith.errors import ConfigError

REGISTERS: dict[str, tuple[int, int]] = {"low": (48, 59), "middle": (60, 71), "high": (72, 83)}
PITCHED = ("sine_tone", "buzzer", "beeps", "bell")
COUNTED = ("beeps", "bell", "kick_drum", "snare_drum", "hi_hat", "bird_chirps", "water_drops") + tuple(
    HIT_COUNTS
)
SAMPLED_VARIANTS = ("kick_drum", "snare_drum", "hi_hat", "drum_beat")  # dsp, SoundFont or Hydrogen
WIND_TYPES = ("rustle", "rustle", "howl")  # drawn uniformly: trees twice as often as a howl
DRUM_PATTERNS = {  # eighth-note positions in a bar of 8: (kick, snare)
    "rock": ((0, 4), (2, 6)),
    "four_on_the_floor": ((0, 2, 4, 6), (2, 6)),
    "half_time": ((0,), (4,)),
}
TEMPO = ("drum_beat", "clock_ticking", "heartbeat", "footsteps")
TEXTURES = ("white_noise", "pink_noise", "brown_noise", "rain", "wind", "engine_hum", "siren")
TEMPO_RANGES = {
    "drum_beat": {"slow": (70, 95), "fast": (120, 150)},
    "clock_ticking": {"slow": (60, 60), "fast": (120, 120)},
    "heartbeat": {"slow": (55, 70), "fast": (95, 120)},
    "footsteps": {"slow": (80, 100), "fast": (130, 160)},
}
COUNT_RANGES = {"beeps": (1, 5), "bell": (1, 3), "bird_chirps": (2, 6), "water_drops": (2, 6)}
COUNT_RANGES.update({"kick_drum": (1, 4), "snare_drum": (1, 4), "hi_hat": (1, 6)} | HIT_COUNTS)
LOUDNESS_RANGE = (-32.0, -20.0)  # LUFS drawn for a stand-alone event


def draw_event_attrs(name: str, rng: np.random.Generator, **given: Any) -> dict[str, Any]:
    """Complete the attributes of event class ``name``: values in ``given`` win, the rest come from ``rng``.

    Always drawn in the same order, so a spec is a pure function of the generator state.
    """
    if name not in EVENT_CLASSES:
        raise ConfigError(f"unknown sound event class {name!r}; choose one of {sorted(EVENT_CLASSES)}")
    a: dict[str, Any] = {}
    if name in PITCHED:
        register = given.get("register") or str(rng.choice(list(REGISTERS)))
        lo, hi = REGISTERS[register]
        midi = given.get("midi_pitch")
        midi = int(midi) if midi is not None else int(rng.integers(lo, hi + 1))
        if "register" not in given:
            register = next((r for r, (a_, b_) in REGISTERS.items() if a_ <= midi <= b_), register)
        a.update(midi_pitch=midi, note=midi_to_note(midi), register=register)
    if name == "buzzer":
        a["waveform"] = given.get("waveform") or str(rng.choice(["square", "sawtooth"]))
    if name in COUNTED:
        lo, hi = COUNT_RANGES[name]
        a["count"] = int(given["count"]) if given.get("count") is not None else int(rng.integers(lo, hi + 1))
    if name in TEMPO:
        tempo = given.get("tempo") or str(rng.choice(["slow", "fast"]))
        lo, hi = TEMPO_RANGES[name][tempo]
        bpm = given.get("tempo_bpm")
        a.update(tempo=tempo, tempo_bpm=int(bpm) if bpm is not None else int(rng.integers(lo, hi + 1)))
    if name in ("rising_sweep", "falling_sweep"):
        low, high = round(float(rng.uniform(150, 500)), 1), round(float(rng.uniform(1500, 4000)), 1)
        a["start_hz"], a["end_hz"] = (low, high) if name == "rising_sweep" else (high, low)
        if given.get("start_hz") is not None and given.get("end_hz") is not None:
            a["start_hz"], a["end_hz"] = float(given["start_hz"]), float(given["end_hz"])
    if name == "wind":
        a["wind_type"] = given.get("wind_type") or str(rng.choice(WIND_TYPES))
    if name == "drum_beat":
        a["pattern"] = given.get("pattern") or str(rng.choice(list(DRUM_PATTERNS)))
    if name in SAMPLED_VARIANTS or name in PERCUSSION:
        a.update(draw_source(name, rng, given))
    if name in GM_SFX:
        a.update(draw_sfx_attrs(name, rng, given))
    lufs = given.get("loudness_db")
    a["loudness_db"] = float(lufs) if lufs is not None else round(float(rng.uniform(*LOUDNESS_RANGE)), 1)
    a["seed"] = int(given["seed"]) if given.get("seed") is not None else int(rng.integers(0, 2**31 - 1))
    return a


def render_event(
    name: str,
    *,
    duration: float = 4.0,
    sample_rate: int = 16000,
    rng: np.random.Generator | None = None,
    onset: float | None = None,
    **attrs: Any,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render one sound event of class ``name`` into a clip of ``duration`` seconds.

    ``attrs`` may fix ``midi_pitch``/``register`` (pitched classes), ``count``, ``tempo``/``tempo_bpm``,
    ``waveform``, ``loudness_db`` (LUFS) and ``seed``; the rest are drawn from ``rng`` (default: seeded 0).
    ``onset`` (s) fixes where a non-texture event starts. Returns ``(audio [T] float32, [annotation])`` with
    ``T = round(duration * sample_rate)``; the annotation has ``class, onset, offset`` and the attributes.
    """
    if duration <= 0 or sample_rate <= 0:
        raise ConfigError(f"duration ({duration}) and sample_rate ({sample_rate}) must be positive")
    rng = rng if rng is not None else np.random.default_rng(0)
    a = draw_event_attrs(name, rng, **attrs)
    n = int(round(duration * sample_rate))
    render_rng = np.random.default_rng(a["seed"])
    body, start, stop = EVENT_CLASSES[name](n, sample_rate, render_rng, a, onset)
    audio, reached = set_loudness(body, sample_rate, a["loudness_db"])
    ann = {"class": name, "onset": round(start, 3), "offset": round(stop, 3)}
    ann.update({k: v for k, v in a.items() if k not in ("seed", "loudness_db")})
    ann.setdefault("source", "dsp")
    ann["loudness_db"] = reached
    return audio, [ann]


# --- per-class renderers: (n, sr, rng, attrs, onset) -> (audio [n], onset s, offset s) -----------------


def _span(n: int, sr: int, rng: np.random.Generator, frac: tuple[float, float], onset: float | None):
    """Draw a segment length (fraction of the clip) and an onset that fits; returns sample bounds."""
    length = int(n * rng.uniform(*frac))
    slack = max(n - length - int(0.05 * sr), 0)
    start = int(onset * sr) if onset is not None else int(rng.integers(0, slack + 1))
    start = min(max(start, 0), max(n - length, 0))
    return start, min(start + length, n)


def _sine_tone(n, sr, rng, a, onset):
    s, e = _span(n, sr, rng, (0.45, 0.8), onset)
    t = np.arange(e - s) / sr
    vib = 0.002 * np.sin(2 * np.pi * rng.uniform(4, 6) * t)  # ~3.5 cents of vibrato
    f = midi_to_hz(a["midi_pitch"])
    tone = np.sin(2 * np.pi * f * t + f * np.cumsum(vib) / sr * 2 * np.pi)
    out = np.zeros(n)
    out[s:e] = fade(tone, sr, rng.uniform(0.01, 0.05), rng.uniform(0.02, 0.1))
    return out, s / sr, e / sr


def _additive(f0: float, n: int, sr: int, waveform: str, max_harmonics: int = 20) -> np.ndarray:
    """Band-limited square/sawtooth ``[n]`` by additive synthesis (no aliasing, unlike scipy.signal.square)."""
    ks = np.arange(1, max_harmonics + 1)
    ks = ks[ks * f0 < 0.45 * sr]
    if waveform == "square":
        ks = ks[ks % 2 == 1]
    phase = 2 * np.pi * f0 * np.arange(n) / sr
    return (np.sin(np.outer(ks, phase)) / ks[:, None]).sum(axis=0)


def _buzzer(n, sr, rng, a, onset):
    s, e = _span(n, sr, rng, (0.35, 0.75), onset)
    out = np.zeros(n)
    tone = _additive(midi_to_hz(a["midi_pitch"]), e - s, sr, a["waveform"])
    out[s:e] = fade(tone, sr, 0.005, 0.02)
    return out, s / sr, e / sr


def _sweep(n, sr, rng, a, onset):
    s, e = _span(n, sr, rng, (0.5, 0.85), onset)
    m = e - s
    f = a["start_hz"] * (a["end_hz"] / a["start_hz"]) ** (np.arange(m) / max(m - 1, 1))  # log sweep
    tone = np.sin(2 * np.pi * np.cumsum(f) / sr) + 0.2 * np.sin(4 * np.pi * np.cumsum(f) / sr)
    tone[2 * f >= 0.45 * sr] = np.sin(2 * np.pi * np.cumsum(f) / sr)[2 * f >= 0.45 * sr]
    out = np.zeros(n)
    out[s:e] = fade(tone, sr, 0.02, 0.05)
    return out, s / sr, e / sr


def _siren(n, sr, rng, a, onset):
    t = np.arange(n) / sr
    fc, depth, rate = rng.uniform(700, 1100), rng.uniform(0.25, 0.4), rng.uniform(0.3, 0.9)
    f = fc * (1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    ph = 2 * np.pi * np.cumsum(f) / sr
    return fade(np.sin(ph) + 0.3 * np.sin(2 * ph), sr, 0.2, 0.2), 0.0, n / sr


def _beeps(n, sr, rng, a, onset):
    count, f = a["count"], midi_to_hz(a["midi_pitch"])
    beep, gap = int(rng.uniform(0.1, 0.18) * sr), int(rng.uniform(0.15, 0.3) * sr)
    total = count * beep + (count - 1) * gap
    slack = max(n - total - int(0.05 * sr), 0)
    start = int(onset * sr) if onset is not None else int(rng.integers(0, slack + 1))
    ramp = np.ones(beep)
    n_in, n_out = int(0.008 * sr), int(0.06 * sr)  # raised-cosine ramps: no broadband click at the edges
    ramp[:n_in] = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_in) / n_in)
    ramp[-n_out:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(n_out) / n_out)
    tone = np.sin(2 * np.pi * f * np.arange(beep) / sr) * ramp
    out = np.zeros(n)
    for i in range(count):
        place(out, tone, start + i * (beep + gap))
    return out, start / sr, min(start + total, n) / sr


def _noise(exponent: float):
    def render(n, sr, rng, a, onset):
        x = colored_noise(n, rng, exponent)
        drift = 1 + 0.15 * np.interp(np.arange(n), np.linspace(0, n, 6), rng.standard_normal(6))
        return fade(x * drift, sr, 0.05, 0.05), 0.0, n / sr

    return render


def _rain(n, sr, rng, a, onset):
    bed = filt(colored_noise(n, rng, 1.0), "highpass", rng.uniform(600, 1500), sr) * 0.5
    drops = np.zeros(n)
    k = int(rng.uniform(40, 160) * n / sr)
    drops[rng.integers(0, n, k)] = rng.uniform(0.2, 1.0, k) * rng.choice([-1, 1], k)
    kernel = rng.standard_normal(int(0.006 * sr)) * decay_env(int(0.006 * sr), sr, 0.0015)
    drops = filt(np.convolve(drops, kernel, mode="same"), "highpass", 800.0, sr)
    return fade(bed + drops * 3.0, sr, 0.1, 0.1), 0.0, n / sr


def _wind(n, sr, rng, a, onset):
    """Wind, two kinds (``wind_type``), both noise with slow gusts, never a whistle:

    - ``rustle`` (wind through trees): broadband; a fast random flutter (leaves) modulates the high band.
      Flatness 0.04-0.33 over 16 seeds (the old band-pass "whistle": 0.000, periodicity 0.80).
    - ``howl``: an octave-wide band of noise around 400-700 Hz that drifts with the gusts, steep above
      1.6 kHz, as OpenSFX's recorded "Wind" (energy peak 400-800 Hz, -39 dB at 1.6-3.2 kHz; periodicity 0.32).
    """
    k = int(rng.integers(5, 10))
    gust = np.interp(np.arange(n), np.linspace(0, n, k), rng.uniform(0.3, 1.0, k))
    rumble = filt(colored_noise(n, rng, 2.0), "lowpass", 120.0, sr) * float(rng.uniform(0.2, 0.6))
    if a.get("wind_type", "rustle") == "howl":
        bands = []
        for fc in sorted(rng.uniform(380, 720, 2)):
            b = filt(colored_noise(n, rng, 1.0), "bandpass", (fc / 1.41, fc * 1.41), sr, order=3)
            bands.append(b / (np.std(b) + 1e-9))
        x = gust * ((1 - gust) * bands[0] + gust * bands[1]) + 0.3 * rumble  # stronger gusts howl higher
        return fade(x, sr, 0.3, 0.3), 0.0, n / sr
    base = colored_noise(n, rng, float(rng.uniform(0.4, 0.9)))
    body = filt(base, "lowpass", float(rng.uniform(300, 1200)), sr)
    leaves = filt(base, "highpass", float(rng.uniform(700, 1200)), sr)
    flutter = np.abs(
        1.0 + 0.8 * filt(rng.standard_normal(n), "lowpass", float(rng.uniform(8, 25)), sr, 1) * 6
    )
    x = gust * body + gust * flutter * leaves * float(rng.uniform(0.25, 1.2)) + rumble
    return fade(x, sr, 0.3, 0.3), 0.0, n / sr


BELL_PARTIALS = ((1.0, 1.0, 1.0), (2.0, 0.6, 0.7), (2.76, 0.3, 0.5), (4.07, 0.2, 0.35), (5.4, 0.1, 0.25))
# (ratio to f0, amplitude, decay scale): a strong fundamental with its octave keeps pYIN on the labelled f0.


def _bell(n, sr, rng, a, onset):
    f0, count = midi_to_hz(a["midi_pitch"]), a["count"]
    interval, tau = int(rng.uniform(0.6, 1.0) * sr), rng.uniform(0.5, 1.0)
    ring = int(min(n, 4 * tau * sr))
    t = np.arange(ring) / sr
    strike = np.zeros(ring)
    for ratio, amp, scale in BELL_PARTIALS:
        if ratio * f0 < 0.45 * sr:
            strike += amp * np.sin(2 * np.pi * ratio * f0 * t) * decay_env(ring, sr, tau * scale)
    total = (count - 1) * interval
    slack = max(n - total - int(0.5 * sr), 0)
    start = int(onset * sr) if onset is not None else int(rng.integers(0, min(slack, int(0.4 * sr)) + 1))
    out = np.zeros(n)
    for i in range(count):
        place(out, strike, start + i * interval)
    return fade(out, sr, 0.0, 0.02), start / sr, min(start + total + ring, n) / sr


def _kick(sr, rng):
    m = int(0.35 * sr)
    t = np.arange(m) / sr
    f = 45 + rng.uniform(80, 130) * np.exp(-t / 0.04)
    body = np.sin(2 * np.pi * np.cumsum(f) / sr) * decay_env(m, sr, rng.uniform(0.08, 0.15))
    click = filt(rng.standard_normal(m), "highpass", min(2500.0, 0.4 * sr), sr)  # the beater on the head
    return body + rng.uniform(0.1, 0.25) * click * decay_env(m, sr, 0.003, attack=0.0005)


def _snare(sr, rng):
    """Drum-head modes (~180 and ~330 Hz) plus snare-wire noise (1-7 kHz). The heads carry more of the energy
    than the wires: recorded snares measure flatness ~0.07 and periodicity ~0.6 (Hydrogen kits)."""
    m = int(0.25 * sr)
    noise = filt(rng.standard_normal(m), "bandpass", (1000.0, min(7000.0, 0.45 * sr)), sr)
    f1 = rng.uniform(170, 220)
    t = np.arange(m) / sr
    body = np.sin(2 * np.pi * f1 * t) + 0.5 * np.sin(2 * np.pi * f1 * 1.84 * t)
    head = body * decay_env(m, sr, rng.uniform(0.06, 0.1))
    return 0.7 * noise * decay_env(m, sr, rng.uniform(0.04, 0.08)) + head


HAT_RATIOS = (1.0, 1.4836, 1.8003, 2.5459, 2.6303, 3.8968)  # six inharmonic square waves (the TR-808 hat)


def _hat(sr, rng):
    """Metallic partials (inharmonic square waves) through a high-pass, plus a little noise: recorded
    hats centre around 3.5 kHz with some ring, where the old 6 kHz high-passed hiss centred at 6.1 kHz."""
    m = int(0.15 * sr)
    t = np.arange(m) / sr
    base = rng.uniform(300, 420)
    metal = sum(np.sign(np.sin(2 * np.pi * base * r * t + rng.uniform(0, 6.3))) for r in HAT_RATIOS)
    band = (min(rng.uniform(1800, 2600), 0.2 * sr), min(6000.0, 0.4 * sr))
    metal = filt(metal, "bandpass", band, sr, order=3)
    noise = filt(rng.standard_normal(m), "bandpass", band, sr)
    return (metal / 6 + 0.2 * noise) * decay_env(m, sr, rng.uniform(0.03, 0.08))


def _hits(name: str, make: Callable[[int, np.random.Generator], np.ndarray], spacing: tuple[float, float]):
    """``count`` hits of ``name``: synthesized by ``make`` (source ``dsp``) or recorded (SoundFont/Hydrogen)."""

    def render(n, sr, rng, a, onset):
        count, step = a["count"], int(rng.uniform(*spacing) * sr)
        total = (count - 1) * step
        slack = max(n - total - int(0.3 * sr), 0)
        start = int(onset * sr) if onset is not None else int(rng.integers(0, slack + 1))
        out = np.zeros(n)
        for i in range(count):
            x = make(sr, rng) if a.get("source", "dsp") == "dsp" else hit(name, a, sr, rng)
            place(out, x * rng.uniform(0.85, 1.0), start + i * step)
        return out, start / sr, min(start + total + int(0.15 * sr), n) / sr

    return render


def _drum_beat(n, sr, rng, a, onset):
    """A bar-repeating pattern (``pattern``) at ``tempo_bpm``; annotates the number of each hit in ``hits``."""
    eighth = int(30.0 / a["tempo_bpm"] * sr)
    start = int(onset * sr) if onset is not None else int(rng.integers(0, int(0.2 * sr) + 1))
    out = np.zeros(n)
    kicks, snares = DRUM_PATTERNS[a.get("pattern", "rock")]
    kicks = set(kicks) | ({5} if a.get("pattern", "rock") == "rock" and rng.random() < 0.5 else set())
    dsp = a.get("source", "dsp") == "dsp"

    def play(cls, make, gain, at):  # counts land in the annotation (render_event copies ``a`` after this)
        place(out, gain * (make(sr, rng) if dsp else hit(cls, a, sr, rng)), at)
        a["hits"][cls] += 1

    a["hits"] = {"kick_drum": 0, "snare_drum": 0, "hi_hat": 0}
    pos, i = start, 0
    while pos < n - int(0.05 * sr):
        play("hi_hat", _hat, 0.4 * (1.0 if i % 2 == 0 else 0.6), pos)
        if i % 8 in kicks:
            play("kick_drum", _kick, 1.0, pos)
        if i % 8 in snares:
            play("snare_drum", _snare, 0.8, pos)
        pos, i = pos + int(eighth * (1 + rng.normal(0, 0.01))), i + 1
    return fade(out, sr, 0.0, 0.02), start / sr, n / sr


def _clock(n, sr, rng, a, onset):
    step = int(60.0 / a["tempo_bpm"] * sr)
    start = int(onset * sr) if onset is not None else int(rng.integers(0, step // 2 + 1))
    out, m = np.zeros(n), int(0.02 * sr)
    tone_f = rng.uniform(1800, 3000)
    for i, pos in enumerate(range(start, n - m, step)):
        f = tone_f * (1.0 if i % 2 == 0 else 0.8)
        click = np.sin(2 * np.pi * f * np.arange(m) / sr) + 0.5 * rng.standard_normal(m)
        place(out, click * decay_env(m, sr, 0.003, attack=0.0005), pos)
    return out, start / sr, n / sr


def _engine(n, sr, rng, a, onset):
    t = np.arange(n) / sr
    f0 = rng.uniform(25, 55) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t))
    ph = 2 * np.pi * np.cumsum(f0) / sr
    hum = sum(np.sin(k * ph + rng.uniform(0, 6.3)) / k**0.8 for k in range(1, 12))
    rumble = filt(rng.standard_normal(n), "lowpass", 300.0, sr)
    # mechanical noise (valves, gears, exhaust) pulsing at the firing rate: recorded engines (OpenSFX buses and
    # trucks) centre at ~1.6 kHz with flatness ~0.03; the hum and rumble alone centred at 336 Hz
    pulse = 1.0 + 0.6 * np.sin(ph + rng.uniform(0, 6.3))
    mech = filt(rng.standard_normal(n), "bandpass", (400.0, min(3500.0, 0.45 * sr)), sr) * pulse
    hum_rms = np.sqrt(np.mean(hum**2))
    body = hum + 2.0 * rumble * hum_rms / 0.3
    return fade(body + float(rng.uniform(0.6, 1.4)) * hum_rms * mech, sr, 0.2, 0.2), 0.0, n / sr


def _bird(n, sr, rng, a, onset):
    count = a["count"]
    out, pos = np.zeros(n), int(onset * sr) if onset is not None else int(rng.uniform(0, 0.3) * sr)
    first, last = pos, pos
    top = min(6500.0, 0.42 * sr)
    for _ in range(count):
        m = int(rng.uniform(0.06, 0.15) * sr)
        f = np.linspace(rng.uniform(0.75, 1.0) * top, rng.uniform(0.4, 0.6) * top, m)
        f *= 1 + 0.05 * np.sin(2 * np.pi * rng.uniform(20, 40) * np.arange(m) / sr)
        chirp = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(m)
        place(out, chirp, pos)
        last = pos + m
        pos += m + int(rng.uniform(0.08, 0.35) * sr)
    return out, first / sr, min(last, n) / sr


def _drops(n, sr, rng, a, onset):
    count = a["count"]
    out, pos = np.zeros(n), int(onset * sr) if onset is not None else int(rng.uniform(0, 0.3) * sr)
    first, last = pos, pos
    for _ in range(count):
        m = int(0.08 * sr)
        t = np.arange(m) / sr
        f = rng.uniform(400, 900) * (1 + 1.5 * (1 - np.exp(-t / 0.02)))
        place(out, np.sin(2 * np.pi * np.cumsum(f) / sr) * decay_env(m, sr, rng.uniform(0.012, 0.025)), pos)
        last = pos + m
        pos += m + int(rng.uniform(0.15, 0.6) * sr)
    return out, first / sr, min(last, n) / sr


def _step(sr, rng):
    m = int(0.12 * sr)
    thud = filt(rng.standard_normal(m), "lowpass", rng.uniform(600, 1500), sr) * decay_env(m, sr, 0.025)
    toe = np.zeros(m)
    place(toe, thud[: m // 2] * 0.6, int(rng.uniform(0.03, 0.05) * sr))
    return thud + toe


def _footsteps(n, sr, rng, a, onset):
    step = int(60.0 / a["tempo_bpm"] * sr)
    start = int(onset * sr) if onset is not None else int(rng.integers(0, int(0.3 * sr) + 1))
    out, pos = np.zeros(n), start
    while pos < n - int(0.12 * sr):
        place(out, _step(sr, rng) * rng.uniform(0.7, 1.0), pos)
        pos += int(step * (1 + rng.normal(0, 0.03)))
    return out, start / sr, n / sr


def _heart_sound(sr: int, rng: np.random.Generator, f: float, length: float) -> np.ndarray:
    """One heart sound (S1 "lub" / S2 "dub"): a damped low thud plus a low-passed noise burst, not a sine."""
    m = int(length * sr)
    thud = np.sin(2 * np.pi * f * np.arange(m) / sr + rng.uniform(0, 6.3)) * decay_env(
        m, sr, length / 3, 0.01
    )
    burst = filt(rng.standard_normal(m), "lowpass", rng.uniform(100, 160), sr, order=4) * np.hanning(m)
    return thud + 1.5 * burst / (np.std(burst) + 1e-9) * np.std(thud)


def _heartbeat(n, sr, rng, a, onset):
    period = int(60.0 / a["tempo_bpm"] * sr)
    start = int(onset * sr) if onset is not None else int(rng.integers(0, period // 2 + 1))
    out = np.zeros(n)
    for pos in range(start, n - int(0.1 * sr), period):
        place(out, _heart_sound(sr, rng, rng.uniform(40, 55), 0.12), pos)
        dub = pos + int(0.28 * sr * (70 / a["tempo_bpm"]) ** 0.5)
        place(out, 0.7 * _heart_sound(sr, rng, rng.uniform(55, 75), 0.09), dub)
    return out, start / sr, n / sr


EVENT_CLASSES: dict[str, Callable[..., tuple[np.ndarray, float, float]]] = {
    "sine_tone": _sine_tone,
    "buzzer": _buzzer,
    "rising_sweep": _sweep,
    "falling_sweep": _sweep,
    "siren": _siren,
    "beeps": _beeps,
    "white_noise": _noise(0.0),
    "pink_noise": _noise(1.0),
    "brown_noise": _noise(2.0),
    "rain": _rain,
    "wind": _wind,
    "bell": _bell,
    "kick_drum": _hits("kick_drum", _kick, (0.35, 0.6)),
    "snare_drum": _hits("snare_drum", _snare, (0.3, 0.6)),
    "hi_hat": _hits("hi_hat", _hat, (0.15, 0.35)),
    "drum_beat": _drum_beat,
    "clock_ticking": _clock,
    "engine_hum": _engine,
    "bird_chirps": _bird,
    "water_drops": _drops,
    "footsteps": _footsteps,
    "heartbeat": _heartbeat,
}
EVENT_CLASSES.update({name: counted_hits(name) for name in PERCUSSION})  # recorded percussion (issue 16)
EVENT_CLASSES.update({name: sfx(name) for name in GM_SFX})  # GM sound-effect programs
TEXTURES += tuple(name for name, (_, _, _, texture) in GM_SFX.items() if texture)
