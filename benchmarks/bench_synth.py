"""Speed of the built-in synthetic corpus (prints figures; never asserts on time).

1. Generation speed per family: x real time on one core (4 s clips, single process, spec drawing + rendering,
   no file writing). Goal: >= 100x real time.
2. Wall time of a small corpus with 2 workers (files + manifest), and the 5-hour figure extrapolated from it.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_synth.py [--clips-per-family 40] [--hours 0.25]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from soundsmith.data.synth.corpus import FAMILY_WEIGHTS, draw_clip_spec, render_clip_spec, synthesize_corpus


def family_speed(family: str, clips: int, duration: float, sample_rate: int) -> float:
    specs = [draw_clip_spec(i, 0, (family,), duration) for i in range(clips)]
    render_clip_spec(specs[0], duration, sample_rate)  # warm-up: SoundFont / espeak load, filter designs
    start = time.perf_counter()
    for spec in specs:
        render_clip_spec(spec, duration, sample_rate)
    return clips * duration / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-family", type=int, default=40)
    parser.add_argument("--hours", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    duration, sr = 4.0, 16000
    print(f"generation speed, 4 s clips at {sr} Hz, one process ({args.clips_per_family} clips each):")
    for family in FAMILY_WEIGHTS:
        print(f"  {family:12s} {family_speed(family, args.clips_per_family, duration, sr):8.0f}x real time")
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
