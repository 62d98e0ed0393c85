"""Figures of a spoken-word recognizer (docs/evaluation.md): seen / unseen voices, confusion matrix, fixed sample.

  python scripts/keyword_figures.py --model models/keyword --data work/keyword --json work/keyword_figures.json
  python scripts/keyword_figures.py --model models/keyword --sample   # writes docs/keyword_figures.json

``--data`` is the folder written by scripts/keyword_data.py: ``train.jsonl`` split ``test`` holds clips of the
training voices saying words in (word, voice) pairs that training never heard, ``unseen.jsonl`` the voices held
out from training altogether.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from soundsmith.data.manifest import read_manifest
from soundsmith.eval.recognizer import (
    SAMPLE_SEED,
    figures_from_predictions,
    fixed_sample,
    predict,
    recognizer_figures,
)
from soundsmith.models.registry import load_model, read_model_config, resolve_model_dir

DOCS = Path(__file__).resolve().parents[1] / "docs" / "keyword_figures.json"


def markdown_confusion(fig: dict) -> str:
    classes = [c if c != "<no word>" else "none" for c in fig["classes"]]
    lines = ["| target \\ predicted | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
    for name, row in zip(classes, fig["confusion"]):
        lines.append(f"| {name} | " + " | ".join(str(v) if v else "." for v in row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/keyword")
    ap.add_argument("--data", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--sample", action="store_true")
    args = ap.parse_args()
    model = load_model(args.model)
    if args.sample:
        clips, targets = fixed_sample()
        preds = predict(model, clips)
        fig = figures_from_predictions(targets, preds, model.classes)
        meta = read_model_config(resolve_model_dir(args.model))
        weights = resolve_model_dir(args.model) / "model.safetensors"
        extra = {k: v for k, v in (meta.get("extra") or {}).items() if k != "run"}
        out = {
            "seed": SAMPLE_SEED,
            "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "model_extra": extra,
            "predictions": preds,
            "targets": targets,
            **fig,
        }
        DOCS.write_text(json.dumps(out, indent=1) + "\n")
        print(f"fixed sample: accuracy {fig['accuracy']:.3f} ({fig['n']} clips) -> {DOCS}")
        return
    results = {}
    for name, manifest, split in (
        ("seen_voices_heldout_pairs", "train.jsonl", "test"),
        ("seen_voices_valid", "train.jsonl", "valid"),
        ("unseen_voices", "unseen.jsonl", "test"),
    ):
        if not any(r.split == split for r in read_manifest(Path(args.data) / manifest)):
            print(f"{name}: no {split} rows in {manifest} (no voices held out)")
            continue
        t0 = time.perf_counter()
        fig = recognizer_figures(model, Path(args.data) / manifest, split)
        results[name] = fig
        f4 = {
            k: "n/a" if fig[k] is None else f"{fig[k]:.4f}"
            for k in ("accuracy", "word_accuracy", "no_word_accuracy")
        }
        print(
            f"{name}: accuracy {f4['accuracy']} (n={fig['n']}), words {f4['word_accuracy']} "
            f"(n={fig['n_words']}), no word {f4['no_word_accuracy']} (n={fig['n_no_word']}), "
            f"per family {fig['per_family']} [{time.perf_counter() - t0:.0f} s]"
        )
    if "unseen_voices" in results:
        print("\nconfusion, unseen voices:\n" + markdown_confusion(results["unseen_voices"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
