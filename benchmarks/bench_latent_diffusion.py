"""Speed of latent-diffusion generation on the CPU, against AudioLDM-S built from its public config, same run.

Prints (1) a table of one denoiser step for a 4 s latent at a few denoiser sizes, guided (batch 2: conditional +
unconditional) and guidance-distilled (one pass, as the shipped default), with how many steps fit the 150 ms
denoiser budget of the 0.2 s target and whether its fp16 weights fit the default's 30 MB beside the VAE and vocoder; (2) the soundsmith
pipeline at its default settings (configs/latent_diffusion/base.yaml: sampler, steps, guidance), with the time
split into text encoder, denoiser steps, VAE decode and vocoder, x real time and peak memory, then the same
one-pass at the shipped steps in float32 and with int8 matrix products; (2b) the shipped default with its real
weights at its own settings against float32 at 8 steps, interleaved; (3) AudioLDM-S
(diffusers UNet2DConditionModel + AutoencoderKL + transformers SpeechT5HifiGan + CLAP text tower, configs written
out below from diffusers' conversion script defaults for audioldm-s-full) with random weights, at the same
duration, steps and guidance, and the ratio. Speed does not depend on the weights. The shipped VAE/vocoder are used
when present, else their base presets with random weights.

    OMP_NUM_THREADS=2 python benchmarks/bench_latent_diffusion.py [--seconds 4] [--threads 2] [--repeats 3]
        [--skip-sizes] [--skip-audioldm] [--skip-default] [--audioldm-steps N]

``--audioldm-steps N`` times N UNet steps and extrapolates to the full step count (said in the output).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundsmith.models.latent_diffusion import (
    LatentDenoiser,
    LatentDenoiserConfig,
    LatentDiffusion,
    LatentDiffusionConfig,
)
from soundsmith.train.runconfig import read_yaml

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MS = (
    150.0  # the denoiser's share of 0.2 s for 4 s of audio (text ~5 ms, VAE decode + vocoder the rest)
)
# the default's weights may total 30 MB (tracker issue 11); the shipped VAE and vocoder take 6.9 MB of it in fp16
DENOISER_MB = 30.0 - 6.9


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def median_time(fn: Callable[[], object], repeats: int) -> float:
    with torch.no_grad():
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _part(name: str, config_cls: type, model_cls: type) -> tuple[torch.nn.Module, str]:
    from soundsmith.models.registry import load_model

    if (ROOT / "models" / name / "config.json").is_file():
        return load_model(ROOT / "models" / name).eval(), f"models/{name}"
    torch.manual_seed(0)
    cfg = config_cls(**read_yaml(ROOT / "configs" / name / "base.yaml")["model"])
    return model_cls(cfg).eval(), f"configs/{name}/base.yaml (random weights)"


# --- (1) denoiser sizes -----------------------------------------------------------------------------------------


def matmul_gflops(repeats: int = 50) -> float:
    """Achieved fp32 GFLOP/s of a denoiser-sized matmul ([202, 256] x [256, 1024]): how loaded the CPU is now."""
    a, w = torch.randn(202, 256), torch.randn(256, 1024)
    return 2 * 202 * 256 * 1024 / median_time(lambda: a @ w, repeats) / 1e9


def step_gflop(d: int, layers: int, tokens: int, text_tokens: int = 16) -> float:
    """Matmul GFLOP of one denoiser call on ``tokens`` latent frames (self-attn, cross-attn, MLP x 4; batch incl.)."""
    per_layer = 2 * tokens * 14 * d * d + 4 * tokens * tokens * d + 4 * tokens * text_tokens * d
    return layers * per_layer / 1e9


def denoiser_sizes(latent_frames: int, latent_width: int, repeats: int) -> None:
    print(
        f"\n(1) one denoiser step, latent [{latent_width} x {latent_frames}] (4 s), 16 text tokens: guided in two "
        f"rows (batch 2) and guidance-distilled in one pass (batch 1, the shipped default's form); "
        f"matmul now: {matmul_gflops():.0f} GFLOP/s"
    )
    print(
        f"{'d_model':>8} {'layers':>6} {'params':>8} {'fp16 MB':>8} {'GFLOP':>6} {'ms/step':>8} {'GFLOP/s':>8} "
        f"{'steps in 150 ms':>16} {'1-pass ms':>10} {'x base':>7} {'1-pass steps':>13} {'fits 30 MB':>11}"
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, latent_width, 1, latent_frames, generator=g)
    t = torch.tensor([0.5, 0.5])
    tokens = torch.randn(2, 16, 384, generator=g)
    mask = torch.ones(2, 16, dtype=torch.bool)
    pooled = torch.randn(2, 384, generator=g)
    drop = torch.tensor([False, True])
    w = torch.tensor([3.0])
    base_ms = None
    sizes = ((192, 4), (256, 6), (256, 8), (288, 6), (320, 6), (320, 8), (384, 6), (384, 8), (512, 6))
    for d, layers in sizes:
        torch.manual_seed(0)
        cfg = LatentDenoiserConfig(
            latent_channels=latent_width, latent_bins=1, d_model=d, layers=layers, heads=4
        )
        net = LatentDenoiser(cfg).eval()
        ms = 1000 * median_time(lambda net=net: net(x, t, tokens, mask, pooled, drop), repeats)
        net.add_guidance_input()
        params = sum(p.numel() for p in net.parameters())
        one = (x[:1], t[:1], tokens[:1], mask[:1], pooled[:1], drop[:1], w)
        ms1 = 1000 * median_time(lambda net=net, one=one: net(*one), repeats)
        base_ms = ms1 if (d, layers) == (256, 6) else base_ms
        flop = step_gflop(d, layers, 2 * latent_frames)
        mb = 2 * params / 1e6
        ratio = f"{ms1 / base_ms:>7.2f}" if base_ms else f"{'-':>7}"
        print(
            f"{d:>8} {layers:>6} {params / 1e6:>7.1f}M {mb:>8.1f} {flop:>6.2f} {ms:>8.1f} {flop / ms * 1000:>8.1f} "
            f"{int(BUDGET_MS // ms):>16} {ms1:>10.1f} {ratio} {int(BUDGET_MS // ms1):>13} "
            f"{'yes' if mb <= DENOISER_MB else 'no':>11}"
        )


# --- (2) soundsmith ----------------------------------------------------------------------------------------------


class Timers:
    """Wall time spent in named methods of objects (patched on the instances)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}

    def wrap(self, obj: Any, method: str, name: str) -> None:
        inner = getattr(obj, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.total[name] = self.total.get(name, 0.0) + time.perf_counter() - t0

        setattr(obj, method, timed)


def _breakdown(
    pipe: Any, prompt: str, seconds: float, repeats: int, compute: str = "float32"
) -> dict[str, float]:
    """The best of ``repeats`` generations of ``prompt`` with the denoiser's matrix products in ``compute``, split
    into text encoder, denoiser steps, VAE decode and vocoder (printed, with x real time)."""
    model = pipe.model
    denoiser = pipe.denoiser_for(compute)[0]  # the model's own, or its int8 twin
    runs = []
    for i in range(repeats):
        timers = Timers()
        timers.wrap(model, "encode_text", "text encoder")
        timers.wrap(denoiser, "forward", "denoiser steps")
        timers.wrap(model, "latents_to_mel", "VAE decode")
        timers.wrap(model, "mel_to_audio", "vocoder")
        t0 = time.perf_counter()
        pipe(prompt, duration=seconds, seed=i, progress=False, compute=compute)
        timers.total["total"] = time.perf_counter() - t0
        for name in ("encode_text", "latents_to_mel", "mel_to_audio"):
            del model.__dict__[name]
        del denoiser.__dict__["forward"]
        runs.append(timers.total)
    best = min(runs, key=lambda r: r["total"])
    for name in ("text encoder", "denoiser steps", "VAE decode", "vocoder", "total"):
        ms = 1000 * best.get(name, 0.0)
        print(f"  {name:<15} {ms:8.1f} ms")
    print(f"  x real time     {best['total'] / seconds:8.3f}  (target <= 0.05: 4 s in <= 0.2 s)")
    return best


def soundsmith_run(seconds: float, repeats: int) -> dict[str, float]:
    from soundsmith.models.vae import MelVAE, VAEConfig
    from soundsmith.models.vocoder import Vocoder, VocoderConfig
    from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

    base = read_yaml(ROOT / "configs" / "latent_diffusion" / "base.yaml")["model"]
    config = LatentDiffusionConfig(**base)
    vae, vae_src = _part("vae", VAEConfig, MelVAE)
    vocoder, voc_src = _part("vocoder", VocoderConfig, Vocoder)
    torch.manual_seed(0)
    model = LatentDiffusion(config, components={"vae": vae, "vocoder": vocoder}).eval()
    pipe = LatentDiffusionPipeline(model)
    n_params = sum(p.numel() for p in model.denoiser.parameters()) / 1e6
    print(
        f"\n(2) soundsmith latent diffusion, configs/latent_diffusion/base.yaml: denoiser d={config.denoiser.d_model} "
        f"x {config.denoiser.layers} layers ({n_params:.1f}M, random weights), VAE {vae_src}, vocoder {voc_src}, "
        f"text {config.text_encoder}; sampler {config.sampler}, {config.steps} steps, guidance {config.guidance}"
    )
    prompt = "a flute plays a high soft note"
    pipe(prompt, duration=seconds, seed=0, progress=False)  # warm-up (builds the text encoder)
    best = _breakdown(pipe, prompt, seconds, repeats)
    print(f"  peak RSS        {peak_rss_mb():8.0f} MB (process so far)")
    # a layered prompt (a bed + one source) composed part by part, against the same prompt as one clip
    layered = "three beeps over steady rain"
    times = {
        compose: median_time(
            lambda c=compose: pipe(layered, duration=seconds, compose=c, progress=False), repeats
        )
        for compose in (False, True)
    }
    print(
        f"  layered prompt {layered!r}: one clip {1000 * times[False]:.1f} ms, composed (bed + source) "
        f"{1000 * times[True]:.1f} ms = {times[True] / times[False]:.2f}x, x real time {times[True] / seconds:.3f}"
    )
    # tuning a named held note: measuring the pitch, and shifting a tone an octave down (resampled) or three
    # semitones up (phase vocoder), against the generation of the same length (random weights make noise, which
    # the pipeline would leave alone, so the shift is timed on a tone)
    # (a register moves it by octaves: the same cost), playing a strike slower with its dips filled, and reading
    # a pitch direction (a prompt asking a rising or falling phrase)
    from soundsmith.pipelines.tune import measure_direction, measure_note, tune

    t = np.arange(int(seconds * pipe.sample_rate)) / pipe.sample_rate
    tone = (0.3 * np.sign(np.sin(2 * np.pi * 261.63 * t))).astype(np.float32)  # a square wave at C4
    costs = {
        "measure": median_time(lambda: measure_note(tone, pipe.sample_rate), repeats),
        "octave down": median_time(lambda: tune(tone, pipe.sample_rate, 48.0), repeats),
        "3 semitones up": median_time(lambda: tune(tone, pipe.sample_rate, 63.0), repeats),
        "a strike an octave down": median_time(
            lambda: tune(tone, pipe.sample_rate, 48.0, strike=True), repeats
        ),
        "direction": median_time(lambda: measure_direction(tone, pipe.sample_rate), repeats),
    }
    print(
        "  tuning a named note: "
        + ", ".join(f"{k} {1000 * v:.1f} ms ({v / best['total']:.2f}x the clip)" for k, v in costs.items())
    )
    # guidance distilled (``--method guidance``): one pass a step at twice the steps, against the above
    steps = int(config.steps)
    model.denoiser.add_guidance_input()
    model.config.steps = 2 * steps
    print(f"  guidance distilled: one pass a step, {2 * steps} steps (random weights)")
    distilled = _breakdown(pipe, prompt, seconds, repeats)
    print(
        f"  distilled at {2 * steps} steps / two branches at {steps}: "
        f"{distilled['total'] / best['total']:.2f}x the time"
    )
    # step distilled (``--method steps``; the shipped default since stop 30): one pass a step at the shipped steps
    from soundsmith.models.registry import read_model_config

    default = read_model_config(ROOT / "models" / "default")["config"]
    shipped, shipped_compute = int(default["steps"]), default.get("compute", "float32")
    model.config.steps = shipped
    # from here on the vocoder is held to its mel as the default's is (rounds of refine_to_mel, speech excepted)
    model.config.vocoder_refine = int(default.get("vocoder_refine", 0))
    print(
        f"  step distilled: one pass a step, {shipped} steps, float32, vocoder refined "
        f"{model.config.vocoder_refine} rounds (random weights)"
    )
    stepped = _breakdown(pipe, prompt, seconds, repeats)
    print(
        f"  step distilled at {shipped} / guidance distilled at {2 * steps}: "
        f"{stepped['total'] / distilled['total']:.2f}x the time"
    )
    # int8 matrix products in the denoiser's blocks (``compute: int8``), at the shipped steps and more
    for n in sorted({shipped, 8, 12, 16}):
        model.config.steps = n
        mark = " (the shipped default's settings)" if (n, "int8") == (shipped, shipped_compute) else ""
        print(f"  int8 matrix products: one pass a step, {n} steps{mark}")
        run = _breakdown(pipe, prompt, seconds, repeats, compute="int8")
        print(f"  int8 at {n} / float32 at {shipped}: {run['total'] / stepped['total']:.2f}x the time")
    return best


def shipped_default_run(seconds: float, repeats: int) -> None:
    """The shipped default with its real weights: its own settings against float32 at 8 steps (the settings it
    shipped with at stop 30), interleaved run by run so that the machine's changing speed hits both alike; plain
    prompts (no composing or tuning), best and median of ``repeats``."""
    import soundsmith

    pipe = soundsmith.load("default")
    c = pipe.model.config
    settings = [("float32", 8), (c.compute, c.steps)]
    prompt = "a dog barks twice"

    def once(compute: str, steps: int, seed: int) -> float:
        t0 = time.perf_counter()
        pipe(
            prompt,
            duration=seconds,
            seed=seed,
            steps=steps,
            compute=compute,
            compose=False,
            tune=False,
            progress=False,
        )
        return time.perf_counter() - t0

    for compute, steps in settings:  # warm-up (text encoder, int8 twin)
        once(compute, steps, 0)
    times: dict[tuple[str, int], list[float]] = {s: [] for s in settings}
    for i in range(max(repeats, 5)):
        for compute, steps in settings:
            times[(compute, steps)].append(once(compute, steps, i))
    print(f"\n(2b) the shipped default (real weights), {prompt!r}, {seconds:g} s, interleaved:")
    for (compute, steps), values in times.items():
        label = "shipped settings" if (compute, steps) == (c.compute, c.steps) else "stop 30's settings"
        print(
            f"  {compute:>7} x {steps:2d} steps ({label}): best {1000 * min(values):6.1f} ms, "
            f"median {1000 * statistics.median(values):6.1f} ms, x real time {min(values) / seconds:.3f}"
        )
    ratio = min(times[settings[1]]) / min(times[settings[0]])
    print(f"  shipped / stop 30's settings: {ratio:.2f}x the time (best of each)")


# --- (3) AudioLDM-S ----------------------------------------------------------------------------------------------

# audioldm-s-full as diffusers' scripts/convert_original_audioldm_to_diffusers.py builds it from its DEFAULT_CONFIG
# (model_channels 128, channel_mult [1, 2, 3, 5], attention at resolutions 8/4/2, 2 res blocks, FiLM text
# embedding of 512 concatenated to the time embedding; VAE ch 128 x [1, 2, 4], z 8; HiFi-GAN 1024 channels,
# upsampling 5-4-2-2-2). attention_head_dim is left at diffusers' default, as the conversion script does.
AUDIOLDM_UNET = dict(
    sample_size=128,
    in_channels=8,
    out_channels=8,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(128, 256, 384, 640),
    layers_per_block=2,
    cross_attention_dim=(128, 256, 384, 640),
    class_embed_type="simple_projection",
    projection_class_embeddings_input_dim=512,
    class_embeddings_concat=True,
)
AUDIOLDM_VAE = dict(
    sample_size=512,
    in_channels=1,
    out_channels=1,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(128, 256, 512),
    latent_channels=8,
    layers_per_block=2,
)
AUDIOLDM_VOCODER = dict(
    model_in_dim=64,
    sampling_rate=16000,
    upsample_initial_channel=1024,
    upsample_rates=[5, 4, 2, 2, 2],
    upsample_kernel_sizes=[16, 16, 8, 4, 4],
    resblock_kernel_sizes=[3, 7, 11],
    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    normalize_before=False,
)


def audioldm_run(seconds: float, steps: int, guidance: float, timed_steps: int | None) -> float:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import (
        ClapTextConfig,
        ClapTextModelWithProjection,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**AUDIOLDM_UNET).eval()
    vae = AutoencoderKL(**AUDIOLDM_VAE).eval()
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(**AUDIOLDM_VOCODER)).eval()
    text = ClapTextModelWithProjection(ClapTextConfig()).eval()  # laion/clap-htsat-unfused's text tower shape
    scheduler = DDIMScheduler(
        beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False
    )
    print(
        f"\n(3) AudioLDM-S (random weights): UNet {sum(p.numel() for p in unet.parameters()) / 1e6:.0f}M, "
        f"VAE {sum(p.numel() for p in vae.parameters()) / 1e6:.0f}M, HiFi-GAN "
        f"{sum(p.numel() for p in vocoder.parameters()) / 1e6:.0f}M, CLAP text "
        f"{sum(p.numel() for p in text.parameters()) / 1e6:.0f}M; DDIM, {steps} steps, guidance {guidance}"
    )
    frames = int(seconds / 0.01)  # AudioLDM's mel: 100 frames/s; the pipeline rounds up to a multiple of 4
    frames = -(-frames // 4) * 4
    latents = torch.randn(1, 8, frames // 4, 16)  # [B, C, time, freq]
    out: dict[str, float] = {}
    with torch.no_grad():
        # text: the prompt and the empty unconditional prompt, padded to the tokenizer's 512 (as AudioLDMPipeline)
        ids = torch.randint(5, 1000, (2, 512))
        t0 = time.perf_counter()
        emb = text(input_ids=ids, attention_mask=torch.ones_like(ids)).text_embeds  # [2, 512]
        emb = torch.nn.functional.normalize(emb, dim=-1)
        out["text encoder"] = time.perf_counter() - t0
        scheduler.set_timesteps(steps)
        n = steps if timed_steps is None else min(steps, timed_steps)
        t0 = time.perf_counter()
        for t in scheduler.timesteps[:n]:
            x = torch.cat([latents] * 2)
            noise = unet(x, t, encoder_hidden_states=None, class_labels=emb).sample
            cond, uncond = noise.chunk(2)
            latents = scheduler.step(uncond + guidance * (cond - uncond), t, latents).prev_sample
        out["denoiser steps"] = (time.perf_counter() - t0) * steps / n
        t0 = time.perf_counter()
        mel = vae.decode(latents / 0.18215).sample  # [1, 1, frames, 64]
        out["VAE decode"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        vocoder(mel.squeeze(1))
        out["vocoder"] = time.perf_counter() - t0
    out["total"] = sum(out.values())
    for name, value in out.items():
        print(f"  {name:<15} {1000 * value:8.1f} ms")
    if n < steps:
        print(f"  (denoiser: {n} of {steps} steps timed, extrapolated linearly)")
    print(f"  x real time     {out['total'] / seconds:8.3f}")
    print(f"  peak RSS        {peak_rss_mb():8.0f} MB (process so far)")
    return out["total"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-sizes", action="store_true")
    parser.add_argument("--skip-audioldm", action="store_true")
    parser.add_argument(
        "--skip-default", action="store_true", help="skip timing the shipped default's weights"
    )
    parser.add_argument("--audioldm-steps", type=int, default=None, help="time only this many UNet steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads: {args.threads}; {args.seconds:g} s of audio; torch {torch.__version__}")

    base = LatentDiffusionConfig(**read_yaml(ROOT / "configs" / "latent_diffusion" / "base.yaml")["model"])
    if not args.skip_sizes:
        frames = -(-(int(args.seconds * 16000) // 160 + 1) // 4)
        denoiser_sizes(
            frames, base.denoiser.latent_channels * base.denoiser.latent_bins, max(5, args.repeats)
        )
    ours = soundsmith_run(args.seconds, args.repeats)
    if not args.skip_default:
        shipped_default_run(args.seconds, args.repeats)
    if not args.skip_audioldm:
        theirs = audioldm_run(args.seconds, base.steps, base.guidance, args.audioldm_steps)
        print(f"\nAudioLDM-S / soundsmith, same duration, steps and guidance: {theirs / ours['total']:.1f}x")


if __name__ == "__main__":
    main()
