"""ClipDataset throughput, in x real time (seconds of audio delivered per wall second).

Builds a corpus of synthetic WAVs (noise + tones) in a temporary folder, then reads one epoch of
``features=["mel"]`` clips without a feature cache, with a cold cache and with a warm cache, for each
worker count, and prints a table (median of --repeats epochs) and the warm-cache speed-up. Also a no-feature row (decode + resample only).

    OMP_NUM_THREADS=1 python benchmarks/bench_data.py [--clips 200] [--seconds 4] [--file-rate 22050]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from soundsmith.data import ClipDataset, DataConfig, ManifestRow, clip_loader, write_manifest


def build_corpus(folder: Path, n_clips: int, seconds: float, sr: int, seed: int = 0) -> Path:
    """``n_clips`` WAVs of ``seconds`` s at ``sr`` Hz (pink-ish noise + two tones) and their manifest."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    for i in range(n_clips):
        f1, f2 = rng.uniform(100, 2000, size=2)
        noise = np.convolve(rng.standard_normal(t.size), np.ones(8) / 8, mode="same")
        x = 0.2 * np.sin(2 * np.pi * f1 * t) + 0.1 * np.sin(2 * np.pi * f2 * t) + 0.05 * noise
        name = f"clip_{i:04d}.wav"
        sf.write(str(folder / name), x.astype(np.float32), sr, subtype="PCM_16")
        rows.append(
            ManifestRow(name, [f"two tones {f1:.0f} and {f2:.0f} Hz"], [f"class{i % 10}"], seconds, sr)
        )
    return write_manifest(folder / "manifest.jsonl", rows)


def epoch_xrt(manifest: Path, cfg: DataConfig, workers: int, batch_size: int) -> float:
    """x real time of one shuffled epoch (worker start-up included)."""
    ds = ClipDataset(manifest, cfg, "train")
    start = time.perf_counter()
    n = 0
    for batch in clip_loader(ds, batch_size=batch_size, shuffle=True, epoch=0, num_workers=workers):
        n += batch["audio"].shape[0]
    wall = time.perf_counter() - start
    return n * cfg.clip_seconds / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each synthetic file")
    ap.add_argument(
        "--file-rate", type=int, default=22050, help="sample rate of the files (resampled to 16 kHz)"
    )
    ap.add_argument("--clip-seconds", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--repeats", type=int, default=3, help="epochs per figure; the median is printed")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        manifest = build_corpus(tmp, args.clips, args.seconds, args.file_rate)
        print(
            f"corpus: {args.clips} clips x {args.seconds} s at {args.file_rate} Hz, built in "
            f"{time.perf_counter() - t0:.1f} s; crops of {args.clip_seconds} s at 16 kHz, default MelConfig"
        )
        base = dict(sample_rate=16000, clip_seconds=args.clip_seconds)
        results: dict[tuple[str, int], float] = {}
        epoch_xrt(manifest, DataConfig(**base, features=["mel"]), 0, args.batch_size)  # warm-up, untimed

        def median(mode: str, w: int, make_cfg) -> None:
            runs = [epoch_xrt(manifest, make_cfg(r), w, args.batch_size) for r in range(args.repeats)]
            results[(mode, w)] = float(np.median(runs))

        for w in args.workers:
            warm_dir = str(tmp / f"warm_w{w}")
            epoch_xrt(manifest, DataConfig(**base, features=["mel"], cache_dir=warm_dir), 0, args.batch_size)
            median("audio only (no features)", w, lambda r: DataConfig(**base))
            median("mel, no cache", w, lambda r: DataConfig(**base, features=["mel"]))
            median(
                "mel, cold cache",
                w,
                lambda r, w=w: DataConfig(**base, features=["mel"], cache_dir=str(tmp / f"cold_w{w}_{r}")),
            )
            median(
                "mel, warm cache", w, lambda r, d=warm_dir: DataConfig(**base, features=["mel"], cache_dir=d)
            )

        modes = list(dict.fromkeys(m for m, _ in results))
        header = f"{'mode':<28}" + "".join(f"{f'workers={w}':>14}" for w in args.workers)
        print(header)
        print("-" * len(header))
        for m in modes:
            print(f"{m:<28}" + "".join(f"{results[(m, w)]:>12.1f} x" for w in args.workers))
        for w in args.workers:
            speedup = results[("mel, warm cache", w)] / results[("mel, no cache", w)]
            cold = results[("mel, cold cache", w)] / results[("mel, no cache", w)]
            print(f"workers={w}: warm cache / no cache = {speedup:.2f}x; cold cache / no cache = {cold:.2f}x")


if __name__ == "__main__":
    main()
