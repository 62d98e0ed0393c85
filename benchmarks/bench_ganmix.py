"""Speed of GANmix generation on the CPU: one generator pass per clip, VAE decode and vocoder included.

For the thesis (fully connected), improved (convolutional) and transformer (token-reading) presets at their base
size, with random generator
weights (speed does not depend on the weights) and the shipped VAE, vocoder and MiniLM (their base presets with
random weights when not shipped), prints per clip: text encoder, generator, VAE decode, vocoder, total, and x real
time (seconds of audio per second of compute), as the median of ``--repeats`` runs after a warm-up. The latent
diffusion base preset (random denoiser, its default steps and guidance) is timed in the same run as the baseline
(``--skip-ld`` to leave it out). A shared, loaded CPU gives noisy figures: compare ratios from one run.

    OMP_NUM_THREADS=2 python benchmarks/bench_ganmix.py [--seconds 5] [--threads 2] [--repeats 5] [--skip-ld]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from soundsmith.models.registry import shipped_models
from soundsmith.train.runconfig import load_run_config

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a dog barks twice in a small room"


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def build(preset: str) -> tuple[str, torch.nn.Module]:
    run = load_run_config(ROOT / "configs" / preset)
    cfg = run.model
    shipped = shipped_models()
    components = {}
    for name in ("vae", "vocoder"):
        if getattr(cfg, name) not in shipped:  # not shipped yet: the base preset with random weights
            from soundsmith import families

            base = load_run_config(ROOT / "configs" / name / "base.yaml").model
            components[name] = families.get(name).model_class()(base)
    torch.manual_seed(0)
    return run.family, type_of(run.family)(cfg, components=components).eval()


def type_of(family: str) -> type:
    from soundsmith import families

    return families.get(family).model_class()


def bench_ganmix(preset: str, seconds: float, repeats: int) -> dict[str, float]:
    from soundsmith.pipelines.ganmix import GANmixPipeline

    _, model = build(preset)
    pipe = GANmixPipeline(model)
    n = int(round(seconds * pipe.sample_rate))
    frames = model.latent_frames(n)
    with torch.no_grad():
        text = model.text_condition([PROMPT])  # pooled (+ tokens and mask for the transformer)
        gen_frames = model.generation_frames(n)  # the FC generator's fixed length, or the clip's (conv, transformer)
        noise = model.noise(0, gen_frames)

        def generate() -> torch.Tensor:
            return model(noise, text["pooled"], gen_frames, text.get("tokens"), text.get("mask"))

        latent = model.fit_frames(generate(), frames)
        mel = model.vae.decode(latent / model.vae.config.scale_factor, model.mel_frames(n))
        parts = {
            "text": median_time(lambda: model.text_condition([PROMPT]), repeats),
            "generator": median_time(generate, repeats),
            "vae_decode": median_time(lambda: model.vae.decode(latent, model.mel_frames(n)), repeats),
            "vocoder": median_time(lambda: model.vocoder(mel), repeats),
        }
    parts["total"] = median_time(lambda: pipe(PROMPT, duration=seconds, seed=0, progress=False), repeats)
    parts["params_M"] = sum(p.numel() for p in model.generator.parameters()) / 1e6
    return parts


def bench_ld(seconds: float, repeats: int) -> float:
    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    _, model = build("latent_diffusion/base.yaml")
    pipe = LatentDiffusionPipeline(model)
    return median_time(lambda: pipe(PROMPT, duration=seconds, seed=0, progress=False), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-ld", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"GANmix generation, {args.seconds:g} s clips, {args.threads} threads, median of {args.repeats} "
          f"(1-min load average {load:.1f} on {os.cpu_count()} cores: figures are noisy when it exceeds the threads)")  # fmt: skip
    print(f"{'preset':<11} {'G params':>9} {'text ms':>8} {'G ms':>7} {'VAE ms':>7} {'voc ms':>7} "
          f"{'total ms':>9} {'x real time':>12}")  # fmt: skip
    totals = {}
    for preset in ("thesis", "improved", "transformer"):
        r = bench_ganmix(f"ganmix/{preset}.yaml", args.seconds, args.repeats)
        totals[preset] = r["total"]
        print(f"{preset:<11} {r['params_M']:>8.1f}M {1e3 * r['text']:>8.1f} {1e3 * r['generator']:>7.2f} "
              f"{1e3 * r['vae_decode']:>7.1f} {1e3 * r['vocoder']:>7.1f} {1e3 * r['total']:>9.1f} "
              f"{args.seconds / r['total']:>11.0f}x")  # fmt: skip
    if not args.skip_ld:
        ld = bench_ld(args.seconds, args.repeats)
        print(f"latent diffusion base (random denoiser, default steps/guidance): {1e3 * ld:.1f} ms, "
              f"{args.seconds / ld:.0f}x real time; GANmix thesis is {ld / totals['thesis']:.1f}x faster, "
              f"improved {ld / totals['improved']:.1f}x, transformer {ld / totals['transformer']:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
