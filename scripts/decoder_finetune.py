"""Fine-tune the mel VAE's decoder for a latent-diffusion model, the encoder frozen (every clip's latent stays
exactly what the denoiser was trained on), and write a copy of the model that decodes through it.

    python scripts/decoder_finetune.py --model default --manifest work/corpus_ld/manifest.jsonl --out work/ldm_dec \
        --clips 6144 --generated 0.5 --strength 0.15 0.6 --steps 3000

Pairs: train clips (``--shifted-first N``: first up to N clips with ``meta.shifted_from``, the register-shifted copies
of ``soundsmith data shift``), each with its real log-mel and two latents: the VAE's posterior mean, and (with
``--generated P > 0``) the denoiser's own latent for it, drawn from that mean noised to a strength in
``--strength`` and denoised at the model's steps and guidance with one of the clip's captions (SDEdit). Training:
L1 between the decoded latent and the real log-mel, the generated latent with probability ``P``, else the
posterior mean (``--energy-weight W > 0``: plus W x the L1 between the frames' log power, decoded and real, on the
frames within 40 dB of the clip's loudest: the log-mel L1 alone leaves a blurred decoder's harmonics, and so its
clips, quiet); AdamW, batch 16 of 4 s; the first 512 pairs (a quarter of a smaller set) are held out and reported every 250 steps.
``--out`` is the model with its ``vae`` component replaced by ``OUT/vae`` (a trainable ``{"path": "vae"}`` part),
ready for ``scripts/compare_models.py``. docs/latent_diffusion.md, "The decoder tuned for the denoiser".
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

import numpy as np
import torch

from soundsmith.audio import load_audio, mel_spectrogram
from soundsmith.data.manifest import read_manifest
from soundsmith.models.registry import resolve_model_dir, save_model
from soundsmith.pipelines import loader
from soundsmith.sampling.diffusion import DiffusionSampler

HELD_OUT = 512
BATCH = 16
LOUD_FRAMES_DB = 40.0


def loud_frame_power(decoded: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames' log-power error (natural log), decoded against real log-mels ``[B, M, frames]``, and the mask
    of the real clip's frames within ``LOUD_FRAMES_DB`` of its loudest (both ``[B, frames]``)."""
    real, dec = torch.logsumexp(2 * mel, 1), torch.logsumexp(2 * decoded, 1)
    return dec - real, real > real.amax(1, keepdim=True) - LOUD_FRAMES_DB * np.log(10) / 10


