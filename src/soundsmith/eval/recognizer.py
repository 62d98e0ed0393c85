"""Figures of the spoken-word recognizer: accuracy and confusion matrix on a manifest, and a fixed sample.

``recognizer_figures(model, manifest, split)``: every clip's target is its one ``speech_<word>`` label of the
vocabulary, or "no word" when it has none (clips with several words are left out). ``fixed_sample()`` renders a
small deterministic set of corpus clips (spoken words by every voice, plus events and instruments) for the
reproduction test of the shipped model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from soundsmith.models.keyword import NO_WORD, KeywordSpotter

SAMPLE_SEED = 20261126


def _target(labels: list[str], words: list[str]) -> str | None:
    spoken = [lb[len("speech_") :] for lb in labels if lb.startswith("speech_")]
    if not spoken:
        return NO_WORD
    return spoken[0] if len(spoken) == 1 and spoken[0] in words else None


@torch.no_grad()
def predict(model: KeywordSpotter, clips: list[np.ndarray], batch_size: int = 32) -> list[str]:
    """Top class per clip ``[T]`` (equal-length clips are batched; others run one by one)."""
    out: list[str | None] = [None] * len(clips)
    by_len: dict[int, list[int]] = {}
    for i, c in enumerate(clips):
        by_len.setdefault(len(c), []).append(i)
    for idx in by_len.values():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            audio = torch.as_tensor(np.stack([clips[i] for i in chunk]), dtype=torch.float32)
            for i, (word, _) in zip(chunk, model.recognize(audio)):
                out[i] = word
    return [w or NO_WORD for w in out]


def figures_from_predictions(targets: list[str], preds: list[str], classes: list[str]) -> dict[str, Any]:
    """Accuracy, word-only and no-word accuracy, and the confusion matrix (rows: target, columns: predicted)."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(targets, preds):
        matrix[index[t], index[p]] += 1
    t, p = np.asarray(targets), np.asarray(preds)
    words = t != NO_WORD

    def acc(mask: np.ndarray) -> float | None:
        return float((t[mask] == p[mask]).mean()) if mask.any() else None

    return {
        "accuracy": acc(np.ones_like(words)),
        "n": int(t.size),
        "word_accuracy": acc(words),
        "n_words": int(words.sum()),
        "no_word_accuracy": acc(~words),
        "n_no_word": int((~words).sum()),
        "classes": list(classes),
        "confusion": matrix.tolist(),
    }


def recognizer_figures(
    model: KeywordSpotter, manifest: str | Path, split: str | None = None, batch_size: int = 32
) -> dict[str, Any]:
    """Figures of ``model`` on the rows of ``split`` (all rows when None) of ``manifest``."""
    from soundsmith.audio import load_audio
    from soundsmith.data import read_manifest

    m = read_manifest(manifest)
    rows = [r for r in m.rows if split is None or r.split == split]
    words = list(model.config.words)
    kept = [(r, t) for r in rows if (t := _target(r.labels, words)) is not None]
    sr = model.config.sample_rate
    clips = [load_audio(r.audio_path(m.root), sample_rate=sr)[0] for r, _ in kept]
    preds = predict(model, clips, batch_size)
    out = figures_from_predictions([t for _, t in kept], preds, model.classes)
    fams: dict[str, list[int]] = {}
    for i, (r, _) in enumerate(kept):
        fams.setdefault(str(r.meta.get("family", "")), []).append(i)
    out["per_family"] = {
        f: float(np.mean([preds[i] == kept[i][1] for i in idx])) for f, idx in sorted(fams.items())
    }
    return out


def fixed_sample(seed: int = SAMPLE_SEED, sample_rate: int = 16000) -> tuple[list[np.ndarray], list[str]]:
    """A deterministic sample: each corpus word by two voices (24 clips, 4 s) + 8 events/instruments (no word)."""
    from soundsmith.data.synth import render_event, render_instrument, render_speech
    from soundsmith.data.synth.speech import VOICES, WORDS

    rng = np.random.default_rng(seed)
    clips, targets = [], []
    for k, word in enumerate(WORDS[:12]):
        for voice in (k % len(VOICES), (k + 3) % len(VOICES)):
            audio, _ = render_speech(word, voice=voice, duration=4.0, sample_rate=sample_rate, rng=rng)
            clips.append(audio)
            targets.append(word)
    for name in ("beeps", "rain", "bell", "hi_hat"):
        clips.append(render_event(name, duration=4.0, sample_rate=sample_rate, rng=rng)[0])
        targets.append(NO_WORD)
    for name in ("piano", "flute", "violin", "trumpet"):
        clips.append(render_instrument(name, duration=4.0, sample_rate=sample_rate, rng=rng)[0])
        targets.append(NO_WORD)
    return clips, targets
