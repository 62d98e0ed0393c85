"""Throughput of the audio core: batched torch mel vs librosa, Griffin-Lim, resampling, loudness.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_audio.py [--batch 16] [--seconds 10] [--device cpu]
Prints seconds of audio processed per wall second and the torch/librosa ratio. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import librosa
import numpy as np
import torch

from soundsmith.audio import MelConfig, griffin_lim, measure_loudness, mel_spectrogram, resample


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cfg = MelConfig()
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((args.batch, int(cfg.sample_rate * args.seconds)))).astype(np.float32)
    total = args.batch * args.seconds  # seconds of audio
    x = torch.from_numpy(audio).to(args.device)

    t_torch = best_of(lambda: mel_spectrogram(x, cfg))
    t_librosa = best_of(
        lambda: [
            librosa.feature.melspectrogram(
                y=a, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
                fmin=cfg.fmin, fmax=cfg.fmax, power=1.0, pad_mode="reflect",
            )
            for a in audio
        ]
    )  # fmt: skip
    print(
        f"torch threads: {torch.get_num_threads()}, device: {args.device}, batch {args.batch} x {args.seconds} s"
    )
    print(f"mel (torch, batched):   {total / t_torch:10.1f} audio-s/s")
    print(
        f"mel (librosa, looped):  {total / t_librosa:10.1f} audio-s/s   torch/librosa speed ratio {t_librosa / t_torch:.2f}"
    )

    mel = mel_spectrogram(x[:4], cfg)
    t_gl = best_of(lambda: griffin_lim(mel, cfg, n_iter=32), repeats=1)
    print(f"griffin-lim 32 iters:   {4 * args.seconds / t_gl:10.1f} audio-s/s")

    hi = resample(audio[0], cfg.sample_rate, 44100)
    t_rs = best_of(lambda: resample(hi, 44100, cfg.sample_rate))
    print(f"soxr HQ 44.1k->16k:     {args.seconds / t_rs:10.1f} audio-s/s")

    t_lu = best_of(lambda: measure_loudness(audio[0], cfg.sample_rate), repeats=1)
    print(f"loudness (pyloudnorm):  {args.seconds / t_lu:10.1f} audio-s/s")


if __name__ == "__main__":
    main()
