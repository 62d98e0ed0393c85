"""Relative attention: Music Transformer's skewing against the naive O(L^2 D) gather and plain causal attention.

For each length L (one sequence, ``--heads`` heads of ``--head-dim``), runs one forward pass of each mode in a fresh
subprocess and prints its time (best of ``--repeats``) and the extra peak memory of the pass (the process's max RSS
after the pass minus before it). The naive mode gathers an ``[H, L, L, D]`` tensor: it is skipped where that tensor
alone would exceed ``--naive-limit-gb`` (its size is printed instead).

    OMP_NUM_THREADS=2 python benchmarks/bench_relative_attention.py [--lengths 512 1024 2048 4096]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(mode: str, L: int, heads: int, head_dim: int, repeats: int, threads: int) -> dict[str, float]:
    import torch

    from soundsmith.nn.relative_attention import RelativeSelfAttention

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    attn = RelativeSelfAttention(heads * head_dim, heads, max_distance=L, mode=mode).eval()
    x = torch.randn(1, L, heads * head_dim)
    with torch.inference_mode():
        attn(x[:, :8])  # warm-up at a small size
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            attn(x)
            times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"ms": min(times) * 1e3, "extra_mb": (after - before) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--naive-limit-gb", type=float, default=2.0)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "L"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, L = args.child[0], int(args.child[1])
        print(json.dumps(one(mode, L, args.heads, args.head_dim, args.repeats, args.threads)))
        return
    print(
        f"heads={args.heads}, head_dim={args.head_dim}, threads={args.threads}, best of {args.repeats}; forward only"
    )
    print(f"{'L':>6} {'mode':>6} {'ms':>10} {'extra MB':>10} {'x plain (time)':>15}")
    for L in args.lengths:
        plain_ms = None
        for mode in ("none", "skew", "naive"):
            gather_gb = args.heads * L * L * args.head_dim * 4 / 1e9
            if mode == "naive" and gather_gb > args.naive_limit_gb:
                print(
                    f"{L:>6} {mode:>6} {'skipped':>10} {'':>10}   (the gather alone needs {gather_gb:.1f} GB)"
                )
                continue
            cmd = [
                sys.executable,
                __file__,
                "--child",
                mode,
                str(L),
                "--heads",
                str(args.heads),
                "--head-dim",
                str(args.head_dim),
                "--repeats",
                str(args.repeats),
                "--threads",
                str(args.threads),
            ]
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            plain_ms = out["ms"] if mode == "none" else plain_ms
            ratio = out["ms"] / plain_ms if plain_ms else float("nan")
            label = "plain" if mode == "none" else mode
            print(f"{L:>6} {label:>6} {out['ms']:>10.1f} {out['extra_mb']:>10.0f} {ratio:>15.2f}")


if __name__ == "__main__":
    main()
