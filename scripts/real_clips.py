"""Real recordings from Debian packages, labelled with the corpus' classes, and the shipped tagger scored on them.

The clips come from packages the corpus does NOT use (so they stay unseen after retraining on the new corpus):
OpenTTD's OpenSFX (openttd-opensfx: field recordings, CC0/CC-BY), the freedesktop sound theme
(sound-theme-freedesktop), sound-icons, and freepats (GUS patches of sampled instruments). Each clip is the
loudest 4 s window (instruments: one note of the patch nearest A4, looped to 1.5 s), mono 16 kHz, at -26 LUFS.

Usage (Debian: apt-get install openttd-opensfx sound-theme-freedesktop sound-icons freepats):
    python scripts/real_clips.py --out /tmp/real_clips            # writes audio/ + manifest.jsonl, scores the
                                                                  # tagger and the CLAP-style model (--tagger/--clap DIR)
"""

from __future__ import annotations

import argparse
import json
import os
import struct
from pathlib import Path

import numpy as np

SR = 16000
SECONDS = 4.0
LOUDNESS_LUFS = -26.0  # the middle of the corpus' event loudness range, so level is not what differs
FREEDESKTOP = "/usr/share/sounds/freedesktop/stereo"
SOUND_ICONS = "/usr/share/sounds/sound-icons"
FREEPATS = "/usr/share/midi/freepats/Tone_000"
# (label, origin, what): origin "opensfx:N", "file:PATH" or "pat:PATH"
CLIPS: tuple[tuple[str, str], ...] = (
    ("wind", "opensfx:52"),
    ("wind", "opensfx:57"),
    ("bird_chirps", "opensfx:66"),
    ("bird_chirps", "opensfx:72"),
    ("bird_chirps", f"file:{SOUND_ICONS}/canary-long.wav"),
    ("engine_hum", "opensfx:25"),
    ("engine_hum", "opensfx:27"),
    ("engine_hum", "opensfx:28"),
    ("beeps", "opensfx:21"),
    ("beeps", "opensfx:22"),
    ("bell", "opensfx:14"),
    ("bell", f"file:{FREEDESKTOP}/bell.oga"),
    ("bell", f"pat:{FREEPATS}/014_Tubular_Bells.pat"),
    ("piano", f"file:{SOUND_ICONS}/piano-3.wav"),
    ("piano", f"pat:{FREEPATS}/000_Acoustic_Grand_Piano.pat"),
    ("acoustic_guitar", f"file:{SOUND_ICONS}/guitar-12.wav"),
    ("acoustic_guitar", f"file:{SOUND_ICONS}/guitar-13.wav"),
    ("acoustic_guitar", f"pat:{FREEPATS}/024_Nylon_Guitar.pat"),
    ("trumpet", f"file:{SOUND_ICONS}/trumpet-1.wav"),
    ("trumpet", f"file:{SOUND_ICONS}/trumpet-12.wav"),
    ("trumpet", f"pat:{FREEPATS}/056_Trumpet.pat"),
    ("organ", f"pat:{FREEPATS}/019_Church_Organ.pat"),
    ("violin", f"pat:{FREEPATS}/040_Violin.pat"),
    ("cello", f"pat:{FREEPATS}/042_Cello.pat"),
    ("harp", f"pat:{FREEPATS}/046_Harp.pat"),
    ("saxophone", f"pat:{FREEPATS}/065_Alto_Sax.pat"),
    ("clarinet", f"pat:{FREEPATS}/071_Clarinet.pat"),
    ("flute", f"pat:{FREEPATS}/073_Flute.pat"),
    ("bass", f"pat:{FREEPATS}/032_Acoustic_Bass.pat"),
    ("bass", f"pat:{FREEPATS}/033_Finger_Bass.pat"),
    # classes added with issue 16: unknown to the shipped tagger (reported apart)
    ("applause", "opensfx:29"),
    ("helicopter", "opensfx:24"),
    ("telephone_ring", f"file:{FREEDESKTOP}/phone-incoming-call.oga"),
)


