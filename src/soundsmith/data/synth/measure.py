"""Realism measurements of rendered classes: spectral flatness, harmonic ratio, periodicity, centroid.

``realism_features(audio, sr)`` summarises one clip over its active frames (within 40 dB of the loudest):

- ``flatness``: mean spectral flatness (librosa; 1 = white noise, ~0 = a few pure tones);
- ``harmonic_ratio``: energy of librosa's HPSS harmonic part / (harmonic + percussive);
- ``periodicity``: median over active frames of the peak normalised autocorrelation at lags of 1.25-20 ms
  (50-800 Hz) past its first zero crossing (so low-pass noise does not count): ~1 for a steady pitched
  tone, ~0 for noise;
- ``centroid_hz``: mean spectral centroid.

``python -m soundsmith.data.synth.measure`` prints the table of docs/corpus.md (median over a few clips per
class, with the reference figures of real recordings where we have them); ``--spectrograms docs/img``
draws the TimGM6mb vs FluidR3 pictures.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

N_FFT, HOP = 1024, 256


def _active(power_db: np.ndarray, floor_db: float = 40.0) -> np.ndarray:
    return power_db > power_db.max() - floor_db


def realism_features(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Flatness, harmonic ratio, periodicity and centroid of ``audio [T]`` (see the module docstring)."""
    import librosa

    y = np.asarray(audio, dtype=np.float32)
    spec = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2  # [F, frames]
    frame_db = 10 * np.log10(spec.sum(axis=0) + 1e-20)
    act = _active(frame_db)
    flat = librosa.feature.spectral_flatness(S=np.sqrt(spec), power=2.0)[0]
    cent = librosa.feature.spectral_centroid(S=np.sqrt(spec), sr=sample_rate)[0]
    h, p = librosa.effects.hpss(y)
    harm = float(np.sum(h.astype(np.float64) ** 2) / (np.sum(h**2) + np.sum(p**2) + 1e-20))
    frames = librosa.util.frame(np.pad(y, (0, N_FFT)), frame_length=N_FFT, hop_length=HOP)[:, : act.size]
    lo, hi = int(sample_rate / 800), int(sample_rate / 50)
    periods = []
    for i in np.flatnonzero(act[: frames.shape[1]]):
        x = frames[:, i] - frames[:, i].mean()
        ac = np.correlate(x, x, mode="full")[N_FFT - 1 :]
        if ac[0] <= 1e-12:
            continue
        neg = np.flatnonzero(ac[:hi] < 0)  # skip the main lobe: low-pass noise is not periodic
        start = max(lo, int(neg[0]) if neg.size else hi)
        if start >= hi:
            periods.append(0.0)
            continue
        lags = np.arange(start, hi)
        periods.append(float(np.max(ac[start:hi] / ac[0] * N_FFT / (N_FFT - lags))))
    return {
        "flatness": float(np.mean(flat[act])),
        "harmonic_ratio": harm,
        "periodicity": float(np.clip(np.median(periods), 0.0, 1.0)) if periods else 0.0,
        "centroid_hz": float(np.mean(cent[act])),
    }


# What a real recording of each class shows, where no real recording is at hand here (typical values for
# 16 kHz recordings; flatness from Dubnov 2004 / MPEG-7 ASF usage, the rest from the signal's physics).
REAL_TYPICAL: dict[str, str] = {
    "rain": "broadband patter: flatness 0.2-0.5, harmonic ratio ~0.5 (as noise), periodicity < 0.2, centroid 2-5 kHz",
    "wind": "broadband rustle (trees) or low roar: flatness 0.05-0.3, periodicity < 0.2, centroid 0.5-3 kHz",
    "engine_hum": "firing-rate harmonics (25-60 Hz) + mechanical noise: flatness < 0.05, centroid 100-600 Hz",
    "heartbeat": "20-150 Hz thuds, S1 ~100 ms, S2 shorter: percussive (harmonic ratio < 0.5), centroid < 200 Hz",
    "footsteps": "broadband transients (heel/toe): flatness 0.01-0.2, harmonic ratio < 0.3, centroid 0.5-3 kHz",
    "clock_ticking": "short clicks with a resonance: flatness 0.05-0.3, periodicity < 0.5, centroid 2-5 kHz",
    "water_drops": "damped rising chirps (bubble resonance, 0.5-3 kHz): low flatness, percussive",
    "bird_chirps": "FM whistles 2-8 kHz: flatness < 0.05, harmonic ratio low for fast sweeps",
    "white_noise": "flat spectrum: flatness ~0.55 (STFT), periodicity ~0.1",
    "pink_noise": "1/f spectrum: flatness ~0.15",
    "brown_noise": "1/f^2 rumble: flatness < 0.01, centroid < 600 Hz",
}
# class -> real recordings measured here (installed Debian packages): (description, [paths or GM program])
REAL_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "bell": ("freedesktop bell.oga", ("/usr/share/sounds/freedesktop/stereo/bell.oga",)),
    "telephone_ring": (
        "freedesktop phone-incoming-call.oga",
        ("/usr/share/sounds/freedesktop/stereo/phone-incoming-call.oga",),
    ),
}


