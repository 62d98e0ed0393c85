"""BERT's encoder forward in plain torch, for MiniLM without importing transformers.

Importing ``transformers``' modeling code costs ~2 s of CPU on the 2-core machine, more than generating a 4-s
clip with the default model, and every ``soundsmith generate`` paid it for the MiniLM prompt encoder. This is the
same computation as ``transformers.BertModel`` (post-LN, exact GELU, absolute positions, token type 0; tested
against it in ``tests/text/test_text_hf.py``), built from the folder's ``config.json`` and ``model.safetensors``
and tokenized by the ``tokenizers`` library from the folder's ``tokenizer.json``: the same pipeline that
``transformers``' fast tokenizer runs. ``scripts/gpu_ld/train.py`` runs it on the GPU from pruned weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

_PREFIX = "bert."
_CONFIG_KEYS = ("hidden_size", "num_attention_heads", "num_hidden_layers", "layer_norm_eps")


class BertEncoder(nn.Module):
    """BERT's last hidden state ``[B, L, D]`` for word pieces ``[B, L]`` and a key mask ``[B, L]`` (True = token).

    ``weights`` are ``BertModel``'s tensors by their state-dict names (a leading ``bert.`` is dropped; pooler
    and MLM-head tensors are ignored); ``config`` needs ``hidden_size``, ``num_attention_heads``,
    ``num_hidden_layers`` and ``layer_norm_eps``. The weights are buffers, so ``.to(device)`` moves them.
    """

    def __init__(self, weights: Mapping[str, torch.Tensor], config: Mapping) -> None:
        super().__init__()
        missing = [k for k in _CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(f"BERT config lacks {missing}")
        act, positions = config.get("hidden_act", "gelu"), config.get("position_embedding_type", "absolute")
        if act != "gelu" or positions != "absolute":
            raise ValueError(
                f"BERT config has hidden_act={act!r}, position_embedding_type={positions!r}; this encoder runs "
                "'gelu' with 'absolute' positions only (all-MiniLM-L6-v2's)"
            )
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        names = [f"encoder.layer.{i}.{n}" for i in range(self.layers) for n in _LAYER_TENSORS] + _EMBEDDING_TENSORS
        found = {k.removeprefix(_PREFIX): v for k, v in weights.items()}
        absent = [n for n in names if n not in found]
        if absent:
            raise ValueError(f"BERT weights lack {absent[:3]} ({len(absent)} tensors)")
        for n in names:
            self.register_buffer(n.replace(".", "__"), found[n].detach().float(), persistent=False)

    def _w(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "__"))

    def _ln(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self._w(name + ".weight"), self._w(name + ".bias"), self.eps)

    def _lin(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self._w(name + ".weight"), self._w(name + ".bias"))

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L = input_ids.shape
        positions = self._w("embeddings.position_embeddings.weight")
        if L > positions.shape[0]:
            raise ValueError(f"{L} word pieces exceed BERT's {positions.shape[0]} positions")
        h = self._w("embeddings.word_embeddings.weight")[input_ids] + positions[:L]
        h = self._ln(h + self._w("embeddings.token_type_embeddings.weight")[0], "embeddings.LayerNorm")
        bias = torch.zeros(B, 1, 1, L, dtype=h.dtype, device=h.device)
        bias = bias.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (
                self._lin(h, p + f"attention.self.{n}").view(B, L, self.heads, -1).transpose(1, 2)
                for n in ("query", "key", "value")
            )
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            a = self._lin(a.transpose(1, 2).reshape(B, L, -1), p + "attention.output.dense")
            h = self._ln(h + a, p + "attention.output.LayerNorm")
            f = self._lin(F.gelu(self._lin(h, p + "intermediate.dense")), p + "output.dense")
            h = self._ln(h + f, p + "output.LayerNorm")
        return h


_EMBEDDING_TENSORS = [
    f"embeddings.{n}.weight" for n in ("word_embeddings", "position_embeddings", "token_type_embeddings")
] + ["embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
_LAYER_TENSORS = [
    f"{m}.{wb}"
    for m in (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    )
    for wb in ("weight", "bias")
]
