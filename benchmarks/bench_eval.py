"""Embedding throughput of the base tagger on CPU, in x real time, float32 vs bf16 autocast.

    OMP_NUM_THREADS=2 python benchmarks/bench_eval.py [--clips 64] [--seconds 4] [--batch 16] [--repeats 3]

Prints figures and ratios only (never pass/fail). The clock covers what `TaggerEmbedder` does per batch:
log-mel front end + CNN; file reading and hashing are excluded. Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from soundsmith.eval.embedders import TaggerEmbedder
from soundsmith.eval.frechet import frechet_distance
from soundsmith.models.tagger import AudioTagger
from soundsmith.train.runconfig import load_run_config


def throughput(embedder: TaggerEmbedder, audio: torch.Tensor, batch: int, repeats: int) -> float:
    """Best-of-`repeats` seconds of audio embedded per wall-clock second."""
    sr = embedder.sample_rate
    embedder.embed_and_logits(audio[:batch], sr)  # warm-up (allocations, oneDNN kernels)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(audio), batch):
            embedder.embed_and_logits(audio[i : i + batch], sr)
        best = min(best, time.perf_counter() - start)
    return audio.shape[0] * audio.shape[1] / sr / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--config", default="configs/tagger/base.yaml")
    args = ap.parse_args()

    cfg = load_run_config(args.config).model
    torch.manual_seed(0)
    model = AudioTagger(cfg).eval()
    n_params = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(args.clips, int(args.seconds * cfg.sample_rate), generator=g)
    print(f"tagger {args.config}: {n_params / 1e6:.2f} M parameters, channels {cfg.channels}")
    print(
        f"{args.clips} clips x {args.seconds:g} s, batch {args.batch}, torch threads {torch.get_num_threads()}"
    )

    fp32 = throughput(TaggerEmbedder(model, bf16=False), audio, args.batch, args.repeats)
    bf16 = throughput(TaggerEmbedder(model, bf16=True), audio, args.batch, args.repeats)
    e32, _ = TaggerEmbedder(model).embed_and_logits(audio[: args.batch], cfg.sample_rate)
    e16, _ = TaggerEmbedder(model, bf16=True).embed_and_logits(audio[: args.batch], cfg.sample_rate)
    rel = float((e16 - e32).norm() / e32.norm().clamp(min=1e-12))
    print(f"float32        : {fp32:8.1f} x real time")
    print(
        f"bf16 autocast  : {bf16:8.1f} x real time  (ratio bf16/fp32 {bf16 / fp32:.2f}, rel. emb. diff {rel:.2e})"
    )

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2000, cfg.embed_dim)), rng.normal(size=(2000, cfg.embed_dim))
    start = time.perf_counter()
    frechet_distance(x, y)
    print(
        f"frechet_distance 2000 x {cfg.embed_dim} vs 2000 x {cfg.embed_dim}: {time.perf_counter() - start:.3f} s"
    )


if __name__ == "__main__":
    main()
