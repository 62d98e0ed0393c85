"""WaveNet network and objective: shapes, receptive field, causality, conditioning, save/load, training."""

from __future__ import annotations

import pytest
import torch

from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.wavenet import WaveNet, WaveNetConfig


def tiny_config(**kw) -> WaveNetConfig:
    base = dict(residual_channels=8, dilation_channels=8, skip_channels=16, stacks=2, layers_per_stack=3)
    base.update(kw)
    return WaveNetConfig(**base)


def build(seed: int = 0, **kw) -> WaveNet:
    torch.manual_seed(seed)
    return WaveNet(tiny_config(**kw))


def test_forward_shape_and_dtype():
    model = build()
    x = torch.randint(0, 256, (3, 40), generator=torch.Generator().manual_seed(1))
    logits = model(x)
    assert logits.shape == (3, 256, 40)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("stacks,layers,kernel", [(1, 1, 2), (2, 3, 2), (3, 4, 3)])
def test_receptive_field_formula(stacks, layers, kernel):
    cfg = tiny_config(stacks=stacks, layers_per_stack=layers, kernel_size=kernel)
    assert cfg.receptive_field == (kernel - 1) * stacks * (2**layers - 1) + 1
    assert cfg.dilations == [2**i for _ in range(stacks) for i in range(layers)]
    assert WaveNet(cfg).receptive_field == cfg.receptive_field


def test_base_preset_receptive_field():
    assert WaveNetConfig().receptive_field == 4095


def _input_gradient(model: WaveNet, x: torch.Tensor, t: int) -> torch.Tensor:
    """|d logits[0, :, t] / d embedded input| summed over channels: [T]."""
    store = {}

    def hook(_module, _inp, out):
        out.retain_grad()
        store["emb"] = out

    handle = model.embed.register_forward_hook(hook)
    try:
        model(x)[0, :, t].sum().backward()
    finally:
        handle.remove()
    return store["emb"].grad[0].abs().sum(-1)


def test_causality_and_receptive_field_by_gradient():
    model = build(kernel_size=2).double()
    rf = model.receptive_field
    x = torch.randint(0, 256, (1, 40), generator=torch.Generator().manual_seed(2))
    t = 30
    grad = _input_gradient(model, x, t)
    assert torch.all(grad[t + 1 :] == 0), "output t depends on a future input"
    support = torch.nonzero(grad).flatten()
    assert support.min().item() == t - rf + 1
    assert support.max().item() == t


def test_causality_with_all_conditioning():
    model = build(gc_cardinality=3, text_dim=5, lc_channels=4, hop_length=4).double()
    x = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(3))
    mel = torch.randn(1, 4, 7, dtype=torch.float64)
    a = model(x, gc_ids=torch.tensor([1]), text_emb=torch.ones(1, 5, dtype=torch.float64), mel=mel)
    y = x.clone()
    y[0, 15:] = (y[0, 15:] + 7) % 256  # change the future of position 14
    b = model(y, gc_ids=torch.tensor([1]), text_emb=torch.ones(1, 5, dtype=torch.float64), mel=mel)
    assert torch.equal(a[..., :15], b[..., :15])
    assert not torch.equal(a[..., 15:], b[..., 15:])


def test_prefix_forward_equals_full_forward():
    model = build().double()
    x = torch.randint(0, 256, (2, 30), generator=torch.Generator().manual_seed(4))
    full = model(x)
    for n in (1, 7, 29):
        assert torch.allclose(model(x[:, :n]), full[..., :n], atol=1e-12)


@pytest.mark.parametrize("upsample", ["transposed", "repeat_conv"])
def test_conditioning_changes_output(upsample):
    model = build(gc_cardinality=3, text_dim=5, lc_channels=4, lc_upsample=upsample, hop_length=4)
    x = torch.randint(0, 256, (2, 20), generator=torch.Generator().manual_seed(5))
    mel = torch.randn(2, 4, 6)
    text = torch.randn(2, 5)
    base = model(x, gc_ids=torch.tensor([0, 1]), text_emb=text, mel=mel)
    assert base.shape == (2, 256, 20)
    assert not torch.allclose(base, model(x, gc_ids=torch.tensor([2, 2]), text_emb=text, mel=mel))
    assert not torch.allclose(base, model(x, gc_ids=torch.tensor([0, 1]), text_emb=text * 2, mel=mel))
    assert not torch.allclose(base, model(x, gc_ids=torch.tensor([0, 1]), text_emb=text, mel=mel + 1))


