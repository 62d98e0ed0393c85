"""Low-rank adapters (LoRA) on ``nn.Linear`` layers, several at once, each with its own runtime scale.

A :class:`LoRALinear` wraps a frozen ``nn.Linear`` and adds, for every adapter ``a`` it holds::

    y = base(x) + sum_a  scale_a * (alpha_a / rank_a) * up_a(down_a(x))

``down`` ``[rank, in]`` starts random, ``up`` ``[out, rank]`` starts at zero, so a fresh adapter changes nothing;
``scale`` is the runtime multiplier (``--lora-scale``), and an adapter at scale 0 is skipped, so the output is then
the base's bit for bit. Adapters are added by name (:func:`add_lora` on the modules whose names match the targets,
:func:`load_lora_state` from a saved adapter) and removed by name (:func:`remove_lora`; a wrapper left without
adapters goes back to its plain ``nn.Linear``).

Why our own module rather than ``peft``: peft is not a dependency here, and what soundsmith needs is ~150 lines
(wrap the denoiser's Linear layers, several named adapters with runtime scales, save/load a state dict); peft's
``PeftModel`` would wrap the whole composite model and change its state-dict keys and ``forward`` contract.

An adapter on disk is a folder with ``adapter.safetensors`` (tensors ``<module>.down`` / ``<module>.up``, module
names relative to the adapted network) and ``adapter.json`` (rank, alpha, the adapted modules, and the base model
it was trained on: name, directory and weights hash, checked by whoever attaches it: see
``LatentDiffusionPipeline.load_adapter``). This module knows nothing of models; it only reads and writes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch import Tensor, nn

from soundsmith.errors import ModelError
from soundsmith.fileio import write_bytes_atomic

ADAPTER_JSON = "adapter.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_FORMAT = "soundsmith-lora"
ADAPTER_VERSION = 1


def check_scale(scale: Any, what: str = "lora scale") -> float:
    """A scale in [0, 1] as float; anything else is a one-line ModelError."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ModelError(f"{what}={scale!r} must be a number from 0 (off) to 1 (full strength)")
    if not 0.0 <= float(scale) <= 1.0:
        raise ModelError(f"{what}={scale!r} must be from 0 (off) to 1 (full strength)")
    return float(scale)


class LoRAAdapter(nn.Module):
    """One adapter on one Linear layer: ``down [rank, in]`` (random) then ``up [out, rank]`` (zero)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        alpha: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ModelError(f"LoRA rank={rank!r} must be an integer >= 1")
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
            raise ModelError(f"LoRA alpha={alpha!r} must be a positive number")
        self.rank, self.alpha = rank, float(alpha)
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=False)
        # nn.Linear's default init (kaiming uniform, a=sqrt(5): U(-1/sqrt(in), 1/sqrt(in))), drawn from `generator`
        bound = 1.0 / math.sqrt(in_features)
        with torch.no_grad():
            draw = torch.rand(self.down.weight.shape, generator=generator)
            self.down.weight.copy_(draw * 2 * bound - bound)
            self.up.weight.zero_()

    def forward(self, x: Tensor) -> Tensor:  # [..., in] -> [..., out]
        return self.up(self.down(x))


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` (``base``) plus named adapters (``adapters``) with runtime ``scales``."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise ModelError(f"LoRALinear wraps nn.Linear, got {type(base).__name__}")
        self.base = base
        self.adapters = nn.ModuleDict()
        self.scales: dict[str, float] = {}

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def add(
        self, name: str, rank: int, alpha: float, generator: torch.Generator | None = None
    ) -> LoRAAdapter:
        if name in self.adapters:
            raise ModelError(f"adapter {name!r} is already attached; remove it first or pick another name")
        weight = self.base.weight
        adapter = LoRAAdapter(self.in_features, self.out_features, rank, alpha, generator)
        self.adapters[name] = adapter.to(device=weight.device, dtype=weight.dtype)
        self.scales[name] = 1.0
        return adapter

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)
        for name, adapter in self.adapters.items():
            factor = self.scales[name] * adapter.alpha / adapter.rank
            if factor != 0.0:  # scale 0: exactly the base
                out = out + factor * adapter(x)
        return out


# --- attaching and removing -----------------------------------------------------------------------------------


def _matches(name: str, targets: Iterable[str]) -> bool:
    """``name`` is one of ``targets`` or ends with ``.<target>`` (``"mlp.0"`` matches ``"blocks.3.mlp.0"``)."""
    return any(name == t or name.endswith("." + t) for t in targets)


def _set_child(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)  # nn.Sequential / ModuleList children are set by their index string too


def _wrapper(root: nn.Module, name: str) -> LoRALinear:
    """The LoRALinear at ``name`` (wrapping the plain Linear there first)."""
    try:
        module = root.get_submodule(name)
    except AttributeError:
        raise ModelError(f"no layer {name!r} in {type(root).__name__} to attach an adapter to") from None
    if isinstance(module, LoRALinear):
        return module
    if not isinstance(module, nn.Linear):
        raise ModelError(
            f"layer {name!r} is {type(module).__name__}, not nn.Linear; LoRA adapts Linear layers"
        )
    wrapper = LoRALinear(module)
    _set_child(root, name, wrapper)
    return wrapper


def lora_targets(root: nn.Module, targets: Sequence[str]) -> list[str]:
    """Names (relative to ``root``) of the Linear layers (plain or already wrapped) that ``targets`` select."""
    names: list[str] = []
    wrapped: list[str] = []
    for name, module in root.named_modules():
        if any(name.startswith(w + ".") for w in wrapped):
            continue  # a wrapper's own base and adapter layers
        if isinstance(module, LoRALinear):
            wrapped.append(name)
        elif not isinstance(module, nn.Linear):
            continue
        if name and _matches(name, targets):
            names.append(name)
    if not names:
        raise ModelError(f"no Linear layer of {type(root).__name__} matches the LoRA targets {list(targets)}")
    return names


def add_lora(
    root: nn.Module,
    name: str,
    targets: Sequence[str],
    rank: int,
    alpha: float | None = None,
    seed: int = 0,
) -> list[str]:
    """Attach a fresh adapter ``name`` (rank ``rank``, ``alpha`` default ``rank``) to the Linear layers of ``root``
    that ``targets`` select; returns their names. Its ``down`` weights are drawn from a generator seeded by
    ``seed``; only the new adapter's tensors require grad afterwards (the caller freezes the rest)."""
    check_name(name)
    generator = torch.Generator().manual_seed(seed)
    layers = lora_targets(root, targets)
    for layer in layers:
        _wrapper(root, layer).add(name, rank, float(rank if alpha is None else alpha), generator)
    return layers