def read_pat(path: str) -> tuple[np.ndarray, int]:
    """One note of a Gravis Ultrasound patch: the sample whose root frequency is nearest A4, its loop repeated
    to 1.5 s, then a 0.3 s fade. Header layout: 129 + 63 + 47 bytes, then per sample 96 bytes + data."""
    data = open(path, "rb").read()
    if not data.startswith(b"GF1PATCH"):
        raise ValueError(f"{path}: not a GUS patch")
    pos = 129 + 63 + 47
    n_samples = data[129 + 63 + 6]
    best = None
    for _ in range(n_samples):
        length, loop_start, loop_end = struct.unpack_from("<III", data, pos + 8)
        rate = struct.unpack_from("<H", data, pos + 20)[0]
        root = struct.unpack_from("<I", data, pos + 30)[0] / 1000.0
        modes = data[pos + 55]
        raw = data[pos + 96 : pos + 96 + length]
        if modes & 1:
            x = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<u2" if modes & 2 else "<i2").astype(
                np.float64
            )
            x = (x - 32768.0 if modes & 2 else x) / 32768.0
            loop_start, loop_end = loop_start // 2, loop_end // 2
        else:
            x = np.frombuffer(raw, dtype=np.uint8 if modes & 2 else np.int8).astype(np.float64)
            x = (x - 128.0 if modes & 2 else x) / 128.0
        score = abs(np.log2(max(root, 1.0) / 440.0))
        if best is None or score < best[0]:
            best = (score, x, rate, loop_start, loop_end, bool(modes & 4))
        pos += 96 + length
    _, x, rate, a, b, looped = best
    if looped and 0 <= a < b <= x.shape[0] and b - a > 16:
        reps = int(np.ceil(max(1.5 * rate - x.shape[0], 0) / (b - a)))
        x = np.concatenate([x[:b], np.tile(x[a:b], reps)])[: int(1.5 * rate)]
    fade = min(int(0.3 * rate), x.shape[0])
    x = x.copy()
    x[-fade:] *= np.linspace(1, 0, fade)
    return x.astype(np.float32), rate


