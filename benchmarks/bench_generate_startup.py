"""First-call latency of ``soundsmith generate`` in a fresh process: numba kernels compiled vs loaded from disk.

Builds a tiny label-conditioned WaveNet (the shape of configs/wavenet/tiny.yaml), then times fresh
``soundsmith generate "a bell" --duration 0.5`` processes: with an empty numba cache directory each time (every
process compiles the kernels: what every generation paid without an on-disk cache) and with a warm one (the
kernels load from disk). Also times the imports alone (torch, numba, the sampler: the floor of a fresh process). Figures only; nothing passes or fails.

    OMP_NUM_THREADS=1 python benchmarks/bench_generate_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from soundsmith.models.registry import save_model
from soundsmith.models.wavenet import WaveNet, WaveNetConfig

SOUNDSMITH = str(Path(sys.executable).with_name("soundsmith"))


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    try:
        torch.manual_seed(0)
        cfg = WaveNetConfig(
            residual_channels=8, dilation_channels=8, skip_channels=16, stacks=1, layers_per_stack=5,
            gc_channels=8, gc_cardinality=2, labels=["bell", "rain"],
        )  # fmt: skip
        save_model(WaveNet(cfg).eval(), work / "model")
        gen = [SOUNDSMITH, "generate", "a bell", "--model", str(work / "model"), "--out", str(work / "x.wav"),
               "--duration", "0.5"]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        floor = [sys.executable, "-c", "import soundsmith.sampling.wavenet"]
        imports = [timed(floor, env) for _ in range(args.repeats)]
        cold = []
        for i in range(args.repeats):
            cold.append(timed(gen, dict(env, NUMBA_CACHE_DIR=str(work / f"empty{i}"))))
        warm_env = dict(env, NUMBA_CACHE_DIR=str(work / "warm"))
        timed(gen, warm_env)  # fills the cache
        warm = [timed(gen, warm_env) for _ in range(args.repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    rows = [
        ("imports alone (torch, numba, sampler)", imports),
        ("generate, kernels compiled", cold),
        ("generate, kernels loaded from disk", warm),
    ]
    for label, times in rows:
        print(f"{label:40s} median {med(times):6.2f} s  ({', '.join(f'{t:.2f}' for t in times)})")
    print(
        f"compile cost removed per fresh process: {med(cold) - med(warm):.2f} s (x{med(cold) / med(warm):.2f})"
    )


if __name__ == "__main__":
    main()
