"""Model cards: what a model directory holds and what it was trained on, and a check of prompts against it.

:func:`write_card` writes two files into a model directory (docs/model_card.md)::

    card.json                    family, parameters, weights size and hash, frozen parts, training data summary
                                 (clips, hours, splits, families, labels, instruments, words, sources, with counts),
                                 the training command, free figures, and the prompt check's threshold
    card_captions.safetensors    "embeddings" [N, D] fp16: pooled text embeddings of N distinct training captions,
                                 from the model's own text encoder; the captions and the encoder spec are in the
                                 file's metadata, so texts and vectors cannot drift apart

:func:`prompt_warning` embeds a prompt with the same encoder and compares it (cosine similarity) with the stored
caption embeddings: below the card's threshold, the prompt names nothing close to what the model was trained on,
and the one-line warning names the three nearest known captions. A model without a card gets no warning.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as save_safetensors

from soundsmith.errors import ModelError
from soundsmith.fileio import write_bytes_atomic
from soundsmith.models.storage import INT8_SCALE_SUFFIX

CARD_FILE = "card.json"
CAPTIONS_FILE = "card_captions.safetensors"
CARD_VERSION = 1
MAX_CAPTIONS = 1000  # 1,000 x 384-d MiniLM embeddings in fp16: 768 KB
NEAREST = 3
# Best cosine similarity below which a prompt is "unlike the training captions", per text encoder kind (the spec
# before ":"). MiniLM, measured on the latent-diffusion corpus (docs/model_card.md): held-out test captions score
# >= 0.57, short in-domain prompts >= 0.53, unrelated sentences <= 0.47. The weight-free hashed encoder (tiny
# presets, tests) is not semantic (unrelated sentences reach 0.82 there): its threshold only separates the
# training captions themselves (1.0) from the rest.
THRESHOLDS = {"minilm": 0.5, "hashed": 0.6}
DEFAULT_THRESHOLD = 0.5


# --- writing --------------------------------------------------------------------------------------------------


def _parameters_and_bytes(weights: Path) -> tuple[int, int]:
    """``(parameters, bytes)`` of a safetensors file, read from its header (no tensors loaded); int8 storage's
    scales are not parameters."""
    with safe_open(str(weights), framework="pt") as f:
        count = sum(
            math.prod(f.get_slice(key).get_shape()) for key in f.keys() if not key.endswith(INT8_SCALE_SUFFIX)
        )
    return count, weights.stat().st_size


def model_size(directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Parameters and bytes of the directory's own weights (and its ``path`` sub-folders), and of each frozen
    component that can be found (shipped models by name; text encoders are named by spec only)."""
    from soundsmith.models.registry import read_model_config, resolve_model_dir

    params, nbytes = _parameters_and_bytes(directory / "model.safetensors")
    components: dict[str, Any] = {}
    for name, entry in (meta.get("components") or {}).items():
        ((kind, value),) = entry.items()
        info: dict[str, Any] = {kind: value}
        if kind in ("path", "shipped"):
            try:
                where = directory / value if kind == "path" else resolve_model_dir(value)
                info["family"] = read_model_config(where)["family"]
                info["parameters"], info["bytes"] = _parameters_and_bytes(where / "model.safetensors")
            except (ModelError, OSError):
                info["missing"] = True
            if kind == "path" and not info.get("missing"):
                params += info["parameters"]
                nbytes += info["bytes"]
        components[name] = info
    return {"parameters": params, "weights_bytes": nbytes, "components": components}


def _manifest_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _counts(values: list[str]) -> dict[str, int]:
    """Counts, most frequent first (ties by name), as an ordered dict."""
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def summarize_data(manifest: Any) -> dict[str, Any]:
    """The training data's summary: clips, hours and clips per split; and over the ``train`` split, counts of
    labels, corpus families (``meta.family``), sources (``meta.sources``), event instruments and spoken words
    (``meta.events[].instrument`` / ``.word``), each present only when some row has it."""
    rows = manifest.rows
    train = [r for r in rows if r.split == "train"]
    splits = {}
    for split in ("train", "valid", "test"):
        chosen = [r for r in rows if r.split == split]
        if chosen:
            splits[split] = {"clips": len(chosen), "hours": round(sum(r.duration for r in chosen) / 3600, 3)}
    events = [e for r in train for e in (r.meta.get("events") or []) if isinstance(e, dict)]
    found = {
        "labels": [label for r in train for label in r.labels],
        "families": [str(r.meta["family"]) for r in train if "family" in r.meta],
        "sources": [str(s) for r in train for s in (r.meta.get("sources") or [])],
        "instruments": [str(e["instrument"]) for e in events if "instrument" in e],
        "words": [str(e["word"]) for e in events if "word" in e],
    }
    summary: dict[str, Any] = {
        "manifest": str(manifest.path),
        "manifest_sha256": _manifest_sha256(Path(manifest.path)) if manifest.path else "",
        "clips": len(rows),
        "hours": round(sum(r.duration for r in rows) / 3600, 3),
        "splits": splits,
        "distinct_train_captions": len({c for r in train for c in r.captions}),
    }
    summary.update({key: _counts(values) for key, values in found.items() if values})
    return summary