def check_name(name: str) -> None:
    if not (isinstance(name, str) and name and "." not in name and name.isidentifier()):
        raise ModelError(f"adapter name {name!r} must be a Python identifier (no dots)")


def wrappers(root: nn.Module, name: str | None = None) -> dict[str, LoRALinear]:
    """Every LoRALinear of ``root`` by module name (only those holding adapter ``name`` when given)."""
    return {
        n: m
        for n, m in root.named_modules()
        if isinstance(m, LoRALinear) and (name is None or name in m.adapters)
    }


def adapter_names(root: nn.Module) -> list[str]:
    """The names of the adapters attached anywhere in ``root``, in the order they were added."""
    names: dict[str, None] = {}
    for module in wrappers(root).values():
        names.update(dict.fromkeys(module.adapters))
    return list(names)


def set_lora_scale(root: nn.Module, name: str, scale: float) -> None:
    """Set adapter ``name``'s runtime scale (0 = off, 1 = full strength) on every layer it adapts."""
    scale = check_scale(scale, f"scale of adapter {name!r}")
    found = wrappers(root, name)
    if not found:
        raise ModelError(f"no adapter {name!r} is attached; attached: {adapter_names(root) or 'none'}")
    for module in found.values():
        module.scales[name] = scale


def remove_lora(root: nn.Module, name: str) -> None:
    """Detach adapter ``name``; a layer left without adapters becomes its plain ``nn.Linear`` again."""
    found = wrappers(root, name)
    if not found:
        raise ModelError(f"no adapter {name!r} is attached; attached: {adapter_names(root) or 'none'}")
    for layer, module in found.items():
        del module.adapters[name]
        del module.scales[name]
        if not len(module.adapters):
            _set_child(root, layer, module.base)


def lora_parameters(root: nn.Module, name: str) -> list[nn.Parameter]:
    """The trainable tensors of adapter ``name``."""
    return [p for m in wrappers(root, name).values() for p in m.adapters[name].parameters()]


# --- state dicts and files ------------------------------------------------------------------------------------


def lora_state(root: nn.Module, name: str) -> dict[str, Tensor]:
    """Adapter ``name`` as ``{"<layer>.down": [rank, in], "<layer>.up": [out, rank]}`` on the CPU."""
    found = wrappers(root, name)
    if not found:
        raise ModelError(f"no adapter {name!r} is attached; attached: {adapter_names(root) or 'none'}")
    state = {}
    for layer, module in found.items():
        adapter = module.adapters[name]
        state[f"{layer}.down"] = adapter.down.weight.detach().cpu().contiguous()
        state[f"{layer}.up"] = adapter.up.weight.detach().cpu().contiguous()
    return state


