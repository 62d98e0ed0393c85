"""A token LM generating past its window: each segment of a long clip scored, per attention window.

Beyond ``config.context`` pattern steps the KV cache slides (docs/codec_lm.md, "Relative attention"): the model
keeps generating with only the last ``context`` steps in view, as MusicGen does for clips longer than it was
trained on. Sliding happens every step, so there is no single seam to look at; this script measures what it
costs instead. The same prompts and seeds are generated ``--duration`` seconds long once per ``--contexts`` value
(e.g. the training length, 203 steps for 4 s with the delay pattern, against a window that never slides), each clip
is cut into ``--segment``-second segments, and each segment is scored against its prompt:

- ``clap``: the CLAP-style score (shipped CLAP model, cosine of segment and prompt);
- ``class``: the prompt's class among the shipped tagger's top 3 for the segment;
- ``level_db``: RMS level (dBFS); a segment under the evaluation's silence level (-60 dBFS) counts as ``silent``;
- ``flux``: mean log-mel frame-to-frame distance (how much the sound jumps from one frame to the next).

Prompts: the first caption of the split's first ``--limit`` clips that name one class (no layered scenes, whose
segments differ by design), seed = the prompt's index.

    OMP_NUM_THREADS=1 python scripts/token_lm_seam.py --model runs/token_lm_delay/model \\
        --manifest work/corpus_ld/manifest.jsonl --limit 16 --duration 12 --contexts 203 1000 --out work/lm_seam.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from soundsmith.audio import mel_spectrogram
from soundsmith.data import read_manifest
from soundsmith.errors import SoundsmithError
from soundsmith.eval.embedders import ClapEmbedder, TaggerEmbedder
from soundsmith.eval.metrics import SILENCE_DBFS, clap_score, rms_dbfs
from soundsmith.models.registry import load_model
from soundsmith.models.token_lm import frames_for_steps


def segment_figures(
    audio: np.ndarray, sr: int, prompt: str, label: str, segment_s: float, tagger, clap
) -> list[dict[str, float]]:
    """Per whole ``segment_s`` segment of ``audio`` [T] (a shorter tail is dropped): clap, class (0/1), level_db,
    silent (0/1), flux. ``sr`` must be the tagger's rate (its log-mel gives the flux)."""
    if sr != tagger.sample_rate:
        raise SoundsmithError(f"audio at {sr} Hz, the tagger's mel front end is at {tagger.sample_rate} Hz")
    size = int(round(segment_s * sr))
    segs = torch.from_numpy(np.stack([audio[i : i + size] for i in range(0, len(audio) - size + 1, size)]))
    _, logits = tagger.embed_and_logits(segs, sr)
    top3 = logits.topk(3, dim=-1).indices
    target = tagger.labels.index(label)
    scores = clap_score(clap.embed(segs, sr), clap.embed_text([prompt]).expand(len(segs), -1))
    mel = mel_spectrogram(segs, tagger.mel_cfg)  # [S, M, frames], log-mel
    flux = (mel[..., 1:] - mel[..., :-1]).abs().mean(dim=(1, 2))
    out = []
    for i, seg in enumerate(segs.numpy()):
        level = rms_dbfs(seg)
        out.append(
            {
                "clap": float(scores[i]),
                "class": float(bool((top3[i] == target).any())),
                "level_db": level,
                "silent": float(level < SILENCE_DBFS),
                "flux": float(flux[i]),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a token LM model or run directory")
    ap.add_argument("--manifest", required=True, help="annotated corpus manifest (prompts and classes)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=16, help="prompts")
    ap.add_argument("--duration", type=float, default=12.0, help="seconds per clip")
    ap.add_argument("--segment", type=float, default=2.0, help="seconds per scored segment")
    ap.add_argument(
        "--contexts", type=int, nargs="+", required=True, help="attention windows (pattern steps)"
    )
    ap.add_argument("--out", type=Path, required=True, help="JSON of every segment's figures and the means")
    args = ap.parse_args(argv)
    if not 0 < args.segment <= args.duration:
        print(
            f"error: --segment {args.segment} must be > 0 and at most --duration {args.duration}",
            file=sys.stderr,
        )
        return 1
    try:
        import soundsmith

        pipe = soundsmith.load(args.model)
        if not hasattr(pipe.model.config, "context"):
            raise SoundsmithError(f"--model {args.model}: not a token LM (it has no attention window)")
        manifest = read_manifest(args.manifest)
        rows = [r for r in manifest.split(args.split) if len(r.labels) == 1][: args.limit]
        if not rows:
            raise SoundsmithError(f"{args.manifest}: no {args.split} clip names exactly one class")
        tagger, clap = TaggerEmbedder(load_model("tagger")), ClapEmbedder(load_model("clap"))
        unknown = sorted({r.labels[0] for r in rows} - set(tagger.labels))
        if unknown:
            raise SoundsmithError(f"the shipped tagger does not know {unknown}")
        sr = pipe.sample_rate
        result: dict[str, object] = {"model": args.model, "duration": args.duration, "segment": args.segment}
        runs = {}
        config = pipe.model.config
        for context in args.contexts:
            pipe.model.config = dataclasses.replace(config, context=int(context))  # checked: >= 2 steps
            per_prompt = []
            for i, row in enumerate(rows):
                prompt = row.captions[0]
                audio = pipe(prompt, duration=args.duration, seed=i, progress=False).audio[0]
                segs = segment_figures(audio, sr, prompt, row.labels[0], args.segment, tagger, clap)
                per_prompt.append({"prompt": prompt, "label": row.labels[0], "segments": segs})
                print(f"context {context}: {i + 1}/{len(rows)}", file=sys.stderr, flush=True)
            n_seg = min(len(p["segments"]) for p in per_prompt)
            means = {
                key: [float(np.mean([p["segments"][s][key] for p in per_prompt])) for s in range(n_seg)]
                for key in ("clap", "class", "level_db", "silent", "flux")
            }
            runs[str(context)] = {"means": means, "prompts": per_prompt}
        result["runs"] = runs
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    except SoundsmithError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rate = pipe.model.frames(sr)  # codec frames per second
    c = pipe.model.config
    n_seg = len(next(iter(runs.values()))["means"]["clap"])
    spans = " | ".join(f"{i * args.segment:g}-{(i + 1) * args.segment:g} s" for i in range(n_seg))
    print(
        f"{len(rows)} prompts, {args.duration:g} s each ({rate} codec frames/s, pattern {pipe.model.config.pattern})"
    )
    print(f"| window (steps) | figure | {spans} |")
    print("|---|---|" + "---|" * n_seg)
    for context, run in runs.items():
        for key, vals in run["means"].items():
            cells = " | ".join(f"{v:.1f}" if key == "level_db" else f"{v:.3f}" for v in vals)
            slides = frames_for_steps(c.pattern, c.net.num_codebooks, int(context)) / rate
            print(f"| {context} (slides from ~{slides:.1f} s) | {key} | {cells} |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