def _caption_order(caption: str) -> str:
    return hashlib.sha1(caption.encode()).hexdigest()


def select_captions(manifest: Any, limit: int = MAX_CAPTIONS) -> list[str]:
    """Up to ``limit`` distinct captions of the ``train`` split, chosen deterministically to cover every label.

    Captions are grouped by the labels of their row (unlabelled rows form one group), each group ordered by the
    SHA-1 of the caption (a fixed shuffle), and the groups taken round-robin in label order, so every label gets
    a caption before any gets a second (when ``limit`` >= the number of labels). Same manifest, same list.
    """
    groups: dict[str, set[str]] = {}
    for row in manifest.rows:
        if row.split != "train":
            continue
        for label in row.labels or [""]:
            groups.setdefault(label, set()).update(c for c in row.captions if c.strip())
    queues = [sorted(groups[label], key=_caption_order) for label in sorted(groups)]
    chosen: list[str] = []
    seen: set[str] = set()
    depth = 0
    while len(chosen) < limit and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and queue[depth] not in seen and len(chosen) < limit:
                seen.add(queue[depth])
                chosen.append(queue[depth])
        depth += 1
    return chosen


def text_encoder_spec(meta: dict[str, Any]) -> str:
    """The text encoder spec a model directory's ``config.json`` (read into ``meta``) declares, or ``""``."""
    for entry in (meta.get("components") or {}).values():
        if isinstance(entry, dict) and isinstance(entry.get("text_encoder"), str):
            return entry["text_encoder"]
    spec = meta.get("config", {}).get("text_encoder", "")
    return spec if isinstance(spec, str) else ""


@torch.no_grad()
def embed(encoder: Any, texts: list[str], batch_size: int = 128) -> torch.Tensor:
    """Pooled, L2-normalised text embeddings ``[N, D]`` (float32, CPU) of ``texts``, in batches."""
    out = [
        encoder.encode(texts[i : i + batch_size]).pooled.float().cpu()
        for i in range(0, len(texts), batch_size)
    ]
    return torch.nn.functional.normalize(torch.cat(out), dim=-1)


def default_threshold(spec: str) -> float:
    """The measured threshold for a text encoder spec (:data:`THRESHOLDS`, by the kind before ``":"``)."""
    return THRESHOLDS.get(spec.split(":", 1)[0], DEFAULT_THRESHOLD)


def write_card(
    model_dir: str | Path,
    manifest_path: str | Path,
    figures: dict[str, Any] | None = None,
    command: str | None = None,
    max_captions: int = MAX_CAPTIONS,
    threshold: float | None = None,
) -> Path:
    """Write ``card.json`` (and ``card_captions.safetensors`` when the model has a text encoder) into a model
    directory, from its config and weights and the manifest it was trained on. Returns the card's path.

    ``figures`` is free (adherence, FAD, speed, ...); ``command`` is the training command (default: none
    recorded); ``threshold`` overrides the prompt check's measured default for the model's text encoder.
    """
    from soundsmith import families
    from soundsmith.data.manifest import read_manifest
    from soundsmith.models.registry import read_model_config, resolve_model_dir, text_encoder, weights_sha256

    directory = resolve_model_dir(model_dir)
    meta = read_model_config(directory)
    if figures is not None and not isinstance(figures, dict):
        raise ModelError(f"card figures must be a JSON object (name -> value), got {type(figures).__name__}")
    manifest = read_manifest(manifest_path)
    family = families.get(meta["family"])
    extra = meta.get("extra") or {}
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "family": family.name,
        "kind": family.kind,
        "description": family.description,
        "soundsmith_version": meta.get("soundsmith_version", ""),
        "weights_sha256": weights_sha256(directory),
        **model_size(directory, meta),
        "training": {
            "command": command or "",
            "step": extra.get("step"),
            "data": summarize_data(manifest),
        },
        "figures": dict(figures or {}),
    }
    spec = text_encoder_spec(meta)
    captions = select_captions(manifest, max_captions) if spec else []
    if captions:
        vectors = embed(text_encoder(spec), captions)  # [N, D]
        blob = save_safetensors(
            {"embeddings": vectors.half().contiguous()},
            metadata={"text_encoder": spec, "captions": json.dumps(captions, ensure_ascii=False)},
        )
        write_bytes_atomic(directory / CAPTIONS_FILE, blob)
        card["prompt_check"] = {
            "text_encoder": spec,
            "captions": len(captions),
            "file": CAPTIONS_FILE,
            "threshold": float(threshold if threshold is not None else default_threshold(spec)),
        }
    else:
        (directory / CAPTIONS_FILE).unlink(missing_ok=True)  # an old card's captions would not match
    path = directory / CARD_FILE
    write_bytes_atomic(path, (json.dumps(card, indent=2, ensure_ascii=False) + "\n").encode())
    return path


