"""Teacher pairs for GANmix: (noise, caption) -> the latent diffusion model's denoised latent for them.

GANmix's generator can learn the teacher's map from noise to sound in one pass (``model.teacher_weight`` and
``model.teacher_pairs``, docs/ganmix.md "Taught by the latent diffusion default"). This script draws ``--count``
captions from a manifest's split (one of each picked clip's captions, seeded), a noise seed per pair, and runs the
teacher's plain sampler (``LatentDiffusionPipeline.sample_latents``: no composition or tuning) on them in batches.
The file (safetensors) holds ``latents`` ``[N, C, T']`` (float16, the teacher's scaled VAE latents with its
frequency bins folded into channels, GANmix's layout) and ``seeds`` ``[N]`` (int64: pair ``i``'s noise is
``torch.randn((C, T'), generator=torch.Generator().manual_seed(seeds[i]))``); its metadata holds the captions
(JSON), the teacher's name and weights hash, steps and duration.

    OMP_NUM_THREADS=2 python scripts/ganmix_teacher_pairs.py --manifest work/corpus_ld/manifest.jsonl \
        --count 8192 --out work/gm_pairs/pairs.safetensors

``--merge A B ... --out C`` joins pairs files made by the same teacher (same weights hash, steps and duration) into
one, refusing files whose noise seeds overlap (make each with its own ``--seed``). ``--score MODEL ... --pairs A
B ...`` prints each GANmix model's teacher term (mean squared distance to the teacher's latents, the objective's
``teacher`` loss) on the first ``--count`` pairs of each file: on pairs it trained on and on held-out ones (made
with another ``--seed``, or from ``--split valid``), where a generator that overfits its pairs parts the two.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import soundsmith
from soundsmith.data.manifest import read_manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="the teacher: a latent diffusion model name or folder")
    ap.add_argument("--manifest")
    ap.add_argument("--merge", nargs="+", metavar="PAIRS", help="join these pairs files into --out instead")
    ap.add_argument("--score", nargs="+", metavar="MODEL", help="score these GANmix models on --pairs instead")
    ap.add_argument("--pairs", nargs="+", metavar="PAIRS", help="the pairs files --score reads")
    ap.add_argument("--split", default="train")
    ap.add_argument("--count", type=int, default=8192)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=None, help="the teacher's steps (default: its config's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.score:
        if not args.pairs:
            sys.exit("--score needs --pairs: the pairs files to score the models on")
        return score(args.score, args.pairs, args.count, args.batch)
    if not args.out:
        sys.exit("--out is required")
    if args.merge:
        return merge(args.merge, args.out)
    if not args.manifest:
        sys.exit("--manifest is required (or --merge to join pairs files, --score to score models on them)")

    rows = [r for r in read_manifest(args.manifest).rows if r.split == args.split and r.captions]
    if not rows:
        sys.exit(f"{args.manifest} has no captioned clips in split {args.split!r}")
    rng = random.Random(args.seed)
    captions = [rng.choice(rng.choice(rows).captions) for _ in range(args.count)]
    seeds = [args.seed * 1_000_003 + i for i in range(args.count)]

    pipe = soundsmith.load(args.model)
    if pipe.family != "latent_diffusion":
        sys.exit(f"--model {args.model}: the teacher must be a latent diffusion model, not {pipe.family}")
    shape = pipe.model.latent_shape(pipe.num_samples(args.duration))  # [C, F, T']
    out, start = [], time.time()
    for lo in range(0, args.count, args.batch):
        batch_seeds = seeds[lo : lo + args.batch]
        noise = torch.stack(
            [
                torch.randn(shape[0] * shape[1], shape[2], generator=torch.Generator().manual_seed(s))
                for s in batch_seeds
            ]
        ).view(len(batch_seeds), *shape)
        latents = pipe.sample_latents(captions[lo : lo + args.batch], noise, steps=args.steps)
        out.append(latents.reshape(len(batch_seeds), shape[0] * shape[1], shape[2]).half().cpu())
        done = lo + len(batch_seeds)
        rate = done / (time.time() - start)
        print(
            f"{done}/{args.count} pairs, {rate:.1f} pairs/s, {(args.count - done) / rate / 60:.1f} min left",
            flush=True,
        )

    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "captions": json.dumps(captions),
        "teacher": str(args.model),
        "teacher_sha256": pipe.provenance()["weights_sha256"],
        "steps": str(args.steps or pipe.model.config.steps),
        "duration": str(args.duration),
        "manifest": str(args.manifest),
        "split": args.split,
    }
    save_file(
        {"latents": torch.cat(out), "seeds": torch.tensor(seeds, dtype=torch.int64)}, str(path), metadata=meta
    )
    print(f"wrote {path}: {args.count} pairs in {(time.time() - start) / 60:.1f} min")
    return 0


@torch.no_grad()
def score(models: list[str], paths: list[str], count: int, batch: int) -> int:
    """Print each model's mean squared distance to the teacher's latents on the first ``count`` pairs of each file."""
    from soundsmith.train.objectives.ganmix import load_teacher_pairs, pair_errors

    for name in models:
        pipe = soundsmith.load(name)
        if pipe.family != "ganmix":
            sys.exit(f"--score {name}: a {pipe.family} model, not GANmix")
        model = pipe.model.eval()
        for path in paths:
            pairs = load_teacher_pairs(path, model.generator.noise_shape, model.config.latent_channels)
            n = min(count, len(pairs.captions))
            e = pair_errors(model, pairs, n, batch)
            print(f"{name} on {path} ({n} pairs): teacher term {e.mean():.4f} (median {e.median():.4f})", flush=True)
    return 0


def merge(paths: list[str], out: str) -> int:
    """Join pairs files of one teacher into ``out``; exits with a message naming the file that does not fit."""
    latents, seeds, captions, first = [], [], [], None
    for path in paths:
        if not Path(path).is_file():
            sys.exit(f"--merge: {path} not found")
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            latents.append(f.get_tensor("latents"))
            seeds.append(f.get_tensor("seeds"))
        captions += json.loads(meta.get("captions", "[]"))
        same = {k: meta.get(k) for k in ("teacher_sha256", "steps", "duration")}
        if first is None:
            first = (path, same, meta)
        elif same != first[1]:
            sys.exit(f"--merge: {path} was made by {same}, {first[0]} by {first[1]}: one teacher per file")
    joined = torch.cat(seeds)
    if len(set(joined.tolist())) != len(joined):
        sys.exit("--merge: the files share noise seeds (made with the same --seed?); make each with its own --seed")
    meta = dict(first[2], captions=json.dumps(captions), merged_from=json.dumps(paths))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file({"latents": torch.cat(latents), "seeds": joined}, out, metadata=meta)
    print(f"wrote {out}: {len(joined)} pairs from {len(paths)} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
