"""Codec speed: encode and decode x real time of a preset (random weights: speed does not depend on them).

Prints seconds of audio per second of compute (best of ``--repeats``) for encode (audio -> codes) and decode
(codes -> audio), and the bitrate at each number of codebooks. Target (issue 14): >= 100x each way on 2 cores.
Baseline, run in the same process: the same preset with SEANet's encoder and decoder (the design before stop 27);
the ratios say how much faster or slower the preset is than it.

    OMP_NUM_THREADS=2 python benchmarks/bench_codec.py [--config configs/codec/base.yaml] [--seconds 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from soundsmith.models.codec import Codec
from soundsmith.train.runconfig import load_run_config

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs/codec/base.yaml"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_run_config(args.config).model
    n = int(args.seconds * cfg.sample_rate)
    audio = 0.1 * torch.randn(1, n)

    def speeds(config) -> tuple[float, float, float]:
        torch.manual_seed(0)
        codec = Codec(config).eval()
        with torch.inference_mode():
            codes = codec.encode(audio)
            t_enc = best_of(lambda: codec.encode(audio), args.repeats)
            t_dec = best_of(lambda: codec.decode(codes, n), args.repeats)
        return t_enc, t_dec, sum(p.numel() for p in codec.parameters()) / 1e6

    t_enc, t_dec, params = speeds(cfg)
    b_enc, b_dec, b_params = speeds(dataclasses.replace(cfg, encoder="seanet", decoder="seanet"))
    print(
        f"codec {args.config}: {params:.2f} M parameters, hop {cfg.hop_length}, {cfg.frame_rate:g} frames/s "
        f"(encoder {cfg.encoder}, decoder {cfg.decoder}); baseline SEANet pair {b_params:.2f} M"
    )
    print(f"threads={args.threads}, {args.seconds:g} s of audio, best of {args.repeats}")
    for what, t, b in (("encode", t_enc, b_enc), ("decode", t_dec, b_dec)):
        print(
            f"{what}: {args.seconds / t:8.1f} x real time ({t * 1e3:.1f} ms); SEANet {args.seconds / b:.1f}x; "
            f"ratio {b / t:.2f}"
        )
    print(
        "bitrate: "
        + ", ".join(f"n_q={q}: {cfg.bitrate(q) / 1000:.2f} kbit/s" for q in (1, 2, 4, cfg.num_quantizers))
    )


if __name__ == "__main__":
    main()
