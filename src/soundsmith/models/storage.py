"""Weight storage of a model directory: tensors as saved (float32 or float16), or int8 with one scale per row.

``int8`` storage (``save_model(..., storage="int8")``) keeps each weight matrix of at least ``INT8_MIN_NUMEL``
elements as symmetric int8 codes ``round(w / s)`` with ``s = max |w| over the row / 127``, one float32 scale per
output row (``[out, 1, ...]``, saved beside it as ``<key>.int8_scale``); biases, norms and small tensors keep
their saved dtype. A stored element is off by at most ``s / 2``. Loading (:func:`dequantize_int8`) multiplies
the codes back into float32 before the weights reach the model, so the network never sees int8. It halves an
fp16 directory's size, which is what lets a larger denoiser fit the default's weight budget
(docs/latent_diffusion.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from soundsmith.errors import ModelError

INT8_SCALE_SUFFIX = ".int8_scale"
INT8_MIN_NUMEL = 4096  # smaller tensors (biases, norms, tiny layers) are not worth a scale each
STORAGES = ("as_saved", "int8")


def quantize_int8(state: dict[str, Tensor], min_numel: int = INT8_MIN_NUMEL) -> dict[str, Tensor]:
    """``{key: tensor}`` -> the same with every floating tensor of >= 2 dims and >= ``min_numel`` elements as int8
    codes plus ``<key>.int8_scale`` (float32, ``[rows, 1, ...]``)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith(INT8_SCALE_SUFFIX):
            raise ModelError(
                f"tensor name {key!r} ends in {INT8_SCALE_SUFFIX!r}, which int8 storage reserves"
            )
        if not (value.is_floating_point() and value.dim() >= 2 and value.numel() >= min_numel):
            out[key] = value
            continue
        w = value.detach().float()
        scale = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True).clamp_min(1e-12) / 127.0
        out[key] = torch.round(w / scale).clamp(-127, 127).to(torch.int8).contiguous()
        out[key + INT8_SCALE_SUFFIX] = scale.contiguous()
    return out


def dequantize_int8(state: dict[str, Tensor], where: str = "weights") -> dict[str, Tensor]:
    """Inverse of :func:`quantize_int8`: int8 codes times their scales, as float32; other tensors unchanged.

    A scale without its codes, or codes without their scale, is a ModelError naming ``where`` (the file)."""
    scales = {k[: -len(INT8_SCALE_SUFFIX)]: v for k, v in state.items() if k.endswith(INT8_SCALE_SUFFIX)}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith(INT8_SCALE_SUFFIX):
            if key[: -len(INT8_SCALE_SUFFIX)] not in state:
                raise ModelError(
                    f"{where}: int8 scale {key!r} has no tensor; the file is damaged, re-export it"
                )
            continue
        if value.dtype == torch.int8:
            if key not in scales:
                raise ModelError(
                    f"{where}: int8 tensor {key!r} has no scale; the file is damaged, re-export it"
                )
            value = value.float() * scales[key].float()
        out[key] = value
    return out