def frame_power_error(decoded: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
    """Per clip, the mean signed error (dB) of its loud frames' power (``[B]``)."""
    err, loud = loud_frame_power(decoded, mel)
    return (err * loud).sum(1) / loud.sum(1).clamp(min=1) * 10 / np.log(10)


@torch.no_grad()
def make_pairs(pipe, rows, root, args) -> dict[str, torch.Tensor]:
    """``{"known", "gen", "mel"}``: posterior means and generated latents ``[N, C, T']`` (scaled), log-mels."""
    model = pipe.model
    c, sr = model.config, model.config.sample_rate
    g = torch.Generator().manual_seed(args.seed)
    run = DiffusionSampler(c.sampler, pipe.schedule)
    out: dict[str, list[torch.Tensor]] = {"known": [], "gen": [], "mel": []}
    samples = int(c.duration * sr)
    for b in range(0, len(rows), BATCH):
        rs = rows[b : b + BATCH]
        audio = [load_audio(r.audio_path(root), sample_rate=sr, mono=True)[0][:samples] for r in rs]
        x = torch.from_numpy(np.stack([np.pad(a, (0, samples - len(a))) for a in audio])).float()
        mel = mel_spectrogram(x, model.mel_config())  # [B, M, frames]
        known = model.audio_to_latents(x)  # [B, C, F, T']
        latent = known
        if args.generated > 0:
            captions = [r.captions[int(torch.randint(len(r.captions), (1,), generator=g))] for r in rs]
            tokens, mask, pooled = model.encode_text(captions)
            drop = torch.zeros(len(rs), dtype=torch.bool)
            lo, hi = args.strength
            run.set_steps(c.steps, strength=float(lo + (hi - lo) * torch.rand(1, generator=g)))
            noise = torch.randn(known.shape, generator=g)
            latent = run.add_noise(known, noise, run.timesteps[0]) if len(run.timesteps) else known.clone()
            scale = torch.full((len(rs),), float(c.guidance)) if c.denoiser.guidance_embed else None
            for t in run.timesteps:
                now = torch.full((len(rs),), float(t) / pipe.schedule.num_train_timesteps)
                pred = model(run.scale_model_input(latent, t), now, tokens, mask, pooled, drop, scale)
                latent = run.step(pred, t, latent)
        out["known"].append(known.flatten(1, 2))
        out["gen"].append(latent.flatten(1, 2))
        out["mel"].append(mel)
        if (b // BATCH) % 32 == 0:
            print(f"pairs {b + len(rs)} / {len(rows)}", flush=True)
    return {k: torch.cat(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="a latent-diffusion model (directory or shipped name)")
    ap.add_argument("--manifest", required=True, help="its train split gives the clips")
    ap.add_argument("--out", required=True, help="the model copy that decodes through the tuned decoder")
    ap.add_argument("--clips", type=int, default=6144)
    ap.add_argument("--shifted-first", type=int, default=0, help="take up to N register-shifted clips first")
    ap.add_argument("--generated", type=float, default=0.0, help="share of steps on the denoiser's latents")
    ap.add_argument("--strength", type=float, nargs=2, default=[0.15, 0.6], help="SDEdit strength range")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--energy-weight", type=float, default=0.0, help="weight of the loud frames' log-power L1")
    args = ap.parse_args()
    pipe = loader.load(args.model)
    model = pipe.model.eval()
    m = read_manifest(args.manifest)
    rng = np.random.default_rng(args.seed)
    train = [r for r in m if r.split == "train"]
    shifted = [r for r in train if "shifted_from" in r.meta][: args.shifted_first]
    rest = [r for r in train if "shifted_from" not in r.meta]
    n_rest = min(len(rest), args.clips - len(shifted))
    rows = shifted + [rest[i] for i in rng.choice(len(rest), n_rest, replace=False)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    t0 = time.time()
    pairs = make_pairs(pipe, rows, m.root, args)
    print(f"{len(rows)} pairs ({len(shifted)} shifted) in {time.time() - t0:.0f} s", flush=True)

    # the decoder alone, trained on [held-out | train] pairs
    vae = model.vae
    vae.train()
    for p in vae.parameters():
        p.requires_grad_(False)
    for p in vae.decoder.parameters():
        p.requires_grad_(True)
    scale = vae.config.scale_factor
    held = min(HELD_OUT, len(rows) // 4)
    valid = {k: v[:held] for k, v in pairs.items()}
    data = {k: v[held:] for k, v in pairs.items()}
    opt = torch.optim.AdamW(vae.decoder.parameters(), lr=args.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(args.seed)

    def held_out() -> dict[str, float]:
        """Log-mel L1 of both latents, and the median power error (dB) of the posterior means' loud frames."""
        with torch.no_grad():
            out = {}
            for k in ("known", "gen"):
                decoded = vae.decode(valid[k] / scale, valid["mel"].shape[-1])
                out[k] = round(float((decoded - valid["mel"]).abs().mean()), 4)
                if k == "known":
                    out["power_db"] = round(float(frame_power_error(decoded, valid["mel"]).median()), 2)
            return out

    print("step 0, held-out log-mel L1", held_out(), flush=True)
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(data["mel"]), (BATCH,), generator=g)
        use_gen = (torch.rand(BATCH, generator=g) < args.generated)[:, None, None]
        z = torch.where(use_gen, data["gen"][idx], data["known"][idx]) / scale
        mel = data["mel"][idx]
        decoded = vae.decode(z, mel.shape[-1])
        loss = (decoded - mel).abs().mean()
        if args.energy_weight > 0:
            err, loud = loud_frame_power(decoded, mel)
            loss = loss + args.energy_weight * (err.abs() * loud).sum() / loud.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == args.steps:
            print(f"step {step}, train {loss.item():.3f}, held-out log-mel L1 {held_out()}", flush=True)
    vae.eval()

    # the model copy: its own files, with the tuned VAE as a trainable component
    source = resolve_model_dir(args.model)
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.copytree(source, args.out)
    extra = {"decoder_finetune": {**vars(args), "pairs": len(rows), "shifted": len(shifted)}}
    save_model(vae.half(), f"{args.out}/vae", extra=extra)
    config_path = f"{args.out}/config.json"
    with open(config_path) as f:
        meta = json.load(f)
    meta["components"]["vae"] = {"path": "vae"}
    with open(config_path, "w") as f:
        json.dump(meta, f, indent=2)
    print(f"wrote {args.out} (decoder tuned, {time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