# --- reading --------------------------------------------------------------------------------------------------


def read_card(model_dir: str | Path) -> dict[str, Any] | None:
    """A model directory's card (``card.json``) as a dict, or None when it has none."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e}); write it again with `soundsmith models card`") from e
    if not isinstance(card, dict) or "family" not in card:
        raise ModelError(f"{path}: not a model card; write it again with `soundsmith models card`")
    return card


def read_card_captions(model_dir: str | Path) -> tuple[list[str], torch.Tensor, str]:
    """``(captions, embeddings [N, D] float32, text encoder spec)`` stored beside a model's card."""
    path = Path(model_dir) / CAPTIONS_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            vectors = f.get_tensor("embeddings").float()
        captions = json.loads(metadata["captions"])
        spec = metadata["text_encoder"]
    except Exception as e:  # missing file, damaged header, missing keys
        raise ModelError(
            f"{path}: cannot read the card's caption embeddings ({e}); write the card again "
            "with `soundsmith models card`"
        ) from e
    if not isinstance(captions, list) or len(captions) != vectors.shape[0]:
        raise ModelError(f"{path}: captions and embeddings differ in number; write the card again")
    return captions, vectors, spec


# --- the prompt check -----------------------------------------------------------------------------------------


def _directory_of(source: Any) -> Path | None:
    """The model directory behind a pipeline (its loader-given source), a path or a shipped name."""
    from soundsmith.models.registry import resolve_model_dir

    if isinstance(source, str | Path):
        return resolve_model_dir(source)
    where = getattr(getattr(source, "source", None), "directory", "")
    return Path(where) if where else None


def nearest_captions(
    model: Any, prompt: str, k: int = NEAREST
) -> tuple[list[tuple[float, str]], float] | None:
    """The ``k`` known captions nearest ``prompt`` as ``[(cosine similarity, caption)]``, best first, and the
    card's threshold; None when the model (pipeline, model directory or shipped name) has no card or no
    caption embeddings. The prompt is embedded with the encoder the card's embeddings were made with."""
    from soundsmith.models.registry import text_encoder

    directory = _directory_of(model)
    if directory is None:
        return None
    card = read_card(directory)
    if card is None or "prompt_check" not in card:
        return None
    captions, vectors, spec = read_card_captions(directory)
    query = embed(text_encoder(spec), [prompt])[0]  # [D]
    sims = vectors @ query  # [N]
    top = torch.topk(sims, min(k, len(captions)))
    found = [(float(s), captions[int(i)]) for s, i in zip(top.values, top.indices, strict=True)]
    return found, float(card["prompt_check"].get("threshold", default_threshold(spec)))


def prompt_warning(model: Any, prompt: str, threshold: float | None = None) -> str | None:
    """A one-line warning when ``prompt`` names nothing close to the model's training captions, else None.

    ``model`` is a pipeline (as ``soundsmith.load`` returns it), a model directory or a shipped name; without a
    card there is no warning. ``threshold`` overrides the card's (cosine similarity of the best match)."""
    result = nearest_captions(model, prompt)
    if result is None:
        return None
    found, card_threshold = result
    limit = card_threshold if threshold is None else threshold
    best = found[0][0] if found else -1.0
    if best >= limit:
        return None
    near = "; ".join(f'"{caption}" ({sim:.2f})' for sim, caption in found)
    return (
        f"prompt {prompt!r} is unlike this model's training captions (best similarity {best:.2f} < {limit:.2f}), "
        f"so the audio may not match it; nearest known: {near}"
    )


def warn_if_unknown(pipe_or_model: Any, prompt: str) -> str | None:
    """:func:`prompt_warning` with the card's threshold, for front ends: never raises; a damaged card gives a
    warning that says so instead."""
    try:
        return prompt_warning(pipe_or_model, prompt)
    except ModelError as e:
        return f"prompt not checked against the model card: {e}"