def test_bad_inputs_raise_named_errors():
    with pytest.raises(ConfigError, match="lc_upsample"):
        tiny_config(lc_upsample="nearest")
    with pytest.raises(ConfigError, match="kernel_size"):
        tiny_config(kernel_size=1)
    with pytest.raises(ConfigError, match="labels"):
        tiny_config(gc_cardinality=2, labels=["a", "b", "c"])
    model = build(gc_cardinality=2, lc_channels=4, hop_length=4)
    x = torch.zeros(1, 12, dtype=torch.long)
    with pytest.raises(ModelError, match="gc_ids"):
        model(x, gc_ids=torch.tensor([5]), mel=torch.zeros(1, 4, 3))
    with pytest.raises(ModelError, match="mel"):
        model(x)
    with pytest.raises(ModelError, match="frames"):
        model(x, mel=torch.zeros(1, 4, 2))  # 2 frames x hop 4 < 12 samples
    with pytest.raises(ModelError, match="no global conditioning"):
        build()(x, gc_ids=torch.tensor([0]))


def test_macs_per_sample_counts_layers():
    cfg = tiny_config()
    r, d, s = 8, 8, 16
    per_layer = 2 * r * 2 * d + d * (r + s)
    assert cfg.macs_per_sample() == 6 * per_layer + s * s + s * 256


def test_save_load_round_trip(tmp_path):
    registry = pytest.importorskip("soundsmith.models.registry")
    model = build(gc_cardinality=2, labels=["dog", "rain"]).eval()
    registry.save_model(model, tmp_path / "m")
    loaded = registry.load_model(tmp_path / "m")
    assert isinstance(loaded, WaveNet)
    assert loaded.config == model.config
    x = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(6))
    ids = torch.tensor([0, 1])
    assert torch.equal(model(x, gc_ids=ids), loaded(x, gc_ids=ids))


# --- objective ------------------------------------------------------------------------------------------------
def _batch(n: int = 4, t: int = 400) -> dict:
    g = torch.Generator().manual_seed(7)
    tt = torch.arange(t) / 16000
    freqs = torch.tensor([220.0, 330.0, 440.0, 550.0])[:n, None]
    audio = 0.5 * torch.sin(2 * torch.pi * freqs * tt) + 0.01 * torch.randn(n, t, generator=g)
    labels = torch.zeros(n, 3)
    labels[torch.arange(n), torch.arange(n) % 3] = 1
    return {"audio": audio, "caption": ["a dog barks", "", "rain", "violin"][:n], "label_ids": labels}


def test_objective_prepares_conditioning():
    from soundsmith.text import build_text_encoder
    from soundsmith.train.objectives.wavenet import OBJECTIVE

    model = build(gc_cardinality=3, text_dim=16, text_encoder="hashed:16", lc_channels=8, hop_length=40)
    obj = OBJECTIVE(model, text_encoder=build_text_encoder("hashed:16"))
    batch = obj.prepare_batch(_batch())
    assert batch["codes"].shape == (4, 400) and batch["codes"].dtype == torch.long
    assert batch["codes"].min() >= 0 and batch["codes"].max() <= 255
    assert batch["gc_ids"].tolist() == [0, 1, 2, 0]
    assert batch["text_emb"].shape == (4, 16)
    assert torch.all(batch["text_emb"][1] == 0)  # empty caption -> unconditional row
    assert batch["text_emb"][0].abs().sum() > 0
    assert batch["wavenet_mel"].shape == (4, 8, 400 // 40 + 1)
    out = obj.losses(batch, 0)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    clips = obj.sample(batch)
    assert clips.shape == (2, 400) and clips.abs().max() <= 1.0


def test_objective_text_dim_mismatch_raises():
    from soundsmith.errors import TrainingError
    from soundsmith.text import build_text_encoder
    from soundsmith.train.objectives.wavenet import OBJECTIVE

    with pytest.raises(TrainingError, match="text_dim"):
        OBJECTIVE(build(text_dim=8), text_encoder=build_text_encoder("hashed:16"))


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    from soundsmith.train.objectives.wavenet import OBJECTIVE

    model = build()
    obj = OBJECTIVE(model, skip_receptive_field=True)
    batch = obj.prepare_batch(_batch())
    opt = torch.optim.Adam(obj.parameters(), lr=3e-3)
    first = obj.losses(batch, 0)["loss"].item()
    for _ in range(15):
        opt.zero_grad()
        obj.losses(batch, 0)["loss"].backward()
        opt.step()
    last = obj.losses(batch, 0)["loss"].item()
    assert last < first - 0.3, (first, last)
