"""Speed of the built-in synthetic corpus (prints figures; never asserts on time).

1. Generation speed per family: x real time on one core (4 s clips, single process, spec drawing + rendering,
   no file writing) after the one-time loads: first pass (memos filling) and steady state, and with the
   recording chain (reverb/EQ/noise/codec, issue 16) on every clip.
   Goal: >= 100x real time. The sources found here (SoundFont, Hydrogen kits, piper) are printed first.
2. Wall time of a small corpus with 2 workers (files + manifest), and the 5-hour figure extrapolated from it.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_synth.py [--clips-per-family 40] [--hours 0.25]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from soundsmith.data.synth.corpus import FAMILY_WEIGHTS, draw_clip_spec, render_clip_spec, synthesize_corpus
from soundsmith.data.synth.instruments import _synth, default_soundfont
from soundsmith.data.synth.sampled import hydrogen_index, hydrogen_kits
from soundsmith.data.synth.speech import _piper, piper_available


def preload(sample_rate: int) -> None:
    """Load what every worker process loads once (SoundFont, piper's ONNX session, Hydrogen's kit index)."""
    _synth(sample_rate, default_soundfont())
    hydrogen_index()
    if piper_available():
        _piper()


def family_speed(
    family: str, clips: int, duration: float, sample_rate: int, augment_rate: float = 0.0
) -> tuple[float, float]:
    """x real time of rendering ``clips`` clips of ``family``: (first pass, second pass of the same clips).

    The first pass fills the per-process memos (spoken words, Hydrogen samples, SoundFont level calibration);
    the second shows the steady state of a long corpus, where those are paid once per process.
    """
    specs = [draw_clip_spec(i, 0, (family,), duration, augment_rate) for i in range(clips)]
    speeds = []
    for _ in range(2):
        start = time.perf_counter()
        for spec in specs:
            render_clip_spec(spec, duration, sample_rate)
        speeds.append(clips * duration / (time.perf_counter() - start))
    return speeds[0], speeds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-family", type=int, default=40)
    parser.add_argument("--hours", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    duration, sr = 4.0, 16000
    print(
        f"sources: SoundFont {default_soundfont()}, Hydrogen kits {len(hydrogen_kits('kick_drum'))}, "
        f"piper {'yes' if piper_available() else 'no'}"
    )
    print(f"generation speed, 4 s clips at {sr} Hz, one process ({args.clips_per_family} clips each):")
    start = time.perf_counter()
    preload(sr)
    print(f"  one-time loads per process: {time.perf_counter() - start:.1f} s")
    print(
        f"  {'family':12s} {'first':>8s} {'steady':>8s} {'+chain':>8s}  (x real time; +chain: steady, every clip)"
    )
    for family in FAMILY_WEIGHTS:
        first, steady = family_speed(family, args.clips_per_family, duration, sr)
        _, chained = family_speed(family, args.clips_per_family, duration, sr, augment_rate=1.0)
        print(f"  {family:12s} {first:7.0f}x {steady:7.0f}x {chained:7.0f}x")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = synthesize_corpus(tmp, hours=args.hours, workers=args.workers, progress=False)
        wall = time.perf_counter() - start
        clips = sum(1 for _ in open(path))
    print(
        f"corpus of {args.hours} h ({clips} clips, {args.workers} workers, WAV + manifest): {wall:.1f} s wall"
    )
    print(f"  -> {args.hours * 3600 / wall:.0f}x real time overall")
    print(f"EXTRAPOLATED 5 h corpus with {args.workers} workers: {wall * 5.0 / args.hours / 60:.1f} min")


if __name__ == "__main__":
    main()
