"""LoRA adapters (soundsmith.nn.lora): scale 0 is the base exactly, save/load identity, several at once, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from soundsmith.errors import ModelError
from soundsmith.models.latent_diffusion import LatentDenoiser, LatentDenoiserConfig
from soundsmith.nn import lora

TARGETS = ("qkv", "proj", "q_cross", "kv_cross", "proj_cross", "mlp.0", "mlp.2")


def _denoiser() -> LatentDenoiser:
    torch.manual_seed(0)
    net = LatentDenoiser(
        LatentDenoiserConfig(latent_channels=4, latent_bins=2, d_model=16, layers=2, heads=2, text_dim=8)
    )
    with torch.no_grad():  # the output layer starts at zero: give it weights so that adapters show
        for p in net.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.1)
    return net.eval()


def _inputs(seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 2, 7, generator=g)
    t = torch.rand(2, generator=g)
    tokens = torch.randn(2, 3, 8, generator=g)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    pooled = torch.randn(2, 8, generator=g)
    return x, t, tokens, mask, pooled


def _train_like(net: nn.Module, name: str, seed: int) -> None:
    """Give adapter ``name`` non-zero ``up`` weights (as training would)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora.lora_parameters(net, name):
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _run(net: nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    with torch.no_grad():
        return net(*inputs)


def test_targets_select_the_attention_and_mlp_linears_only():
    net = _denoiser()
    layers = lora.add_lora(net, "a", TARGETS, rank=2)
    assert len(layers) == 7 * net.config.layers
    assert all(isinstance(net.get_submodule(n), lora.LoRALinear) for n in layers)
    for name in ("inp", "pooled_proj", "out", "out_mod", "blocks.0.modulation", "time_mlp.0"):
        assert type(net.get_submodule(name)) is nn.Linear
    with pytest.raises(ModelError, match="matches the LoRA targets"):
        lora.add_lora(_denoiser(), "b", ["no_such_layer"], rank=2)


def test_a_fresh_adapter_and_a_trained_one_at_scale_0_equal_the_base_exactly():
    net = _denoiser()
    inputs = _inputs()
    base = _run(net, inputs)
    lora.add_lora(net, "a", TARGETS, rank=4, seed=3)
    assert torch.equal(_run(net, inputs), base)  # up starts at zero
    _train_like(net, "a", seed=5)
    assert not torch.allclose(_run(net, inputs), base)
    lora.set_lora_scale(net, "a", 0.0)
    assert torch.equal(_run(net, inputs), base)


def test_scale_multiplies_the_adapters_contribution():
    net = _denoiser()
    inputs = _inputs()
    base = _run(net, inputs)
    lora.add_lora(net, "a", ["qkv"], rank=2)
    _train_like(net, "a", seed=7)
    full = _run(net, inputs) - base
    lora.set_lora_scale(net, "a", 0.5)
    layer = net.get_submodule("blocks.0.qkv")
    h = torch.randn(3, 16)
    with torch.no_grad():
        delta = layer(h) - layer.base(h)
        lora.set_lora_scale(net, "a", 1.0)
        torch.testing.assert_close(layer(h) - layer.base(h), 2 * delta)
    assert full.abs().max() > 0


def test_saved_adapter_loads_back_identically(tmp_path):
    net = _denoiser()
    base_copy = copy.deepcopy(net)
    inputs = _inputs()
    lora.add_lora(net, "mine", TARGETS, rank=3, alpha=6.0)
    _train_like(net, "mine", seed=11)
    lora.set_lora_scale(net, "mine", 0.7)
    expected = _run(net, inputs)

    lora.save_adapter(
        tmp_path / "ad", lora.lora_state(net, "mine"), {"base_sha256": "x", "alpha": 6.0, "target": ""}
    )
    info, state = lora.read_adapter(tmp_path / "ad")
    assert info["alpha"] == 6.0 and set(state) == set(lora.lora_state(net, "mine"))
    lora.load_lora_state(base_copy, "other", state, alpha=info["alpha"])
    lora.set_lora_scale(base_copy, "other", 0.7)
    assert torch.equal(_run(base_copy, inputs), expected)
    for key, value in lora.lora_state(base_copy, "other").items():
        assert torch.equal(value, state[key])


def test_two_adapters_add_up_and_remove_cleanly():
    net = _denoiser()
    inputs = _inputs()
    base = _run(net, inputs)
    lora.add_lora(net, "a", TARGETS, rank=2, seed=1)
    _train_like(net, "a", seed=2)
    lora.add_lora(net, "b", ["qkv", "mlp.0"], rank=4, seed=3)
    _train_like(net, "b", seed=4)
    assert lora.adapter_names(net) == ["a", "b"]

    def with_scales(a: float, b: float) -> torch.Tensor:
        lora.set_lora_scale(net, "a", a)
        lora.set_lora_scale(net, "b", b)
        return _run(net, inputs)

    only_a, only_b, both = with_scales(1, 0), with_scales(0, 0.5), with_scales(1, 0.5)
    assert not torch.allclose(both, only_a) and not torch.allclose(both, only_b)
    assert torch.equal(with_scales(0, 0), base)
    # one layer: the contributions of the two adapters add up
    layer = net.get_submodule("blocks.1.qkv")
    h = torch.randn(5, 16)
    with torch.no_grad():
        parts = []
        for a, b in ((1, 0), (0, 0.5), (1, 0.5)):
            with_scales(a, b)
            parts.append(layer(h) - layer.base(h))
    torch.testing.assert_close(parts[2], parts[0] + parts[1])

    with_scales(1, 0.5)
    lora.remove_lora(net, "b")
    assert torch.equal(_run(net, inputs), only_a)
    lora.remove_lora(net, "a")
    assert not lora.wrappers(net) and type(net.get_submodule("blocks.0.qkv")) is nn.Linear
    assert torch.equal(_run(net, inputs), base)


def test_bad_scales_names_and_shapes_are_one_line_errors():
    net = _denoiser()
    lora.add_lora(net, "a", ["qkv"], rank=2)
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ModelError, match="from 0"):
            lora.set_lora_scale(net, "a", bad)
    with pytest.raises(ModelError, match="no adapter 'zz'"):
        lora.set_lora_scale(net, "zz", 0.5)
    with pytest.raises(ModelError, match="already attached"):
        lora.add_lora(net, "a", ["qkv"], rank=2)
    with pytest.raises(ModelError, match="identifier"):
        lora.add_lora(net, "a.b", ["qkv"], rank=2)
    state = lora.lora_state(net, "a")
    state["blocks.0.proj.down"] = torch.zeros(2, 99)  # made for a wider model
    state["blocks.0.proj.up"] = torch.zeros(16, 2)
    other = _denoiser()
    with pytest.raises(ModelError, match="made for another model"):
        lora.load_lora_state(other, "a", state, alpha=2.0)
    assert not lora.wrappers(other)  # nothing half-attached


def test_damaged_adapter_files_are_refused(tmp_path):
    (tmp_path / "adapter.json").write_text("{not json")
    with pytest.raises(ModelError, match="adapter is damaged"):
        lora.read_adapter_info(tmp_path)
    (tmp_path / "adapter.json").write_text('{"format": "something-else"}')
    with pytest.raises(ModelError, match="not a soundsmith LoRA adapter"):
        lora.read_adapter_info(tmp_path)
    assert lora.find_adapter_dir(tmp_path) == tmp_path
    assert lora.find_adapter_dir(tmp_path / "nothing") is None
