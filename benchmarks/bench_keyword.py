"""Throughput of the spoken-word recognizer on CPU, in x real time (goal: >= 500x on the 2-core machine).

    OMP_NUM_THREADS=2 python benchmarks/bench_keyword.py [--clips 64] [--seconds 4] [--batch 16] [--repeats 3]

Prints figures and ratios only (never pass/fail). The clock covers log-mel front end + network (what
``KeywordSpotter.recognize`` does); file reading is excluded. The base tagger runs in the same process as the
baseline. Random weights: speed does not depend on them. On a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import time

import torch

from soundsmith.models.keyword import KeywordSpotter
from soundsmith.models.tagger import AudioTagger
from soundsmith.train.runconfig import load_run_config


def throughput(fn, audio: torch.Tensor, sr: int, batch: int, repeats: int) -> float:
    """Best-of-``repeats`` seconds of audio processed per wall-clock second."""
    with torch.inference_mode():
        fn(audio[:batch])  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(audio), batch):
                fn(audio[i : i + batch])
            best = min(best, time.perf_counter() - start)
    return audio.shape[0] * audio.shape[1] / sr / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--config", default="configs/keyword/base.yaml")
    ap.add_argument("--tagger-config", default="configs/tagger/base.yaml")
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg = load_run_config(args.config).model
    model = KeywordSpotter(cfg).eval()
    sr = cfg.sample_rate
    audio = 0.1 * torch.randn(args.clips, int(args.seconds * sr), generator=torch.Generator().manual_seed(0))
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"recognizer {args.config}: {n_params / 1e6:.2f} M parameters; {args.clips} clips x {args.seconds:g} s,"
    )
    print(f"batch {args.batch}, torch threads {torch.get_num_threads()}")
    kw = throughput(model, audio, sr, args.batch, args.repeats)
    single = throughput(model, audio[: max(8, args.batch)], sr, 1, args.repeats)
    tagger_cfg = load_run_config(args.tagger_config).model
    tagger = AudioTagger(tagger_cfg).eval()
    mel_cfg = tagger_cfg.mel_config()

    def tag(x: torch.Tensor) -> torch.Tensor:
        from soundsmith.audio import mel_spectrogram

        return tagger(mel_spectrogram(x, mel_cfg))

    base = throughput(tag, audio, sr, args.batch, args.repeats)
    print(f"recognizer, batch {args.batch}: {kw:,.0f}x real time")
    print(f"recognizer, one clip at a time: {single:,.0f}x real time")
    print(f"baseline: base tagger (log-mel + CNN), batch {args.batch}: {base:,.0f}x real time")
    print(f"ratio recognizer / tagger: {kw / base:.2f}")


if __name__ == "__main__":
    main()
