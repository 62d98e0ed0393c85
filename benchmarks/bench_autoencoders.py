"""Speed of the vocoder and the mel VAE against Griffin-Lim (64 iterations), measured in the same process.

Prints x real time (seconds of audio per second of compute; best of ``--repeats``) for float32 and bf16
autocast, and the ratio against Griffin-Lim on the same mel. Speed does not depend on the weights: the shipped
models are used when present, else the base presets with random weights.

    OMP_NUM_THREADS=2 python benchmarks/bench_autoencoders.py [--seconds 10] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import torch

from soundsmith.audio import griffin_lim, mel_spectrogram
from soundsmith.models.vae import MelVAE, VAEConfig
from soundsmith.models.vocoder import Vocoder, VocoderConfig
from soundsmith.train.runconfig import read_yaml

ROOT = Path(__file__).resolve().parents[1]


def _model(name: str, config_cls: type, model_cls: type) -> tuple[torch.nn.Module, str]:
    from soundsmith.models.registry import load_model

    if (ROOT / "models" / name / "config.json").is_file():
        return load_model(ROOT / "models" / name).eval(), f"models/{name}"
    torch.manual_seed(0)
    cfg = config_cls(**read_yaml(ROOT / "configs" / name / "base.yaml")["model"])
    return model_cls(cfg).eval(), f"configs/{name}/base.yaml (random weights)"


def best_time(fn: Callable[[], object], repeats: int, bf16: bool = False) -> float:
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return min(times)


def gflop_per_audio_second(fn: Callable[[], object], seconds: float) -> float:
    """Counted FLOPs (matmuls and convolutions) per second of audio: a load-independent cost figure."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    vocoder, voc_src = _model("vocoder", VocoderConfig, Vocoder)
    vae, vae_src = _model("vae", VAEConfig, MelVAE)
    mel_cfg = vocoder.mel_config()
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(1, int(args.seconds * mel_cfg.sample_rate), generator=g)
    mel = mel_spectrogram(audio, mel_cfg)  # [1, M, frames]
    secs = args.seconds
    n_voc = sum(p.numel() for p in vocoder.parameters()) / 1e6
    n_vae = sum(p.numel() for p in vae.parameters()) / 1e6
    print(
        f"{secs:g} s clip, {mel.shape[-1]} mel frames, torch threads {args.threads}, best of {args.repeats}"
    )
    print(f"vocoder: {voc_src}, {n_voc:.2f} M parameters; VAE: {vae_src}, {n_vae:.2f} M parameters")

    print(
        f"counted GFLOP per second of audio: vocoder {gflop_per_audio_second(lambda: vocoder(mel), secs):.2f}, "
        f"VAE encode + decode {gflop_per_audio_second(lambda: vae(mel), secs):.2f}"
    )
    gl = secs / best_time(lambda: griffin_lim(mel, mel_cfg, n_iter=64), max(1, args.repeats // 2))
    print(f"Griffin-Lim 64 iterations : {gl:8.1f} x real time")
    for label, bf16 in (("float32", False), ("bf16 autocast", True)):
        voc = secs / best_time(lambda: vocoder(mel), args.repeats, bf16)
        print(f"vocoder {label:<17s} : {voc:8.1f} x real time   ({voc / gl:6.1f} x Griffin-Lim)")
    for label, bf16 in (("float32", False), ("bf16 autocast", True)):
        enc = secs / best_time(lambda: vae.encode(mel), args.repeats, bf16)
        both = secs / best_time(lambda: vae(mel), args.repeats, bf16)
        print(f"VAE {label:<13s} encode : {enc:8.1f} x real time;  encode + decode {both:8.1f} x real time")
    chain = secs / best_time(lambda: vocoder(vae(mel)), args.repeats)
    print(f"VAE + vocoder float32     : {chain:8.1f} x real time   ({chain / gl:6.1f} x Griffin-Lim)")


if __name__ == "__main__":
    main()
