#!/usr/bin/env bash
# Run every benchmark in sequence (figures in docs/benchmarks.md); outputs go to work/bench_*.txt.
set -x
cd "$(dirname "$0")/.."; . .venv/bin/activate; mkdir -p work
OMP_NUM_THREADS=1 python benchmarks/bench_wavenet.py > work/bench_wavenet.txt 2>&1
OMP_NUM_THREADS=1 python benchmarks/bench_synth.py > work/bench_synth.txt 2>&1
rm -rf /tmp/c5h; /usr/bin/time -v soundsmith data synth --out /tmp/c5h --hours 5 --seed 0 --workers 2 > work/bench_synth5h.txt 2>&1
rm -rf /tmp/c5h
OMP_NUM_THREADS=2 python benchmarks/bench_eval.py > work/bench_eval.txt 2>&1
OMP_NUM_THREADS=1 python benchmarks/bench_data.py > work/bench_data.txt 2>&1
OMP_NUM_THREADS=1 python benchmarks/bench_generate_startup.py > work/bench_startup.txt 2>&1
OMP_NUM_THREADS=2 python benchmarks/bench_latent_diffusion.py > work/bench_latent_diffusion.txt 2>&1
echo "all benchmarks done: work/bench_*.txt"
