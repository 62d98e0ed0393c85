"""Where a model's FAD comes from: the FAD with each family's generated clips swapped for their real
clips, and the same for the decoder's ceiling (the prompts' real clips through a model's VAE + vocoder).

    OMP_NUM_THREADS=2 python scripts/fad_breakdown.py --comparison work/cmp_bedtag --model default

``--comparison`` is a folder written by ``scripts/compare_models.py``; its first model (``model0``) is
read, with the embeddings of its cache and the tagger that made them (the run's FAD is printed beside the
one recomputed). Every FAD is also given as a ratio to the FAD of the prompts' own real clips against the
same reference clips (the ``FAD / rvr`` column of the tables). ``--model`` (optional) adds the round trip of
the prompts' real clips through that model's VAE + vocoder, written again at each run to
``COMPARISON/round_trip_<name>``. ``--by-label`` swaps the events family's clips label by label (``events:bell``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from soundsmith.errors import SoundsmithError


def _text(path: Path) -> str:
    if not path.is_file():
        raise SoundsmithError(
            f"{path}: not found; is --comparison a folder written by scripts/compare_models.py?"
        )
    return path.read_text()


def breakdown(comparison: Path, model: str | None, by_label: bool = False) -> None:
    from soundsmith.data.manifest import read_manifest
    from soundsmith.eval.embedders import TaggerEmbedder
    from soundsmith.eval.frechet import frechet_distance
    from soundsmith.eval.generation_quality import round_trip_set
    from soundsmith.eval.runner import embed_files, load_eval_model

    metrics = json.loads(_text(comparison / "model0" / "eval" / "metrics.json"))
    run = json.loads(_text(comparison / "comparison.json"))
    embedder = TaggerEmbedder(load_eval_model(run.get("config", {}).get("tagger") or "tagger", "tagger"))
    made_with = metrics.get("info", {}).get("embedder")
    if made_with != embedder.name:
        raise SoundsmithError(
            f"{comparison}: its FAD was computed with {made_with}, the tagger loaded now is {embedder.name}; "
            "run scripts/compare_models.py again with the current tagger"
        )
    prompts = _text(comparison / "model0" / "prompts.jsonl").splitlines()
    generated = {
        r["id"]: comparison / "model0" / r["audio"] for r in map(json.loads, filter(str.strip, prompts))
    }
    real_set = read_manifest(comparison / "real" / "clips.jsonl")
    by_id = {r.id: r for r in real_set}
    clips = [c["id"] for c in metrics["per_clip"]]
    ids = [c.rsplit("#s", 1)[0] for c in clips]
    missing = sorted({i for i in ids if i not in by_id} | {c for c in clips if c not in generated})
    if missing:
        raise SoundsmithError(
            f"{comparison}: no generated or real clip for {len(missing)} prompts ({missing[0]}, ...)"
        )
    real_rows = [by_id[i] for i in ids]
    families = [r.meta.get("family", "?") for r in real_rows]
    if by_label:  # a clip of one sound event is grouped by its label ("events:bell"), the rest by family
        families = [
            f"{f}:{r.labels[0]}" if f == "events" and len(r.labels) == 1 else f for f, r in zip(families, real_rows)
        ]
    reference = read_manifest(comparison / "reference.jsonl")
    ref_paths = [r.audio_path(reference.root) for r in reference]

    def emb(paths: list[Path]) -> np.ndarray:
        return embed_files(paths, embedder, comparison / "cache", desc="embedding", windows=False)["emb"]

    ref, real = emb(ref_paths), emb([r.audio_path(real_set.root) for r in real_rows])
    baseline = frechet_distance(real, ref)

    def line(name: str, clips_emb: np.ndarray, reported: float | None = None) -> None:
        fad = frechet_distance(clips_emb, ref)
        said = f"; the run's: {reported:.1f}" if reported is not None else ""
        out = [f"{name}: FAD {fad:.1f} ({fad / baseline:.2f}x{said})"]
        for fam in sorted(set(families)):
            swap = clips_emb.copy()
            idx = [k for k, f in enumerate(families) if f == fam]
            swap[idx] = real[idx]
            out.append(f"{fam} real ({len(idx)}): {frechet_distance(swap, ref) / baseline:.2f}x")
        print(" | ".join(out))

    print(f"real clips of the {len(ids)} prompts: FAD {baseline:.1f} (1.00x), against {len(ref_paths)} clips")
    reported = next((m.get("fad") for m in run.get("models", [])[:1]), None)
    line("generated", emb([generated[c] for c in clips]), reported)
    if model:
        import soundsmith

        pipe = soundsmith.load(model)
        if not hasattr(pipe, "round_trip"):
            raise SoundsmithError(
                f"{model}: its pipeline has no VAE + vocoder round trip; name a latent model"
            )
        trip = read_manifest(
            round_trip_set(pipe, real_rows, real_set.root, comparison / f"round_trip_{Path(model).name}")
        )
        line(f"real clips through {model}'s VAE + vocoder", emb([r.audio_path(trip.root) for r in trip]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comparison", required=True, help="a scripts/compare_models.py output folder")
    ap.add_argument("--model", default=None, help="model whose VAE + vocoder round trip is scored too")
    ap.add_argument("--by-label", action="store_true", help="events swapped by their label (bell, buzzer, ...)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    args = ap.parse_args(argv)
    try:
        breakdown(Path(args.comparison), args.model, args.by_label)
    except (SoundsmithError, OSError, KeyError, ValueError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
