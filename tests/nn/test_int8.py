"""Int8 matrix products (soundsmith.nn.int8): close to float32, deterministic, the original left alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from soundsmith.errors import ModelError
from soundsmith.nn.int8 import Int8Linear, int8_available, int8_copy

pytestmark = pytest.mark.skipif(not int8_available(), reason="no quantized CPU engine in this PyTorch")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("reduce_range", [False, True])
def test_int8_linear_is_close_to_float32_and_not_equal(reduce_range):
    torch.manual_seed(0)
    lin = nn.Linear(64, 48)
    x = torch.randn(3, 17, 64)
    q = Int8Linear.from_linear(lin, reduce_range=reduce_range)
    with torch.no_grad():
        ref, out = lin(x), q(x)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert 0 < _rel(out, ref) < (0.03 if reduce_range else 0.015)  # 7 or 8 bits of activation
    torch.testing.assert_close(q(x), out, rtol=0, atol=0)  # deterministic


def test_per_row_scales_keep_a_row_of_small_weights():
    """One row 1000x smaller than the rest: a per-tensor scale would round it to zero, per-row scales keep it."""
    torch.manual_seed(1)
    lin = nn.Linear(32, 8)
    with torch.no_grad():
        lin.weight[0] *= 1e-3
        lin.bias.zero_()
    x = torch.randn(50, 32)
    with torch.no_grad():
        ref, out = lin(x)[:, 0], Int8Linear.from_linear(lin, reduce_range=False)(x)[:, 0]
    assert ref.abs().max() > 0 and _rel(out, ref) < 0.02


def test_int8_copy_swaps_only_inside_the_named_submodule_and_leaves_the_original():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(8, 16), nn.Sequential(nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 4)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    twin = int8_copy(net, within="1")
    assert isinstance(twin[0], nn.Linear) and not isinstance(twin[0], Int8Linear)
    assert isinstance(twin[1][0], Int8Linear) and isinstance(twin[1][2], Int8Linear)
    assert all(isinstance(m, nn.Linear) for m in (net[0], net[1][0], net[1][2]))  # the original untouched
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    x = torch.randn(5, 8)
    with torch.no_grad():
        assert 0 < _rel(twin(x), net(x)) < 0.03


def test_int8_copy_names_a_missing_submodule():
    with pytest.raises(ModelError, match="no submodule 'blocks'"):
        int8_copy(nn.Sequential(nn.Linear(2, 2)), within="blocks")
