"""Int8 matrix products for inference on the CPU: a frozen ``nn.Linear`` as int8 weights times int8 activations.

:class:`Int8Linear` keeps a Linear layer's weight as symmetric int8 codes with one scale per output row (the same
codes as ``soundsmith.models.storage``'s int8 storage) and quantizes each input to 8 bits on the fly (one scale
and zero point per call, from the input's own range: "dynamic" quantization); the product runs in PyTorch's
quantized CPU kernels (``torch.ops.quantized.linear_dynamic``, fbgemm / oneDNN) and comes back as float32, the
bias added in float32. On the 2-core test machine it halves the time of the latent denoiser's matrix products
(docs/latent_diffusion.md, "Int8 matrix products"); the output differs from float32 by ~1-2 % (relative norm).

``reduce_range``: CPUs without VNNI instructions multiply u8 x s8 pairs into int16 sums that can saturate, so
the kernels are then given 7-bit activations (twice the rounding error); CPUs with VNNI (``avx512_vnni`` /
``avx_vnni``) sum in int32 and take the full 8 bits. :func:`needs_reduced_range` reads which from
``/proc/cpuinfo``, and assumes the reduced range where it cannot tell.

PyTorch has deprecated its quantized tensor types (pytorch#184982) in favour of torchao; the pinned torch runs
them, and :func:`int8_available` says whether the installed one still does (callers fall back to float32).

Inference only: the layer has no gradient and no trainable parameters; :func:`int8_copy` makes an int8 twin of a
module for sampling and leaves the float32 module (and its training) untouched.
"""

from __future__ import annotations

import copy
import functools
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from soundsmith.errors import ModelError

# the quantized engines whose dynamic linear kernel takes per-row weight scales
_ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")


@functools.lru_cache(maxsize=1)
def needs_reduced_range() -> bool:
    """True unless the CPU is known to have VNNI (then 8-bit activations cannot saturate the kernels' sums)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return True
    return not ({"avx512_vnni", "avx_vnni"} & set(flags))


@functools.lru_cache(maxsize=1)
def int8_available() -> bool:
    """Whether this PyTorch build runs :class:`Int8Linear` (a quantized CPU engine with the dynamic linear
    kernel; PyTorch has deprecated its quantized tensors, so a later release may not): tried once on a tiny
    layer."""
    if not any(e in torch.backends.quantized.supported_engines for e in _ENGINES):
        return False
    try:
        Int8Linear(torch.ones(2, 2), torch.zeros(2))(torch.ones(1, 2))
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return True


class Int8Linear(nn.Module):
    """``y = x @ W^T + b`` with ``W`` as per-row int8 codes and ``x`` quantized to 8 bits per call; float32 in
    and out. Built from a float ``nn.Linear`` (:meth:`from_linear`); CPU only."""

    def __init__(self, weight: Tensor, bias: Tensor | None, reduce_range: bool | None = None) -> None:
        super().__init__()
        w = weight.detach().float().cpu()
        if w.ndim != 2:
            raise ModelError(f"Int8Linear needs a 2-d weight, got shape {tuple(w.shape)}")
        self.in_features, self.out_features = w.shape[1], w.shape[0]
        scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
        b = None if bias is None else bias.detach().float().cpu()
        with warnings.catch_warnings():  # quantized tensors are deprecated (pytorch#184982); torch is pinned
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            codes = torch.quantize_per_channel(
                w, scale, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8
            )
            self._packed = torch.ops.quantized.linear_prepack(codes, b)
        self.reduce_range = needs_reduced_range() if reduce_range is None else bool(reduce_range)

    @classmethod
    def from_linear(cls, linear: nn.Linear, reduce_range: bool | None = None) -> Int8Linear:
        return cls(linear.weight, linear.bias, reduce_range)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            raise ModelError(f"Int8Linear runs on the CPU only, got input on {x.device}; use float32 there")
        return torch.ops.quantized.linear_dynamic(x.float().contiguous(), self._packed, self.reduce_range)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, reduce_range={self.reduce_range}"


def int8_copy(module: nn.Module, within: str = "", reduce_range: bool | None = None) -> nn.Module:
    """A deep copy of ``module`` in eval mode with every ``nn.Linear`` inside its submodule ``within`` (``""``:
    the whole module) replaced by an :class:`Int8Linear`; ``module`` itself is unchanged. Raises ModelError
    where this PyTorch has no quantized CPU engine, or ``module`` has no submodule ``within``."""
    if not int8_available():
        raise ModelError(
            "int8 compute needs a PyTorch build with a quantized CPU engine (x86, fbgemm, onednn or qnnpack); "
            f"this one has {torch.backends.quantized.supported_engines}: use float32"
        )
    twin = copy.deepcopy(module).eval()
    try:
        target = twin.get_submodule(within)
    except AttributeError:
        raise ModelError(f"{type(module).__name__} has no submodule {within!r} to run in int8") from None
    if isinstance(target, nn.Linear):
        raise ModelError(f"int8_copy: {within!r} is a Linear layer itself; name the module that holds it")
    _swap(target, reduce_range)
    return twin


def _swap(module: nn.Module, reduce_range: bool | None) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear.from_linear(child, reduce_range))
        else:
            _swap(child, reduce_range)
