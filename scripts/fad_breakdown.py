"""Where a model's FAD comes from: per family, what the FAD would be if that family's generated clips were its real
clips, and the decoder's ceiling (the prompts' real clips through the model's own VAE + vocoder).

    OMP_NUM_THREADS=2 python scripts/fad_breakdown.py --comparison work/cmp_bedtag --model default

``--comparison`` is a folder written by ``scripts/compare_models.py`` (its first model, ``model0``, is read; the
embeddings come from its cache, so the FAD is the one its table reports). Every FAD is divided by the FAD of the
prompts' own real clips against the same reference clips (the ``FAD / rvr`` column of the tables). ``--model``
(optional) adds the round trip of the prompts' real clips through that model's VAE + vocoder, written to
``COMPARISON/round_trip_<name>`` (once; later runs read the WAVs), with the same replacement per family.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comparison", required=True, help="a scripts/compare_models.py output folder")
    ap.add_argument("--model", default=None, help="model whose VAE + vocoder round trip is scored too")
    args = ap.parse_args(argv)

    from soundsmith.audio.io import load_audio, save_audio
    from soundsmith.eval.embedders import TaggerEmbedder
    from soundsmith.eval.frechet import frechet_distance
    from soundsmith.eval.runner import embed_files, load_eval_model

    out = Path(args.comparison)
    metrics = json.loads((out / "model0" / "eval" / "metrics.json").read_text())
    comparison = json.loads((out / "comparison.json").read_text())
    tagger_dir = comparison.get("config", {}).get("tagger") or "tagger"
    embedder = TaggerEmbedder(load_eval_model(tagger_dir, "tagger"))
    real_rows = _rows(out / "real" / "clips.jsonl")
    real_root = out / "real"
    by_id = {r["meta"]["id"]: r for r in real_rows}
    clips = metrics["per_clip"]
    ids = [c["id"].split("#")[0] for c in clips]
    missing = [i for i in ids if i not in by_id]
    if missing:
        print(
            f"error: {len(missing)} generated clips have no real clip in {real_root / 'clips.jsonl'}",
            file=sys.stderr,
        )
        return 1
    families = [by_id[i]["meta"].get("family", "?") for i in ids]
    real_paths = [(real_root / by_id[i]["audio"]).resolve() for i in ids]
    ref_paths = [(out / r["audio"]).resolve() for r in _rows(out / "reference.jsonl")]
    cache = out / "cache"

    def emb(paths: list[Path]) -> np.ndarray:
        return embed_files(paths, embedder, cache, desc="embedding", windows=False)["emb"]

    ref, real = emb(ref_paths), emb(real_paths)
    baseline = frechet_distance(real, ref)

    def table(name: str, gen: np.ndarray) -> None:
        line = [
            f"{name}: FAD {frechet_distance(gen, ref):.1f} ({frechet_distance(gen, ref) / baseline:.2f}x)"
        ]
        for fam in sorted(set(families)):
            swap = gen.copy()
            idx = [k for k, f in enumerate(families) if f == fam]
            swap[idx] = real[idx]
            line.append(f"{fam} real ({len(idx)}): {frechet_distance(swap, ref) / baseline:.2f}x")
        print(" | ".join(line))

    print(
        f"real clips of the {len(ids)} prompts: FAD {baseline:.1f} (1.00x), against {len(ref_paths)} reference clips"
    )
    table("generated", emb([Path(c["audio"]).resolve() for c in clips]))
    if args.model:
        import soundsmith

        pipe = soundsmith.load(args.model)
        folder = out / f"round_trip_{Path(args.model).name}"
        folder.mkdir(parents=True, exist_ok=True)
        trip_paths = []
        for i, path in zip(ids, real_paths):
            target = folder / f"{i}.wav"
            if not target.is_file():
                audio, _ = load_audio(path, sample_rate=pipe.sample_rate)
                save_audio(target, pipe.round_trip(audio), pipe.sample_rate)
            trip_paths.append(target)
        table(f"real clips through {args.model}'s VAE + vocoder", emb(trip_paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
