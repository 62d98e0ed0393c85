"""Speed of the vocoder and the mel VAE against Griffin-Lim (64 iterations), measured in the same process.

Prints x real time (seconds of audio per second of compute; best of ``--repeats``) for float32 and bf16
autocast, and the ratio against Griffin-Lim on the same mel. Speed does not depend on the weights: the shipped
models are used when present, else the base presets with random weights. The HiFi-GAN generators of tracker
issue 10 (``configs/vocoder/hifigan.yaml``, V2-like, and ``hifigan_v1.yaml``, V1-like; random weights) get rows of
their own, with their ratio to the (shipped) Vocos vocoder in the same precision; so does the same vocoder with the
other phase head (absolute or accumulated, docs/autoencoders.md, "The frame-rate buzz").

    OMP_NUM_THREADS=2 python benchmarks/bench_autoencoders.py [--seconds 10] [--threads 2] [--repeats 5]
        [--no-vae] [--no-hifigan]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path

import torch

from soundsmith.audio import griffin_lim, mel_spectrogram
from soundsmith.models.vae import MelVAE, VAEConfig
from soundsmith.models.vocoder import Vocoder, VocoderConfig
from soundsmith.pipelines.reconstruct import DEFAULT_REFINE
from soundsmith.train.runconfig import read_yaml

ROOT = Path(__file__).resolve().parents[1]


def _model(name: str, config_cls: type, model_cls: type) -> tuple[torch.nn.Module, str]:
    from soundsmith.models.registry import load_model

    if (ROOT / "models" / name / "config.json").is_file():
        return load_model(ROOT / "models" / name).eval(), f"models/{name}"
    torch.manual_seed(0)
    cfg = config_cls(**read_yaml(ROOT / "configs" / name / "base.yaml")["model"])
    return model_cls(cfg).eval(), f"configs/{name}/base.yaml (random weights)"


def _preset(name: str) -> tuple[torch.nn.Module, str]:
    """A vocoder preset of configs/vocoder/ with random weights."""
    torch.manual_seed(0)
    cfg = VocoderConfig(**read_yaml(ROOT / "configs" / "vocoder" / f"{name}.yaml")["model"])
    return Vocoder(cfg).eval(), f"configs/vocoder/{name}.yaml (random weights)"


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
    parser.add_argument("--no-vae", action="store_true", help="skip the VAE rows")
    parser.add_argument("--no-hifigan", action="store_true", help="skip the HiFi-GAN rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    vocoder, voc_src = _model("vocoder", VocoderConfig, Vocoder)
    mel_cfg = vocoder.mel_config()
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(1, int(args.seconds * mel_cfg.sample_rate), generator=g)
    mel = mel_spectrogram(audio, mel_cfg)  # [1, M, frames]
    secs = args.seconds
    n_voc = sum(p.numel() for p in vocoder.parameters()) / 1e6
    print(
        f"{secs:g} s clip, {mel.shape[-1]} mel frames, torch threads {args.threads}, best of {args.repeats}"
    )
    print(f"vocoder: {voc_src}, {n_voc:.2f} M parameters")
    print(
        f"counted GFLOP per second of audio: vocoder {gflop_per_audio_second(lambda: vocoder(mel), secs):.2f}"
    )
    gl = secs / best_time(lambda: griffin_lim(mel, mel_cfg, n_iter=64), max(1, args.repeats // 2))
    print(f"Griffin-Lim 64 iterations : {gl:8.1f} x real time")
    vocos = {}
    for label, bf16 in (("float32", False), ("bf16 autocast", True)):
        vocos[bf16] = voc = secs / best_time(lambda: vocoder(mel), args.repeats, bf16)
        print(f"vocoder {label:<17s} : {voc:8.1f} x real time   ({voc / gl:6.1f} x Griffin-Lim)")
    # the other phase head (absolute <-> accumulated: soundsmith.nn.istft.ISTFTHead), same widths, random head
    other_phase = "accumulated" if vocoder.config.head_phase == "absolute" else "absolute"
    torch.manual_seed(0)
    other = Vocoder(dataclasses.replace(vocoder.config, head_phase=other_phase)).eval()
    for label, bf16 in (("float32", False), ("bf16 autocast", True)):
        xrt = secs / best_time(lambda: other(mel), args.repeats, bf16)
        print(
            f"vocoder, {other_phase} phase {label:<13s}: {xrt:8.1f} x real time   ({xrt / vocos[bf16]:6.3f} x the "
            f"{vocoder.config.head_phase}-phase head above)"
        )
    # the round trip's default: the network, then refine_to_mel's rounds and the level match (float32)
    rounds = DEFAULT_REFINE
    held = secs / best_time(lambda: vocoder.vocode(mel, refine=rounds, level_match=True), args.repeats)
    print(
        f"vocoder + refine {rounds} + level: {held:8.1f} x real time   ({held / vocos[False]:6.3f} x the vocoder "
        f"alone, {held / gl:6.1f} x Griffin-Lim)"
    )
    if not args.no_hifigan:
        for name in ("hifigan", "hifigan_v1"):
            hifigan, src = _preset(name)
            run = functools.partial(hifigan, mel)
            n = sum(p.numel() for p in hifigan.parameters()) / 1e6
            gflop = gflop_per_audio_second(run, secs)
            print(f"HiFi-GAN: {src}, {n:.2f} M parameters, {gflop:.2f} GFLOP per second of audio")
            for label, bf16 in (("float32", False), ("bf16 autocast", True)):
                xrt = secs / best_time(run, args.repeats, bf16)
                print(
                    f"{name:<10s} {label:<14s} : {xrt:8.1f} x real time   ({xrt / vocos[bf16]:6.3f} x the Vocos "
                    f"vocoder, {xrt / gl:6.1f} x Griffin-Lim)"
                )
    if args.no_vae:
        return
    vae, vae_src = _model("vae", VAEConfig, MelVAE)
    n_vae = sum(p.numel() for p in vae.parameters()) / 1e6
    print(
        f"VAE: {vae_src}, {n_vae:.2f} M parameters; counted GFLOP per second of audio, encode + decode "
        f"{gflop_per_audio_second(lambda: vae(mel), secs):.2f}"
    )
    for label, bf16 in (("float32", False), ("bf16 autocast", True)):
        enc = secs / best_time(lambda: vae.encode(mel), args.repeats, bf16)
        both = secs / best_time(lambda: vae(mel), args.repeats, bf16)
        print(f"VAE {label:<13s} encode : {enc:8.1f} x real time;  encode + decode {both:8.1f} x real time")
    chain = secs / best_time(lambda: vocoder(vae(mel)), args.repeats)
    print(f"VAE + vocoder float32     : {chain:8.1f} x real time   ({chain / gl:6.1f} x Griffin-Lim)")


if __name__ == "__main__":
    main()
