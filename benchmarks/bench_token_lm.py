"""Token-LM generation speed with random weights (speed does not depend on them): x real time, time to first chunk.

Builds the base presets (configs/token_lm/base.yaml over configs/codec/base.yaml) with random weights and a
weight-free hashed text encoder of the same width as MiniLM (384; MiniLM itself adds ~10 ms once per prompt), then
generates ``--seconds`` of audio per pattern with and without classifier-free guidance (guidance doubles the batch).

    OMP_NUM_THREADS=2 python benchmarks/bench_token_lm.py [--seconds 4] [--threads 2] [--patterns delay parallel]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from soundsmith.models.codec import Codec
from soundsmith.models.token_lm import TokenLM
from soundsmith.pipelines.token_lm import TokenLMPipeline
from soundsmith.train.runconfig import load_run_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs/token_lm/base.yaml"))
    parser.add_argument("--codec", default=str(ROOT / "configs/codec/base.yaml"))
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patterns", nargs="+", default=["delay", "parallel"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    codec = Codec(load_run_config(args.codec).model).eval()
    base = load_run_config(args.config).model
    print(f"threads={args.threads}, {args.seconds:g} s of audio, random weights, text encoder hashed:384")
    print(
        f"{'pattern':>9} {'guidance':>8} {'steps':>6} {'seconds':>8} {'x real time':>12} {'first chunk s':>14}"
    )
    for pattern in args.patterns:
        cfg = dataclasses.replace(base, pattern=pattern, text_encoder="hashed:384")
        model = TokenLM(cfg, {"codec": codec}).eval()
        pipe = TokenLMPipeline(model)
        for guidance in (1.0, cfg.guidance):
            start = time.perf_counter()
            out = pipe(
                "a bell rings twice",
                duration=args.seconds,
                guidance=guidance,
                seed=0,
                progress=False,
                on_chunk=lambda i, a: None,
            )
            wall = time.perf_counter() - start
            print(
                f"{pattern:>9} {guidance:>8g} {out.meta['lm_steps']:>6} {wall:>8.2f} {args.seconds / wall:>12.2f} "
                f"{out.meta['first_chunk_s']:>14.3f}"
            )


if __name__ == "__main__":
    main()
