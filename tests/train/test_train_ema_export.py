"""With EMA on, the exported model (``RUN/model/``) and what generates from it hold the EMA weights.

A tiny WaveNet trains a few steps with a high learning rate and ``ema_decay=0.5`` so that the average and the
raw weights are far apart; the exported tensors must equal the EMA shadow exactly and differ from the raw
weights, and a pipeline loaded from ``RUN/model`` must generate what the averaged model generates.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from train_fixtures import SineSet, small_config

from soundsmith.audio import mu_law_decode
from soundsmith.models.registry import load_model
from soundsmith.models.wavenet import WaveNet, WaveNetConfig
from soundsmith.pipelines import load_pipeline
from soundsmith.sampling.wavenet import generate_wavenet
from soundsmith.train import EMA, Trainer
from soundsmith.train.checkpoint import load_checkpoint
from soundsmith.train.objectives.wavenet import WaveNetObjective


def _train(out_dir, ema_decay: float, max_steps: int = 6) -> Trainer:
    torch.manual_seed(0)
    cfg = dict(residual_channels=8, dilation_channels=8, skip_channels=16, stacks=1, layers_per_stack=3)
    model = WaveNet(WaveNetConfig(sample_rate=800, **cfg))
    trainer = Trainer(
        WaveNetObjective(model),
        SineSet(16),
        None,
        small_config(max_steps=max_steps, lr=3e-2, ema_decay=ema_decay, checkpoint_every=3, warmup_steps=0),
        out_dir,
    )
    trainer.fit()
    return trainer


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_exported_model_holds_the_ema_weights(tmp_path, one_thread):
    trainer = _train(tmp_path, ema_decay=0.5)
    raw = {k: v.detach().clone() for k, v in trainer.objective.model.state_dict().items()}
    shadow = trainer.ema.shadow
    exported = load_model(tmp_path / "model").state_dict()
    assert exported.keys() == shadow.keys()
    for k in shadow:
        assert torch.equal(exported[k].float(), shadow[k]), f"{k}: exported tensor is not the EMA shadow"
    assert _max_diff(exported, raw) > 1e-3, "exported weights equal the raw weights: EMA not exported"
    # the EMA shadow is the one in the last checkpoint too (what a resumed run continues from)
    state = load_checkpoint(tmp_path / "checkpoints" / "step-0000006.ckpt")
    assert all(torch.equal(state["ema"]["shadow"][k], shadow[k]) for k in shadow)


def test_generation_from_the_run_uses_the_ema_weights(tmp_path, one_thread):
    trainer = _train(tmp_path, ema_decay=0.5)
    averaged = trainer.ema.averaged_model(trainer.objective.model).eval()
    raw = trainer.objective.model.eval()
    pipe = load_pipeline(tmp_path / "model")
    codes = generate_wavenet(pipe.model, 200, seed=3)
    assert torch.equal(codes, generate_wavenet(averaged, 200, seed=3))
    assert not torch.equal(codes, generate_wavenet(raw, 200, seed=3))
    # the pipeline's own call (what `generate` runs) draws the averaged model's codes
    audio = torch.as_tensor(pipe("", duration=200 / 800, seed=3).audio).reshape(1, -1)
    assert torch.allclose(audio.double(), mu_law_decode(codes).double(), atol=1e-6)


def test_without_ema_the_raw_weights_are_exported(tmp_path, one_thread):
    trainer = _train(tmp_path, ema_decay=0.0, max_steps=3)
    assert trainer.ema is None
    raw = trainer.objective.model.state_dict()
    exported = load_model(tmp_path / "model").state_dict()
    assert all(torch.equal(exported[k], raw[k]) for k in raw)


def test_ema_decay_range_dtypes_and_state_errors():
    model = nn.BatchNorm1d(3)  # float parameters and an integer buffer (num_batches_tracked)
    EMA(model, 0.0)  # 0 is allowed: the shadow follows the weights
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"^EMA decay must be in \[0, 1\), got {bad}$"):
            EMA(model, bad)
    ema = EMA(model.half(), 0.9)
    assert ema.shadow["weight"].dtype == torch.float32  # averaged in float32 whatever the model's dtype
    assert ema.shadow["num_batches_tracked"].dtype == torch.long  # integer buffers stay integers
    state = ema.state_dict()
    del state["shadow"]["weight"], state["shadow"]["bias"]
    with pytest.raises(KeyError, match=r"EMA state lacks \['bias', 'weight'\]"):
        EMA(model, 0.9).load_state_dict(state)
