"""What the autoencoders keep: vocoder alone and VAE + vocoder against Griffin-Lim (64 iterations), same clips.

On a manifest's test split (clips not trained on), for each method: multi-resolution STFT distance and log-mel
L1 to the source (lower is better); pitch kept on tonal clips (pYIN, read finely by YIN, on source and reconstruction, per clip the
median |cents| over frames voiced in both; median over clips and % of clips within 25 cents, also without the
chords, whose notes sound together, and % of those clips' notes within 25 cents, each note's median read within
its own span of the manifest's note events); onsets kept
(the evaluation's event counter, `count_events`, equal on source and reconstruction, on the events family;
librosa's spectral-flux onsets until 2026-11-27); loudness (|LUFS difference|, % within 1 LU);
FAD on the shipped tagger's embeddings against as many valid-split clips (test-split clips when ``--split
valid``: a split is no reference for itself), with the sources' own FAD against them as the real-vs-real baseline; words kept (the shipped spoken-word recognizer, models/keyword, on the speech
clips: % recognised as the clip's word, against its accuracy on the originals).
With ``--codec MODEL``, the codec's round trip at each ``--codec-n-q`` count of codebooks joins the table (issue 14:
the codec against the mel VAE + vocoder path, same clips and figures), with each codebook's usage on the same
clips (perplexity ``exp(entropy)`` of its code histogram, and codes used) and the bitrate.
The frame-rate buzz (``frame_rate_buzz``: the share of 50-450 Hz energy on the lines at 100, 200, 300 and 400 Hz
that a vocoder whose frames repeat adds; docs/autoencoders.md, "The frame-rate buzz") of every method and of the
sources. ``--families`` and ``--methods`` pick the clips and the rows; ``--clips-out`` writes one JSON line per
clip with each method's readings (per-note cents, onsets, mel L1, buzz) for a breakdown by register or source.
Prints a markdown table and writes JSON.

    python scripts/autoencoder_figures.py --data work/corpus_ae/manifest.jsonl --per-family 25 --out work/ae_figures.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from soundsmith.audio import load_audio, measure_loudness
from soundsmith.data import read_manifest
from soundsmith.eval.attributes import count_events
from soundsmith.eval.embedders import TaggerEmbedder
from soundsmith.eval.frechet import frechet_distance
from soundsmith.eval.pitch import track_pitch
from soundsmith.eval.recognizer import predict
from soundsmith.eval.reconstruction import frame_rate_buzz, mel_l1, multi_resolution_stft_distance
from soundsmith.pipelines.reconstruct import DEFAULT_REFINE, Reconstructor

ROOT = Path(__file__).resolve().parents[1]
TONAL_FAMILIES = ("instruments", "events")
METHOD_KEYS = {  # --methods: the table's rows
    "griffin-lim": "Griffin-Lim 64",
    "vocoder": "vocoder",
    "vae": "VAE + vocoder",
    "vocoder-own-level": "vocoder, own level",
    "vae-own-level": "VAE + vocoder, own level",
    "vae-griffin-lim": "VAE + Griffin-Lim 64",
}


def is_tonal(row) -> bool:
    """One pitched event and nothing else (no background): a note, a phrase, a beep or a tone."""
    events = row.meta.get("events", [])
    return row.meta.get("family") in TONAL_FAMILIES and len(events) == 1 and "midi_pitch" in events[0]


def is_chord(row) -> bool:
    """A tonal clip whose notes sound together: no one pitch for pYIN to read (it reads their common
    subharmonic or a note of its choosing, Griffin-Lim's round trip included)."""
    return row.meta.get("events", [{}])[0].get("phrase") == "chord"


def spoken_word(row) -> str | None:
    """The clip's one spoken word (``speech_<word>`` label), else None."""
    spoken = [lb[len("speech_") :] for lb in row.labels if lb.startswith("speech_")]
    return spoken[0] if len(spoken) == 1 else None


def clip_notes(row) -> list[tuple[float, float]]:
    """The ``(onset, offset)`` seconds of each note a tonal clip plays: its phrase's note events, else its one
    event (a held note, a tone, a buzz; a beep or bell clip's strikes share one pitch and count as one note)."""
    event = row.meta["events"][0]
    return [(float(a), float(b)) for a, b, _ in event.get("note_events", [])] or [
        (float(event["onset"]), float(event["offset"]))
    ]


def pitch_errors(
    src: np.ndarray, rec: np.ndarray, sr: int, notes: list[tuple[float, float]]
) -> tuple[float, list[float]]:
    """The clip's median |1200 log2(f_rec / f_src)| over frames voiced and sounding in both, and the same within
    each ``notes`` window (the issue's target counts notes); NaN where no frame qualifies. Each f0 is read finely
    (``track_pitch(..., fine=True)``): pYIN's own grid is 25 cents, the target's step."""
    a, b = track_pitch(src, sr, fine=True), track_pitch(rec, sr, fine=True)
    n = min(a.f0_hz.size, b.f0_hz.size)
    fa, fb = a.f0_hz[:n], b.f0_hz[:n]
    both = np.isfinite(fa) & np.isfinite(fb) & a.active[:n]
    cents = np.full(n, np.nan)
    cents[both] = np.abs(1200 * np.log2(fb[both] / fa[both]))
    t = np.arange(n) * a.hop_s

    def median(mask: np.ndarray) -> float:
        return float(np.median(cents[mask])) if mask.any() else math.nan

    return median(both), [median(both & (t >= on) & (t < off)) for on, off in notes]


def onset_count(audio: np.ndarray, sr: int) -> int:
    return count_events(audio, sr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-family", type=int, default=25, help="clips per corpus family")
    parser.add_argument("--vocoder", default="vocoder")
    parser.add_argument("--vae", default="vae")
    parser.add_argument("--codec", default=None, help="a codec model or run directory to compare as well")
    parser.add_argument(
        "--codec-n-q", type=int, nargs="+", default=[8, 4], help="codebook counts for --codec"
    )
    parser.add_argument(
        "--refine", type=int, default=DEFAULT_REFINE, help="rounds of the vocoder's refinement (its rows)"
    )
    parser.add_argument(
        "--families", nargs="+", default=None, help="corpus families to take clips from (default: every one)"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=sorted(METHOD_KEYS),
        default=None,
        help="methods to run (default: every one); the sources are always measured",
    )
    parser.add_argument(
        "--clips-out", type=Path, default=None, help="also write one JSON line per clip: its readings per method"
    )
    parser.add_argument("--out", type=Path, default=Path("work/ae_figures.json"))
    args = parser.parse_args()

    rounds = {"refine": args.refine}
    alone = Reconstructor.load(vocoder=args.vocoder, vae=None, **rounds)  # its mel front end is every method's
    methods = {
        "Griffin-Lim 64": Reconstructor.load(vocoder="griffin-lim", vae=None),
        "vocoder": alone,
        "VAE + vocoder": Reconstructor.load(vocoder=args.vocoder, vae=args.vae, **rounds),
        # refined as the rows above, but left at the vocoder's own level (no match_mel_level)
        "vocoder, own level": Reconstructor.load(vocoder=args.vocoder, vae=None, level_match=False, **rounds),
        "VAE + vocoder, own level": Reconstructor.load(
            vocoder=args.vocoder, vae=args.vae, level_match=False, **rounds
        ),
        "VAE + Griffin-Lim 64": Reconstructor.load(vocoder="griffin-lim", vae=args.vae),
    }
    if args.methods is not None:
        keep = {METHOD_KEYS[k] for k in args.methods}
        methods = {name: rec for name, rec in methods.items() if name in keep}
    mel_cfg = alone.mel_config
    sr = mel_cfg.sample_rate
    codec = None
    if args.codec is not None:
        from soundsmith.pipelines.codec import check_n_q, load_codec, round_trip

        codec = load_codec(args.codec)
        for n_q in args.codec_n_q:
            check_n_q(codec, n_q)
        if codec.config.sample_rate != sr:
            raise SystemExit(
                f"--codec {args.codec}: {codec.config.sample_rate} Hz, the mel path's is {sr} Hz"
            )
        for n_q in args.codec_n_q:
            name = f"codec, {n_q} codebooks ({codec.config.bitrate(n_q) / 1000:g} kbit/s)"
            methods[name] = lambda audio, rate, n_q=n_q: round_trip(codec, audio, n_q)
        codes_seen: list[torch.Tensor] = []
    manifest = read_manifest(args.data)
    by_family: dict[str, list] = defaultdict(list)
    for row in manifest.split(args.split):
        if args.families is not None and row.meta.get("family") not in args.families:
            continue
        if len(by_family[row.meta.get("family", "?")]) < args.per_family:
            by_family[row.meta.get("family", "?")].append(row)
    rows = [r for rs in by_family.values() for r in rs]
    print(
        f"{len(rows)} {args.split} clips ({', '.join(f'{k} {len(v)}' for k, v in sorted(by_family.items()))})"
    )

    from soundsmith.models.registry import load_model

    embedder = TaggerEmbedder(load_model("tagger"))
    ref_split = "test" if args.split == "valid" else "valid"
    ref_rows = [
        r
        for f in by_family
        for r in [x for x in manifest.split(ref_split) if x.meta.get("family") == f][: len(by_family[f])]
    ]
    reference = torch.cat(
        [
            embedder.embed(torch.tensor(load_audio(r.audio_path(manifest.root), sample_rate=sr)[0])[None], sr)
            for r in ref_rows
        ]
    )  # FAD reference: as many clips of the other held-out split per family, never reconstructed
    embeddings: dict[str, list[torch.Tensor]] = defaultdict(list)
    keyword = load_model("keyword") if (ROOT / "models" / "keyword" / "config.json").is_file() else None
    words: dict[str, list[float]] = defaultdict(list)  # word recognised == the clip's word, per method
    per = {m: defaultdict(list) for m in methods}
    clip_lines: list[str] = []
    buzz_src: list[float] = []  # the sources' own share at the frame rate's lines (a recording seldom has any)
    seconds = {m: 0.0 for m in methods}
    for i, row in enumerate(rows):
        src, _ = load_audio(row.audio_path(manifest.root), sample_rate=sr)
        src_loud = measure_loudness(src, sr)
        tonal = is_tonal(row)
        onsets_src = onset_count(src, sr) if row.meta.get("family") == "events" else None
        embeddings["source"].append(embedder.embed(torch.tensor(src)[None], sr))
        buzz_src.append(frame_rate_buzz(src, sr, mel_cfg.hop_length))
        if codec is not None:
            codes_seen.append(codec.encode(torch.from_numpy(src)[None])[0])  # [n_q, frames]
        word = spoken_word(row) if keyword is not None else None
        clip = {"audio": row.audio, "caption": (row.captions or [""])[0], "meta": row.meta, "onsets_source": onsets_src}
        if word is not None:
            words["source"].append(float(predict(keyword, [src])[0] == word))
        for name, rec in methods.items():
            t0 = time.perf_counter()
            out = rec(src, sr)
            seconds[name] += time.perf_counter() - t0
            e, r = torch.tensor(out)[None], torch.tensor(src)[None]
            embeddings[name].append(embedder.embed(e, sr))
            if word is not None:
                words[name].append(float(predict(keyword, [out])[0] == word))
            per[name]["mrstft"].append(float(multi_resolution_stft_distance(e, r)[0]))
            per[name]["mel_l1"].append(float(mel_l1(e, r, mel_cfg)[0]))
            loud = measure_loudness(out, sr)
            if math.isfinite(loud) and math.isfinite(src_loud):
                per[name]["loudness_diff"].append(abs(loud - src_loud))
            per[name]["buzz"].append(frame_rate_buzz(out, sr, mel_cfg.hop_length))
            reading: dict = {"mel_l1": per[name]["mel_l1"][-1], "buzz": per[name]["buzz"][-1]}
            if tonal:
                cents, notes = pitch_errors(src, out, sr, [] if is_chord(row) else clip_notes(row))
                per[name]["cents"].append(cents)
                reading["cents"], reading["chord"] = cents, is_chord(row)
                if not is_chord(row):
                    per[name]["cents_single"].append(cents)
                    per[name]["cents_notes"].extend(notes)
                    reading["cents_notes"] = notes
            if onsets_src is not None:
                reading["onsets"] = onset_count(out, sr)
                per[name]["onsets_equal"].append(float(reading["onsets"] == onsets_src))
            clip[name] = reading
        clip_lines.append(json.dumps(clip, allow_nan=True) + "\n")
        if (i + 1) % 20 == 0:
            print(f"  {i + 1}/{len(rows)} clips", flush=True)

    audio_s = len(rows) * 4.0
    fad = {k: frechet_distance(torch.cat(v).double(), reference.double()) for k, v in embeddings.items()}
    print(
        f"FAD (tagger embeddings) of the {args.split} sources against {len(ref_rows)} {ref_split} clips: "
        f"{fad['source']:.3f}"
    )
    table = {}
    for name, vals in per.items():
        cents = np.array([c for c in vals["cents"] if math.isfinite(c)])
        single = np.array([c for c in vals["cents_single"] if math.isfinite(c)])  # chords left out
        notes = np.array([c for c in vals["cents_notes"] if math.isfinite(c)])  # their notes, one by one
        table[name] = {
            "mrstft": float(np.mean(vals["mrstft"])),
            "mel_l1": float(np.mean(vals["mel_l1"])),
            "frame_rate_buzz_median": float(np.median(vals["buzz"])),
            "pitch_median_cents": float(np.median(cents)) if cents.size else math.nan,
            "pitch_within_25_cents_pct": float(100 * np.mean(cents <= 25)) if cents.size else math.nan,
            "pitch_clips": int(cents.size),
            "pitch_single_within_25_cents_pct": float(100 * np.mean(single <= 25)) if single.size else math.nan,
            "pitch_single_clips": int(single.size),
            "pitch_notes_within_25_cents_pct": float(100 * np.mean(notes <= 25)) if notes.size else math.nan,
            "pitch_notes": int(notes.size),
            "pitch_notes_unread": len(vals["cents_notes"]) - int(notes.size),
            "onsets_equal_pct": float(100 * np.mean(vals["onsets_equal"]))
            if vals["onsets_equal"]
            else math.nan,
            "onset_clips": len(vals["onsets_equal"]),
            "loudness_median_abs_lu": float(np.median(vals["loudness_diff"])),
            "loudness_within_1_lu_pct": float(100 * np.mean(np.array(vals["loudness_diff"]) <= 1.0)),
            "x_realtime": audio_s / max(seconds[name], 1e-9),
            "fad": fad[name],
            "fad_ratio_to_real": fad[name] / max(fad["source"], 1e-12),
            "word_accuracy_pct": float(100 * np.mean(words[name])) if words[name] else math.nan,
            "word_clips": len(words[name]),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    word_src = float(100 * np.mean(words["source"])) if words["source"] else math.nan
    print(
        f"spoken-word recognizer on the {len(words['source'])} original speech clips: {word_src:.0f}% correct"
    )
    summary = {
        "clips": len(rows),
        "split": args.split,
        "fad_real_vs_real": fad["source"],
        "word_accuracy_originals_pct": word_src,
        "frame_rate_buzz_median_sources": float(np.median(buzz_src)),
        "methods": table,
    }
    if codec is not None:
        codes = torch.cat(codes_seen, dim=1)  # [n_q, all frames]
        usage = []
        for k, row in enumerate(codes):
            counts = torch.bincount(row, minlength=codec.config.codebook_size).double()
            p = counts[counts > 0] / counts.sum()
            usage.append({"perplexity": float(torch.exp(-(p * p.log()).sum())), "codes_used": int(p.numel())})
            print(f"codebook {k + 1}: perplexity {usage[-1]['perplexity']:.1f}, {p.numel()} codes used")
        summary["codec"] = {
            "model": str(args.codec),
            "codebook_size": codec.config.codebook_size,
            "usage": usage,
        }
    args.out.write_text(json.dumps(summary, indent=2))
    if args.clips_out is not None:
        args.clips_out.parent.mkdir(parents=True, exist_ok=True)
        args.clips_out.write_text("".join(clip_lines))
    print()
    print(
        "| method | MR-STFT | mel L1 | pitch median cents | pitch <= 25 c | onsets equal | loudness median LU "
        "| <= 1 LU | FAD (x real) | words | frame-rate buzz |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, t in table.items():
        print(
            f"| {name} | {t['mrstft']:.3f} | {t['mel_l1']:.3f} | {t['pitch_median_cents']:.1f} "
            f"| {t['pitch_within_25_cents_pct']:.0f}% (n={t['pitch_clips']}; no chords "
            f"{t['pitch_single_within_25_cents_pct']:.0f}%, n={t['pitch_single_clips']}; notes "
            f"{t['pitch_notes_within_25_cents_pct']:.0f}%, n={t['pitch_notes']}) | {t['onsets_equal_pct']:.0f}% "
            f"(n={t['onset_clips']}) | {t['loudness_median_abs_lu']:.2f} | {t['loudness_within_1_lu_pct']:.0f}% "
            f"| {t['fad']:.2f} ({t['fad_ratio_to_real']:.1f}x) | {t['word_accuracy_pct']:.0f}% (n={t['word_clips']}) "
            f"| {t['frame_rate_buzz_median']:.3f} |"
        )
    print(f"frame-rate buzz of the sources (median): {summary['frame_rate_buzz_median_sources']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
