"""WaveNet generation speed on one CPU core: numba kernel vs torch cached step vs naive recomputation.

Prints samples/s (summed over the batch) for the base preset's widths at receptive fields ~1,000 and ~4,000,
batch 1 and 16, the speed-up of the fast engine over naive measured in the same run, and MFLOP per sample of
each config next to tensorflow-wavenet's defaults. Figures only; nothing here passes or fails.

    OMP_NUM_THREADS=1 python benchmarks/bench_wavenet.py            # full run (~2-4 min on a loaded 2-core box)
    OMP_NUM_THREADS=1 python benchmarks/bench_wavenet.py --quick    # fewer samples
"""

from __future__ import annotations

import argparse
import time

import numba
import torch

from soundsmith.models.wavenet import WaveNet, WaveNetConfig
from soundsmith.sampling.wavenet import generate_wavenet

# tensorflow-wavenet (ibab) wavenet_params.json: 5 x dilations 1..512, 32 residual/dilation, 512 skip channels
TF_WAVENET = dict(
    residual_channels=32, dilation_channels=32, skip_channels=512, stacks=5, layers_per_stack=10
)


def configs() -> dict[str, WaveNetConfig]:
    return {
        "base rf~1k": WaveNetConfig(layers_per_stack=9),  # 2 x (1..256): RF 1,023
        "base rf~4k": WaveNetConfig(),  # 2 x (1..1024): RF 4,095
        "tf-wavenet defaults": WaveNetConfig(
            **TF_WAVENET
        ),  # RF 5,116 (+31 from its initial conv, not modelled)
    }


def rate(model: WaveNet, method: str, batch: int, n: int, repeats: int) -> tuple[float, float]:
    """(wall, cpu) samples/s summed over the batch, best of ``repeats`` runs.

    On a shared machine the wall clock counts time other processes held the core; single-threaded CPU time
    (``time.process_time``) does not, so it estimates what one dedicated core gives.
    """
    wall, cpu = float("inf"), float("inf")
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        generate_wavenet(model, n, seed=r, batch=batch, method=method)
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return batch * n / wall, batch * n / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    n_fast = 4000 if args.quick else 16000
    n_cached = 100 if args.quick else 300
    n_naive = {1: 20 if args.quick else 60, 16: 4 if args.quick else 10}

    print("config                 RF     MFLOP/sample  weights(MB)")
    for name, cfg in configs().items():
        n_params = sum(p.numel() for p in WaveNet(cfg).parameters())
        print(
            f"{name:<20} {cfg.receptive_field:>6}   {2 * cfg.macs_per_sample() / 1e6:>10.3f}   {4 * n_params / 1e6:>8.2f}"
        )
    print()

    torch.manual_seed(0)
    nan = (float("nan"), float("nan"))
    rows = []
    for name, cfg in configs().items():
        model = WaveNet(cfg).eval()
        generate_wavenet(model, 10, method="numba")  # compile / load the numba cache outside the timing
        batches = (1, 16) if name.startswith("base") else (1,)
        for batch in batches:
            fast = rate(model, "numba", batch, n_fast // batch if batch > 1 else n_fast, repeats=3)
            if not name.startswith("base"):
                rows.append((name, batch, fast, nan, nan))
                continue
            cached = rate(model, "cached", batch, n_cached, repeats=1)
            naive = rate(model, "naive", batch, n_naive[batch], repeats=1)
            rows.append((name, batch, fast, cached, naive))
    print("samples/s summed over the batch; cpu = per CPU-second of this process, wall = per wall second")
    print(
        "config               batch  numba cpu  numba wall  cached cpu  naive cpu  numba/naive cpu (wall)"
        "  numba/cached cpu"
    )
    for name, batch, fast, cached, naive in rows:
        print(
            f"{name:<20} {batch:>5} {fast[1]:>10,.0f} {fast[0]:>11,.0f} {cached[1]:>11,.0f} {naive[1]:>10,.0f}"
            f"  {fast[1] / naive[1]:>8,.0f}x ({fast[0] / naive[0]:,.0f}x)  {fast[1] / cached[1]:>15,.0f}x"
        )
    print(
        f"\nthreads: torch {torch.get_num_threads()}, numba {numba.get_num_threads()}; samples/s summed over the batch"
    )


if __name__ == "__main__":
    main()