def load_clip(origin: str) -> tuple[np.ndarray, str]:
    """Mono float32 ``[T]`` at 16 kHz (the loudest 4 s window) and a description of where it comes from."""
    import soundfile as sf

    from soundsmith.audio import resample
    from soundsmith.data.synth.dsp import set_loudness
    from soundsmith.data.synth.measure import opensfx_sound

    kind, ref = origin.split(":", 1)
    if kind == "opensfx":
        audio, sr, name = opensfx_sound(int(ref))
        what = f"openttd-opensfx #{ref}: {name.split('.')[0]}"
    elif kind == "pat":
        audio, sr = read_pat(ref)
        what = f"freepats {os.path.basename(ref)}"
    else:
        data, sr = sf.read(ref, dtype="float32", always_2d=True)
        audio, what = data.mean(axis=1), f"{Path(ref).parent.name}/{Path(ref).name}"
    x = np.asarray(resample(np.asarray(audio, dtype=np.float32), sr, SR), dtype=np.float32)
    n = int(SECONDS * SR)
    if x.shape[0] > n:  # the loudest window, hop 0.1 s
        energy = np.convolve(x**2, np.ones(n), mode="valid")[:: SR // 10]
        start = int(np.argmax(energy)) * (SR // 10)
        x = x[start : start + n]
    return set_loudness(x.astype(np.float64), SR, LOUDNESS_LUFS)[0], what


def build(out: Path) -> Path:
    """Write ``out/audio/*.wav`` and ``out/manifest.jsonl`` (labels, meta.source); skips missing packages."""
    from soundsmith.audio import save_audio

    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (label, origin) in enumerate(CLIPS):
        try:
            audio, what = load_clip(origin)
        except (OSError, ValueError) as err:
            print(f"skip {origin}: {err}")
            continue
        rel = f"audio/real_{i:03d}_{label}.wav"
        save_audio(out / rel, audio, SR)
        meta = {"id": f"real-{i:03d}", "family": "real", "source": what}
        rows.append({"audio": rel, "captions": [label.replace("_", " ")], "labels": [label],
                     "duration": audio.shape[0] / SR, "sample_rate": SR, "split": "test", "meta": meta})  # fmt: skip
    path = out / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _crops(manifest: Path, sample_rate: int) -> tuple[list, list]:
    """(rows, batches of the first 4 s of each clip, as tagger_figures crops)."""
    from soundsmith.data import read_manifest
    from soundsmith.eval.evaluators import crop_batches

    m = read_manifest(manifest)
    rows = list(m)
    paths = [r.audio_path(m.root) for r in rows]
    return rows, list(crop_batches(paths, sample_rate, SECONDS, 16, "real", False))


def score_tagger(manifest: Path, tagger: str = "tagger") -> list[dict]:
    """Top-1 / top-5 of a tagger (a model directory or the shipped name) per clip."""
    import torch

    from soundsmith.eval.embedders import TaggerEmbedder, load_eval_model

    embedder = TaggerEmbedder(load_eval_model(tagger, "tagger"))
    rows, batches = _crops(manifest, embedder.sample_rate)
    scores = torch.cat([embedder.embed_and_logits(b, embedder.sample_rate)[1] for b in batches])
    out = []
    for row, s in zip(rows, scores):
        top = [embedder.labels[int(i)] for i in torch.topk(s, 5).indices]
        label = row.labels[0]
        out.append({"label": label, "source": row.meta["source"], "known": label in embedder.labels,
                    "top1": top[0] == label, "top5": label in top, "predicted": top[:3]})  # fmt: skip
    return out


def score_clap(manifest: Path, clap: str = "clap") -> dict:
    """Zero-shot figures of a CLAP-style model on the real clips, with the class names as the texts.

    Audio -> text: each clip ranks the distinct class names ("engine hum", ...) of the clips; top-1 / top-5 is
    whether its own class comes first / among the first five. Text -> audio: each class name ranks all clips;
    R@1 is whether the first clip is of that class, and mAP the mean average precision over classes.
    """
    import torch
    from sklearn.metrics import average_precision_score

    from soundsmith.eval.embedders import ClapEmbedder, load_eval_model

    embedder = ClapEmbedder(load_eval_model(clap, "clap"))
    rows, batches = _crops(manifest, embedder.sample_rate)
    audio = torch.nn.functional.normalize(
        torch.cat([embedder.embed(b, embedder.sample_rate) for b in batches]), dim=-1
    )
    classes = sorted({r.labels[0] for r in rows})
    text = torch.nn.functional.normalize(embedder.embed_text([c.replace("_", " ") for c in classes]), dim=-1)
    sim = audio @ text.T  # [clips, classes]
    target = torch.tensor([classes.index(r.labels[0]) for r in rows])
    rank = (sim > sim.gather(1, target[:, None])).sum(1)  # 0 = own class first
    positives = target[None, :] == torch.arange(len(classes))[:, None]  # [classes, clips]
    first = sim.T.argmax(1)
    return {
        "n_clips": len(rows), "n_classes": len(classes),
        "a2t_top1": float((rank == 0).float().mean()), "a2t_top5": float((rank < 5).float().mean()),
        "t2a_r@1": float(positives[torch.arange(len(classes)), first].float().mean()),
        "t2a_map": float(sum(average_precision_score(positives[c].numpy(), sim[:, c].numpy())
                             for c in range(len(classes))) / len(classes)),
        "chance_a2t_top1": 1 / len(classes),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/real_clips")
    parser.add_argument(
        "--tagger", default="tagger", help="tagger model directory (default: the shipped one)"
    )
    parser.add_argument(
        "--clap", default="clap", help="CLAP-style model directory (default: the shipped one)"
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    manifest = build(Path(args.out))
    results = score_tagger(manifest, args.tagger)
    print("| class | recording | top-3 predicted | top-1 | top-5 |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['label']} | {r['source']} | {', '.join(r['predicted'])} | {'yes' if r['top1'] else 'no'} "
              f"| {'yes' if r['top5'] else 'no'} |")  # fmt: skip
    known = [r for r in results if r["known"]]
    figures: dict = {"tagger": args.tagger, "clap": args.clap, "clips": results}
    if known:
        figures["tagger_top1"] = sum(r["top1"] for r in known) / len(known)
        figures["tagger_top5"] = sum(r["top5"] for r in known) / len(known)
        print(f"\ntagger on {len(known)} real clips of its classes: top-1 {figures['tagger_top1']:.2f}, "
              f"top-5 {figures['tagger_top5']:.2f}")  # fmt: skip
    print(f"{len(results) - len(known)} clips of classes it does not know")
    figures["clap_zero_shot"] = score_clap(manifest, args.clap)
    print("CLAP-style zero-shot (class names as texts):", json.dumps(figures["clap_zero_shot"]))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
