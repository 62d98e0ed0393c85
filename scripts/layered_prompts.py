"""Layered prompts with and without composition: generate each prompt both ways, score both (prompt-only mode).

  OMP_NUM_THREADS=2 python scripts/layered_prompts.py --model default \
      --prompts configs/prompts/free_text_layered.jsonl --out work/layered

``--toggle tune`` compares tuning held notes instead (``OUT/{tune,plain}``; the model's other settings kept):

  OMP_NUM_THREADS=1 python scripts/layered_prompts.py --model default --toggle tune \
      --prompts configs/prompts/free_text.jsonl --out work/free_tune

For every prompt of the JSONL (``prompt``, ``labels``, optional ``attributes``, ``id``) it writes
``OUT/{compose,plain}/ID.wav``, scores each folder with ``soundsmith.eval.evaluate`` (no reference: the
per-attribute adherence of the asks in the file) and prints one row per prompt (which parts the grammar found,
the class and word checks both ways) and the means, also in ``OUT/layered.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from soundsmith.errors import SoundsmithError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--toggle", choices=("compose", "tune"), default="compose", help="the setting compared")
    ap.add_argument("--figure", help="PNG: log-mel spectrograms of --figure-ids, one clip vs composed")
    ap.add_argument("--figure-ids", default="lt01,lt05,lt10")
    ap.add_argument("--figure-only", action="store_true", help="draw --figure from the WAVs already in OUT")
    args = ap.parse_args(argv)
    if args.figure_only:
        figure(Path(args.out), args.figure_ids.split(","), Path(args.figure), args.prompts)
        return 0
    try:
        import soundsmith
        from soundsmith.eval import evaluate
        from soundsmith.pipelines.compose import plan_scene

        rows = [json.loads(line) for line in Path(args.prompts).read_text().splitlines() if line.strip()]
        pipe = soundsmith.load(args.model)
        out = Path(args.out)
        scores: dict[str, dict[str, dict]] = {}
        for mode in (args.toggle, "plain"):
            folder = out / mode
            folder.mkdir(parents=True, exist_ok=True)
            listing = []
            for row in rows:
                result = pipe(
                    row["prompt"], duration=args.duration, seed=args.seed, **{args.toggle: mode != "plain"},
                    progress=False,
                )  # fmt: skip
                path = folder / f"{row['id']}.wav"
                result.save(path)
                listing.append({**row, "audio": str(path.resolve())})
            (folder / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in listing))
            metrics = evaluate(folder, None, prompts=folder / "prompts.jsonl", out_dir=folder / "eval")
            scores[mode] = {c["id"]: c for c in metrics["per_clip"]}
        table, sums = [], {m: {"adherence": 0.0, "n": 0} for m in scores}
        print(
            "| id | prompt | parts found | adherence composed | adherence plain | checks composed | checks plain |"
        )
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            plan = plan_scene(row["prompt"])
            parts = plan.describe() if plan else "(not split)"
            cells = {m: scores[m].get(row["id"], {}) for m in scores}
            for m, c in cells.items():
                sums[m]["adherence"] += float(c.get("adherence", 0.0))
                sums[m]["n"] += 1
            table.append({"id": row["id"], "prompt": row["prompt"], "parts": parts, **{
                m: {"adherence": c.get("adherence"), "checks": c.get("checks")} for m, c in cells.items()
            }})  # fmt: skip
            print(
                f"| {row['id']} | {row['prompt']} | {parts} | {cells[args.toggle].get('adherence', 0):.2f} | "
                f"{cells['plain'].get('adherence', 0):.2f} | {cells[args.toggle].get('checks')} | "
                f"{cells['plain'].get('checks')} |"
            )
        means = {m: s["adherence"] / max(1, s["n"]) for m, s in sums.items()}
        print("mean adherence: " + ", ".join(f"{m} {v:.3f}" for m, v in means.items()))
        for m in scores:  # each attribute: checks met / asked
            met: dict[str, list[int]] = {}
            for c in scores[m].values():
                for k, ok in (c.get("checks") or {}).items():
                    met.setdefault(k, [0, 0])[0] += int(bool(ok))
                    met[k][1] += 1
            print(f"{m}: " + ", ".join(f"{k} {a}/{n}" for k, (a, n) in sorted(met.items())))
        (out / "layered.json").write_text(json.dumps({"rows": table, "means": means}, indent=1))
        if args.figure:
            figure(out, args.figure_ids.split(","), Path(args.figure), args.prompts)
    except SoundsmithError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def figure(out: Path, ids: list[str], path: Path, prompts_file: str) -> None:
    """Log-mel spectrograms of the prompts ``ids``: one clip (left) and composed (right), one row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from soundsmith.audio import MelConfig, load_audio, mel_spectrogram

    prompts = {r["id"]: r["prompt"] for r in map(json.loads, Path(prompts_file).read_text().splitlines())}
    fig, axes = plt.subplots(len(ids), 2, figsize=(10, 2.2 * len(ids)), squeeze=False)
    for row, clip_id in enumerate(ids):
        for col, mode in enumerate(("plain", "compose")):
            audio, sr = load_audio(out / mode / f"{clip_id}.wav", sample_rate=16000)
            mel = mel_spectrogram(torch.from_numpy(audio)[None], MelConfig())[0].numpy()
            ax = axes[row, col]
            ax.imshow(mel, origin="lower", aspect="auto", extent=(0, len(audio) / sr, 0, mel.shape[0]))
            ax.set_title(f"{'one clip' if mode == 'plain' else 'composed'}: {prompts[clip_id]}", fontsize=8)
            ax.set_yticks([])
    for ax in axes[-1]:
        ax.set_xlabel("s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