def load_lora_state(
    root: nn.Module, name: str, state: Mapping[str, Tensor], alpha: float, where: str = "adapter"
) -> list[str]:
    """Attach adapter ``name`` to ``root`` with the tensors of :func:`lora_state` (rank from their shapes)."""
    check_name(name)
    layers = sorted({key.rsplit(".", 1)[0] for key in state})
    bad = [k for k in state if not (k.endswith(".down") or k.endswith(".up"))]
    if bad or any(f"{layer}.{part}" not in state for layer in layers for part in ("down", "up")):
        raise ModelError(
            f"{where}: tensors must come in <layer>.down / <layer>.up pairs, got {sorted(state)[:4]}"
        )
    for layer in layers:  # check every layer before changing anything
        try:
            module = root.get_submodule(layer)
        except AttributeError:
            raise ModelError(
                f"{where}: the model has no layer {layer!r}; it was made for another model"
            ) from None
        linear = module.base if isinstance(module, LoRALinear) else module
        if not isinstance(linear, nn.Linear):
            raise ModelError(f"{where}: layer {layer!r} is {type(linear).__name__}, not nn.Linear")
        down, up = state[f"{layer}.down"], state[f"{layer}.up"]
        rank = down.shape[0]
        if down.shape != (rank, linear.in_features) or up.shape != (linear.out_features, rank):
            raise ModelError(
                f"{where}: layer {layer!r} is {linear.in_features} -> {linear.out_features} but the adapter holds "
                f"down {tuple(down.shape)}, up {tuple(up.shape)}; it was made for another model"
            )
    if any(name in w.adapters for w in wrappers(root).values()):
        raise ModelError(f"adapter {name!r} is already attached; remove it first or pick another name")
    for layer in layers:
        down, up = state[f"{layer}.down"], state[f"{layer}.up"]
        adapter = _wrapper(root, layer).add(name, down.shape[0], alpha)
        with torch.no_grad():
            adapter.down.weight.copy_(down)
            adapter.up.weight.copy_(up)
    return layers


def save_adapter(directory: str | Path, state: Mapping[str, Tensor], info: Mapping[str, Any]) -> Path:
    """Write ``adapter.safetensors`` (``state``) and ``adapter.json`` (``info`` plus format and version)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(directory / ADAPTER_WEIGHTS, save_safetensors(dict(state)))
    meta = {"format": ADAPTER_FORMAT, "version": ADAPTER_VERSION, **info}
    write_bytes_atomic(directory / ADAPTER_JSON, (json.dumps(meta, indent=2) + "\n").encode())
    return directory


def find_adapter_dir(path: str | Path) -> Path | None:
    """``path`` or ``path/model`` when it holds ``adapter.json`` (an adapter or a LoRA fine-tune run), else None."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / ADAPTER_JSON).is_file():
            return candidate
    return None


def read_adapter_info(directory: str | Path) -> dict[str, Any]:
    """The checked ``adapter.json`` of an adapter folder."""
    path = Path(directory) / ADAPTER_JSON
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{directory}: no {ADAPTER_JSON}; not a LoRA adapter folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: not readable JSON ({e}); the adapter is damaged") from None
    if not isinstance(info, dict) or info.get("format") != ADAPTER_FORMAT:
        raise ModelError(f"{path}: not a soundsmith LoRA adapter (format {ADAPTER_FORMAT!r} expected)")
    if int(info.get("version", 0)) > ADAPTER_VERSION:
        raise ModelError(
            f"{path}: adapter version {info['version']} is newer than this soundsmith; upgrade it"
        )
    for key in ("base_sha256", "alpha", "target"):
        if key not in info:
            raise ModelError(f"{path}: missing key {key!r}; the adapter is damaged")
    return info


def read_adapter(directory: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(adapter.json, tensors)`` of an adapter folder; damaged files are a one-line ModelError."""
    info = read_adapter_info(directory)
    weights = Path(directory) / ADAPTER_WEIGHTS
    try:
        state = load_file(str(weights), device="cpu")
    except FileNotFoundError:
        raise ModelError(f"{directory}: no {ADAPTER_WEIGHTS}; the adapter is incomplete") from None
    except Exception as e:  # safetensors raises its own types for damaged files
        raise ModelError(f"{weights}: cannot read the adapter's tensors ({e}); it is damaged") from e
    return info, state


__all__ = [
    "ADAPTER_JSON",
    "ADAPTER_WEIGHTS",
    "LoRAAdapter",
    "LoRALinear",
    "add_lora",
    "adapter_names",
    "check_scale",
    "find_adapter_dir",
    "load_lora_state",
    "lora_parameters",
    "lora_state",
    "lora_targets",
    "read_adapter",
    "read_adapter_info",
    "remove_lora",
    "save_adapter",
    "set_lora_scale",
    "wrappers",
]
