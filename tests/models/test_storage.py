"""int8 weight storage (models/storage.py): bounded error, exact round trip of what it keeps, clear errors."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.registry import load_model, save_model
from soundsmith.models.storage import INT8_SCALE_SUFFIX, dequantize_int8, quantize_int8
from soundsmith.models.vae import MelVAE, VAEConfig


def test_quantize_int8_error_is_at_most_half_a_step_per_row() -> None:
    g = torch.Generator().manual_seed(0)
    w = (
        torch.randn(64, 128, generator=g) * torch.logspace(-3, 1, 64)[:, None]
    )  # rows of very different scales
    bias = torch.randn(64, generator=g)
    q = quantize_int8({"w": w, "b": bias})
    assert q["w"].dtype == torch.int8 and q["b"] is bias  # 1-D tensors are kept as they are
    scale = q["w" + INT8_SCALE_SUFFIX]
    assert scale.shape == (64, 1)
    back = dequantize_int8(q)
    assert set(back) == {"w", "b"} and back["w"].dtype == torch.float32
    err = (back["w"] - w).abs()
    assert bool((err <= scale / 2 + 1e-7 * w.abs()).all())
    # a row's largest weight is stored exactly (its code is +-127)
    rows = torch.arange(64)
    top = w.abs().argmax(dim=1)
    assert torch.allclose(back["w"][rows, top], w[rows, top], rtol=1e-6)


def test_small_tensors_and_integers_stay_as_saved() -> None:
    small = torch.randn(8, 8)
    ids = torch.arange(10_000).reshape(100, 100)
    q = quantize_int8({"small": small, "ids": ids})
    assert q["small"] is small and q["ids"] is ids and len(q) == 2


def test_reserved_suffix_and_damaged_files_are_refused() -> None:
    with pytest.raises(ModelError, match="reserves"):
        quantize_int8({"x" + INT8_SCALE_SUFFIX: torch.randn(100, 100)})
    q = quantize_int8({"w": torch.randn(100, 100)})
    with pytest.raises(ModelError, match="has no scale.*re-export"):
        dequantize_int8({"w": q["w"]}, where="f.safetensors")
    with pytest.raises(ModelError, match="has no tensor"):
        dequantize_int8({"w" + INT8_SCALE_SUFFIX: q["w" + INT8_SCALE_SUFFIX]})


def _vae() -> MelVAE:
    torch.manual_seed(0)
    return MelVAE(VAEConfig(channels=[32, 64], latent_channels=16)).eval()


def test_save_model_int8_halves_fp16_and_loads_close_to_the_original(tmp_path) -> None:
    model = _vae()
    mel = torch.randn(2, 64, 40) - 5.0
    with torch.no_grad():
        ref = model(mel)
    save_model(model.half().float(), tmp_path / "fp32")
    save_model(model.half(), tmp_path / "fp16")
    save_model(model, tmp_path / "int8", storage="int8")
    sizes = {k: (tmp_path / k / "model.safetensors").stat().st_size for k in ("fp32", "fp16", "int8")}
    # the tiny model's small tensors stay fp16 (a shipped denoiser's whole directory: 19.3 -> 9.8 MB)
    assert sizes["int8"] < 0.7 * sizes["fp16"] and sizes["fp16"] < 0.55 * sizes["fp32"]
    with safe_open(str(tmp_path / "int8" / "model.safetensors"), framework="pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert "I8" in dtypes
    loaded = load_model(tmp_path / "int8")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        out = loaded(mel)
    # close to the original, not equal to it (the codes are rounded)
    rel = float((out - ref).abs().max() / ref.abs().max())
    assert 0 < rel < 0.02
    # saving what was loaded again gives the same codes: int8 storage is stable under re-export
    save_model(loaded, tmp_path / "again", storage="int8")
    a, b = (
        load_file(str(tmp_path / "int8" / "model.safetensors")),
        load_file(str(tmp_path / "again" / "model.safetensors")),
    )
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a if a[k].dtype == torch.int8)


def test_unknown_storage_and_a_damaged_int8_file_are_clear_errors(tmp_path) -> None:
    model = _vae()
    with pytest.raises(ConfigError, match="storage='int4'.*valid: as_saved, int8"):
        save_model(model, tmp_path / "x", storage="int4")
    save_model(model, tmp_path / "int8", storage="int8")
    weights = tmp_path / "int8" / "model.safetensors"
    state = load_file(str(weights))
    dropped = next(k for k in state if k.endswith(INT8_SCALE_SUFFIX))
    save_file({k: v for k, v in state.items() if k != dropped}, str(weights))
    with pytest.raises(ModelError, match="has no scale"):
        load_model(tmp_path / "int8")
