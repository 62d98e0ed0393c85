"""Pack a latent-diffusion training set for a machine that holds no corpus, VAE or text-encoder package.

    python scripts/gpu_ld/prepare.py --model runs/latent_diffusion/model --manifest work/corpus_ld/manifest.jsonl \
        --out .gpu_ld --valid 512 --first-part 4000 --per-part 7400

``--manifest`` takes several corpora (e.g. the same synth at other seeds: the test hold-outs are structural, so
every seed's train split stays clear of them); their train splits are packed together.

Writes, under ``--out``:
- ``part<k>/latents.npz``: the train split's VAE latents (the model's own ``audio_to_latents``: posterior mean x
  scale factor), int8 with one float16 scale per clip and channel (xz-compressed: ~63 %), plus each clip's caption
  rows; ``part0`` also holds ``valid.npz`` (the first ``--valid`` clips of the valid split, same layout),
  ``text.npz`` and ``model_config.json`` (the ``--model`` directory's).
- ``text.npz``: every caption as MiniLM word-piece ids (the real tokenizer), renumbered into the pieces that occur;
  the MiniLM weights with only those rows of the word-embedding table (float16), so that
  ``scripts/gpu_ld/train.py`` recomputes the encoder's token and pooled features on the GPU.
Each part is sized to fit one transfer (the device tool carries 64 MiB a call, working tree included).
The test split is never read.
"""

from __future__ import annotations

import argparse
import json
import lzma
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

from soundsmith.audio import load_audio
from soundsmith.models.registry import load_model
from soundsmith.text.hf import minilm_path


def quantize(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[N, C, T]`` float -> (int8 ``[N, C, T]``, float16 scale ``[N, C]``), symmetric per clip and channel."""
    scale = np.abs(z).max(axis=2) / 127.0
    scale = np.maximum(scale, 1e-8).astype(np.float16)
    q = np.clip(np.round(z / scale.astype(np.float32)[..., None]), -127, 127).astype(np.int8)
    return q, scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument(
        "--manifest",
        type=Path,
        required=True,
        nargs="+",
        help="one or more corpora: their train splits are packed together, valid comes from the first",
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--valid", type=int, default=512)
    ap.add_argument("--first-part", type=int, default=4000, help="train clips in part0 (beside text + valid)")
    ap.add_argument("--per-part", type=int, default=7400, help="train clips in each later part")
    ap.add_argument("--limit", type=int, help="train clips (a quick test)")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    model = load_model(args.model).eval()
    sr, seconds = model.config.sample_rate, model.config.duration
    n = int(round(sr * seconds))
    rows = [
        dict(json.loads(line), _root=str(manifest.parent), _first=k == 0)
        for k, manifest in enumerate(args.manifest)
        for line in manifest.read_text().splitlines()
        if line.strip()
    ]
    train = [r for r in rows if r.get("split") == "train"][: args.limit]
    valid = [r for r in rows if r.get("split") == "valid" and r["_first"]][: args.valid]

    # captions -> word pieces (the encoder's own tokenizer and max_length), renumbered
    enc = model.text_encoder
    captions: list[str] = []
    index: dict[str, int] = {}
    for r in train + valid:
        for c in r["captions"]:
            if c not in index:
                index[c] = len(captions)
                captions.append(c)
    ids = enc.word_pieces(captions)
    used = sorted({i for row in ids for i in row})
    remap = {old: new for new, old in enumerate(used)}
    length = max(len(r) for r in ids)
    pieces = np.zeros((len(ids), length), np.int16)
    for k, row in enumerate(ids):
        pieces[k, : len(row)] = [remap[i] for i in row]
    lengths = np.array([len(r) for r in ids], np.int16)
    weights = load_file(str(minilm_path() / "model.safetensors"))
    text = {
        f"w.{k}": v.astype(np.float16)
        for k, v in weights.items()
        if not any(s in k for s in ("word_embeddings", "position_ids", "pooler"))
    }
    (word_key,) = [k for k in weights if "word_embeddings" in k]
    text["w." + word_key] = weights[word_key][used].astype(np.float16)
    cfg = json.loads((minilm_path() / "config.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    part0 = args.out / "part0"
    part0.mkdir(exist_ok=True)
    np.savez(
        part0 / "text.npz",
        pieces=pieces,
        lengths=lengths,
        used=np.array(used, np.int32),
        config=np.frombuffer(json.dumps(cfg).encode(), np.uint8),
        **text,
    )
    print(f"{len(captions)} captions, {len(used)} word pieces, longest {length}", flush=True)

    @torch.no_grad()
    def encode(items: list[dict]) -> dict[str, np.ndarray]:
        out_q, out_s = [], []
        t0 = time.time()
        for b in range(0, len(items), args.batch):
            chunk = items[b : b + args.batch]
            audio = np.zeros((len(chunk), n), np.float32)
            for j, r in enumerate(chunk):
                x, _ = load_audio(Path(r["_root"]) / r["audio"], sample_rate=sr)
                audio[j, : min(n, len(x))] = x[:n]
            z = model.audio_to_latents(torch.from_numpy(audio)).float()  # [B, C, F, T]
            q, s = quantize(z.reshape(z.shape[0], -1, z.shape[-1]).numpy())
            out_q.append(q)
            out_s.append(s)
            if b // args.batch % 20 == 0:
                print(f"  {b + len(chunk)}/{len(items)} clips, {time.time() - t0:.0f} s", flush=True)
        caps = np.full((len(items), 3), -1, np.int32)
        for j, r in enumerate(items):
            k = [index[c] for c in r["captions"][:3]]
            caps[j, : len(k)] = k
        q = np.concatenate(out_q)
        return {
            "q_xz": np.frombuffer(lzma.compress(q.tobytes(), preset=6), np.uint8),
            "q_shape": np.array(q.shape, np.int64),
            "scale": np.concatenate(out_s),
            "captions": caps,
        }

    np.savez(part0 / "valid.npz", **encode(valid))
    (part0 / "model_config.json").write_text((args.model / "config.json").read_text())
    bounds = [0, min(len(train), args.first_part)]
    while bounds[-1] < len(train):
        bounds.append(min(len(train), bounds[-1] + args.per_part))
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        part = args.out / f"part{k}"
        part.mkdir(exist_ok=True)
        np.savez(part / "latents.npz", **encode(train[a:b]))
        size = sum(f.stat().st_size for f in part.iterdir()) / 2**20
        print(f"part{k}: {b - a} train clips, {size:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