OPENSFX_CAT = "/usr/share/games/openttd/baseset/opensfx/opensfx.cat"  # Debian openttd-opensfx (CC0/CC-BY)
# class -> OpenSFX entries (index: description in the catalog) recorded from the real thing
OPENSFX_REFERENCES: dict[str, tuple[int, ...]] = {
    "wind": (52, 57),  # "Wind", "Heavy wind" (wind1.wav by Anton)
    "bird_chirps": (66, 72),  # "Tropical: Bird (1)", "(2)"
    "engine_hum": (25, 27, 28),  # truck / modern bus / old bus starting
    "applause": (29,),  # "Applause" (an audience of ~850)
    "helicopter": (24,),  # "Helicopter"
}


def opensfx_sound(index: int) -> tuple[np.ndarray, int, str]:
    """Entry ``index`` of OpenTTD's OpenSFX catalog (``opensfx.cat``: u32 offset/size table, then per entry a
    length-prefixed description and a RIFF WAV): ``(mono float32 [T], sample rate, description)``."""
    import io
    import struct

    import soundfile as sf

    with open(OPENSFX_CAT, "rb") as f:
        data = f.read()
    offset, size = struct.unpack_from("<II", data, 8 * index)
    offset &= 0x7FFFFFFF
    length = data[offset]
    name = data[offset + 1 : offset + 1 + length].rstrip(b"\0").decode("latin-1")
    wav = data[offset + 1 + length : offset + size]
    audio, sr = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(sr), name


def _hydrogen_reference(cls: str, sample_rate: int, kits: int = 6) -> list[dict[str, float]]:
    from soundsmith.data.synth.sampled import _sample, hydrogen_index

    feats = []
    for _kit, _name, layers in hydrogen_index().get(cls, [])[:kits]:
        x = np.zeros(int(1.5 * sample_rate))
        hit = _sample(layers[-1][2], sample_rate)[: x.shape[0]]
        x[: hit.shape[0]] = hit
        feats.append(realism_features(x.astype(np.float32), sample_rate))
    return feats


def measure_references(sample_rate: int = 16000) -> dict[str, tuple[str, dict[str, float]]]:
    """class -> (what was measured, median features) of real recordings installed here (may be empty)."""
    import os

    import soundfile as sf

    from soundsmith.audio import resample

    out: dict[str, tuple[str, dict[str, float]]] = {}
    for cls in ("kick_drum", "snare_drum", "hi_hat", "tom_drum", "crash_cymbal"):
        feats = _hydrogen_reference(cls, sample_rate)
        if feats:
            out[cls] = (
                f"Hydrogen kits ({len(feats)} samples)",
                {k: float(np.median([f[k] for f in feats])) for k in feats[0]},
            )
    if os.path.isfile(OPENSFX_CAT):
        for cls, entries in OPENSFX_REFERENCES.items():
            feats = []
            for index in entries:
                audio, sr, _ = opensfx_sound(index)
                feats.append(realism_features(np.asarray(resample(audio, sr, sample_rate)), sample_rate))
            out[cls] = (
                f"OpenSFX recordings ({len(feats)})",
                {k: float(np.median([f[k] for f in feats])) for k in feats[0]},
            )
    for cls, (what, paths) in REAL_FILES.items():
        for path in paths:
            if os.path.isfile(path):
                data, sr = sf.read(path, dtype="float32", always_2d=True)  # .oga: Ogg Vorbis
                audio = data.mean(axis=1)
                out[cls] = (what, realism_features(np.asarray(resample(audio, sr, sample_rate)), sample_rate))
    return out


def measure_classes(clips: int = 4, sample_rate: int = 16000, duration: float = 3.0) -> list[dict[str, Any]]:
    """Median features of ``clips`` renders of every event class and instrument; one dict per class."""
    from soundsmith.data.synth.events import EVENT_CLASSES, render_event
    from soundsmith.data.synth.instruments import INSTRUMENTS, render_instrument

    rows = []
    jobs = [("events", name, {}) for name in EVENT_CLASSES if name != "wind"]
    jobs[10:10] = [("events", "wind", {"wind_type": kind}) for kind in ("rustle", "howl")]
    jobs += [("instruments", name, {}) for name in INSTRUMENTS]
    for family, name, given in jobs:
        feats = []
        for i in range(clips):
            rng = np.random.default_rng([7, i])
            if family == "events":  # the synthesized variant of classes that also have recorded sources
                if name in ("kick_drum", "snare_drum", "hi_hat", "drum_beat"):
                    given = {"source": "dsp"}
                audio, _ = render_event(name, duration=duration, sample_rate=sample_rate, rng=rng, **given)
            else:
                audio, _ = render_instrument(name, duration=duration, sample_rate=sample_rate, rng=rng)
            feats.append(realism_features(audio, sample_rate))
        label = f"{name} ({given['wind_type']})" if "wind_type" in given else name
        row: dict[str, Any] = {"family": family, "class": label}
        row.update({k: float(np.median([f[k] for f in feats])) for k in feats[0]})
        rows.append(row)
    return rows


def spectrogram_pair(out_dir: str, sample_rate: int = 16000) -> list[str]:
    """PNG log-mel spectrograms of the same phrases through TimGM6mb and FluidR3_GM (a listening note).

    Writes ``out_dir/soundfont_<instrument>.png`` (two panels each) and returns the paths. Needs matplotlib
    and FluidR3 (Debian ``fluid-soundfont-gm``).
    """
    import os

    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from soundsmith.data.synth.instruments import render_instrument

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    phrases = (
        ("flute", "short_melody", "A4"),
        ("acoustic_guitar", "arpeggio", "E3"),
        ("choir", "chord", "C4"),
    )
    for name, phrase, note in phrases:
        fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.4), sharey=True, dpi=64)
        for ax, font in zip(axes, ("TimGM6mb", "FluidR3_GM")):
            audio, _ = render_instrument(
                name, phrase=phrase, note=note, dynamics="loud", tempo_bpm=150, tempo="fast", duration=3.0,
                sample_rate=sample_rate, soundfont=font, rng=np.random.default_rng(0), mode="major",
            )  # fmt: skip
            mel = librosa.feature.melspectrogram(
                y=audio, sr=sample_rate, n_fft=1024, hop_length=256, n_mels=80
            )
            ax.imshow(
                librosa.power_to_db(mel, ref=np.max, top_db=80), origin="lower", aspect="auto", cmap="magma"
            )
            ax.set_title(f"{name} {phrase} {note}: {font}", fontsize=8)
            ax.set_xlabel("frame (16 ms)", fontsize=7)
            ax.tick_params(labelsize=6)
        axes[0].set_ylabel("mel bin", fontsize=7)
        fig.tight_layout()
        path = os.path.join(out_dir, f"soundfont_{name}.png")
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--spectrograms", metavar="DIR", help="write TimGM6mb vs FluidR3 PNGs here instead")
    args = parser.parse_args()
    if args.spectrograms:
        for path in spectrogram_pair(args.spectrograms):
            print(f"wrote {path}")
        return
    refs = measure_references()
    print("| class | flatness | harmonic ratio | periodicity | centroid Hz | a real recording |")
    print("|---|---|---|---|---|---|")
    for r in measure_classes(args.clips):
        name = r["class"].split(" ")[0]
        real = REAL_TYPICAL.get(name, "")
        if name in refs:
            what, f = refs[name]
            real = (
                f"{what}: {f['flatness']:.3f} / {f['harmonic_ratio']:.2f} / {f['periodicity']:.2f} / "
                f"{f['centroid_hz']:.0f}"
            )
        print(
            f"| {r['class']} | {r['flatness']:.3f} | {r['harmonic_ratio']:.2f} | {r['periodicity']:.2f} "
            f"| {r['centroid_hz']:.0f} | {real} |"
        )


if __name__ == "__main__":
    main()
