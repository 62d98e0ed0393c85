"""The latent-diffusion objective: latents from the frozen VAE, cached captions, one noise definition shared with
the samplers, seeded caption dropping, and frozen parts kept out of optimizers, EMA and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundsmith.models.latent_diffusion import LatentDenoiserConfig, LatentDiffusion, LatentDiffusionConfig
from soundsmith.models.registry import SHIPPED_ENV, ShippedRef, frozen_component, save_model
from soundsmith.models.vae import MelVAE, VAEConfig
from soundsmith.models.vocoder import Vocoder, VocoderConfig
from soundsmith.sampling.diffusion import NoiseSchedule
from soundsmith.train.config import TrainConfig
from soundsmith.train.ema import EMA
from soundsmith.train.objectives import get_objective
from soundsmith.train.objectives.latent_diffusion import LatentDiffusionObjective, pad_tokens

SR = 16000


@pytest.fixture
def model(tmp_path, monkeypatch) -> LatentDiffusion:
    """A tiny model whose VAE and vocoder are shipped models (frozen, by reference)."""
    torch.manual_seed(0)
    save_model(MelVAE(VAEConfig(channels=[16, 32, 32], latent_channels=8)), tmp_path / "shipped" / "t_vae")
    save_model(Vocoder(VocoderConfig(dim=32, intermediate_dim=64, depth=2)), tmp_path / "shipped" / "t_voc")
    monkeypatch.setenv(SHIPPED_ENV, str(tmp_path / "shipped"))
    denoiser = LatentDenoiserConfig(
        latent_channels=4, latent_bins=2, d_model=32, layers=2, heads=2, text_dim=32
    )
    config = LatentDiffusionConfig(
        denoiser=denoiser, vae="t_vae", vocoder="t_voc", text_encoder="hashed:32", steps=2, duration=0.5
    )
    return LatentDiffusion(config)


def _batch(n: int = 4, seconds: float = 0.5) -> dict:
    t = np.arange(int(seconds * SR)) / SR
    audio = np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t) for i in range(n)]).astype(np.float32)
    return {
        "audio": torch.from_numpy(audio),
        "caption": ["a bell rings", "", "rain falls softly", "a bell rings"][:n],
        "labels": [["bell"], ["rain"], ["rain"], ["bell"]][:n],
    }


def test_the_declared_objective_is_this_one(model):
    assert get_objective("latent_diffusion") is LatentDiffusionObjective
    assert LatentDiffusionObjective(model, sample_rate=8000).sample_rate == 8000


def test_prepare_batch_gives_vae_latents_and_cached_text(model):
    obj = LatentDiffusionObjective(model)
    calls = []
    encode = model.encode_text
    model.encode_text = lambda prompts: calls.append(list(prompts)) or encode(prompts)
    batch = obj.prepare_batch(_batch())
    assert batch["latents"].shape == (4, 4, 2, model.latent_frames(SR // 2))
    torch.testing.assert_close(batch["latents"], model.audio_to_latents(batch["audio"]))  # posterior mean
    assert batch["captions"][1] == "rain"  # an empty caption falls back to the labels
    assert calls == [["a bell rings", "rain", "rain falls softly"]]  # each distinct caption once
    obj.prepare_batch(_batch())
    assert len(calls) == 1  # second epoch: all from the cache
    model.encode_text = encode
    tokens, mask, pooled = model.encode_text(batch["captions"])
    torch.testing.assert_close(batch["text_pooled"], pooled)
    torch.testing.assert_close(batch["text_mask"], mask)
    torch.testing.assert_close(batch["text_tokens"] * mask[..., None], tokens * mask[..., None])


def test_pad_tokens():
    tokens, mask = pad_tokens([torch.ones(2, 3), torch.ones(4, 3)])
    assert tokens.shape == (2, 4, 3) and mask.tolist() == [[True, True, False, False], [True] * 4]
    assert tokens[0, 2:].abs().sum() == 0


@pytest.mark.parametrize("prediction", ["flow", "epsilon", "v_prediction"])
def test_loss_is_mse_to_the_schedules_target(model, prediction):
    model.config.denoiser.prediction = prediction
    model.config.sampler = "flow_euler" if prediction == "flow" else "ddim"
    obj = LatentDiffusionObjective(model)
    batch = obj.prepare_batch(_batch())
    obj.global_step = 7
    schedule = NoiseSchedule(**model.config.schedule_kwargs())
    assert schedule.prediction_type == prediction
    gen = obj._generator("step")
    x_t, t, target = schedule.training_pair(batch["latents"], gen)
    drop = torch.rand(4, generator=gen) < model.config.cond_drop_prob
    with torch.no_grad():
        pred = model(
            x_t, t.float() / 1000, batch["text_tokens"], batch["text_mask"], batch["text_pooled"], drop
        )
        loss = obj.losses(batch, 0)["loss"]
    torch.testing.assert_close(loss, torch.mean((pred - target) ** 2))
    if prediction == "flow":  # the untrained model predicts 0: the loss is E[(noise - x0)^2]
        assert float(loss) > 0.5


def test_same_step_same_draws_other_step_other_draws(model):
    obj = LatentDiffusionObjective(model)
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.normal_(0, 0.05)
    batch = obj.prepare_batch(_batch())
    with torch.no_grad():
        obj.global_step = 3
        a, b = float(obj.losses(batch, 0)["loss"]), float(obj.losses(batch, 0)["loss"])
        obj.global_step = 4
        assert a == b and float(obj.losses(batch, 0)["loss"]) != a


def test_captions_are_dropped_about_ten_percent_of_the_time(model):
    obj = LatentDiffusionObjective(model)
    batch = obj.prepare_batch(_batch())
    dropped = []
    with torch.no_grad():
        for step in range(300):
            obj.global_step = step
            dropped.append(float(obj.losses(batch, 0)["dropped"]))
    assert 0.06 < np.mean(dropped) < 0.14


def _randomise(model) -> None:
    """Every denoiser weight gets a value (the output layers and null embeddings start at zero)."""
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.normal_(0, 0.2)


def test_dropped_captions_reach_the_denoiser_and_kept_ones_do_not_leak(model):
    _randomise(model)
    obj = LatentDiffusionObjective(model)
    batch = obj.prepare_batch(_batch())
    other = dict(batch)  # the same latents with other captions
    other["text_tokens"] = batch["text_tokens"].flip(0)
    other["text_mask"] = batch["text_mask"].flip(0)
    other["text_pooled"] = batch["text_pooled"].flip(0)

    def loss(b, p):
        with torch.no_grad():
            out, drop = obj.denoising_loss(b, torch.Generator().manual_seed(3), drop_prob=p)
        return float(out), drop

    kept, drop = loss(batch, 0.0)
    assert drop.dtype == torch.bool and drop.shape == (4,) and not drop.any()
    with torch.no_grad():  # the default (validation, fine-tuning) drops nothing
        default, drop = obj.denoising_loss(batch, torch.Generator().manual_seed(3))
    assert float(default) == kept and not drop.any()
    three = obj.prepare_batch(_batch(3))  # 3 clips of 4 latent channels: the mask follows the clips
    with torch.no_grad():
        assert obj.denoising_loss(three, torch.Generator().manual_seed(3))[1].shape == (3,)
    assert kept != loss(other, 0.0)[0]  # the captions condition the prediction
    every, drop = loss(batch, 1.0)
    assert drop.all() and every != kept
    assert every == loss(other, 1.0)[0]  # every caption dropped: the prediction no longer depends on them
    with torch.no_grad():  # through losses(): the replayed drop mask reaches the model
        model.config.cond_drop_prob = 0.5
        obj.global_step = 11
        gen = obj._generator("step")
        x_t, t, target = obj.schedule.training_pair(batch["latents"], gen)
        drop = torch.rand(4, generator=gen) < 0.5
        assert 0 < int(drop.sum()) < 4
        pred = model(
            x_t, t.float() / 1000, batch["text_tokens"], batch["text_mask"], batch["text_pooled"], drop
        )
        out = obj.losses(batch, 0)
    torch.testing.assert_close(out["loss"], torch.mean((pred - target) ** 2))
    assert float(out["dropped"]) == float(drop.float().mean())
    model.config.cond_drop_prob = 0.0
    with torch.no_grad():
        assert float(obj.losses(batch, 0)["dropped"]) == 0.0


def test_losses_of_a_raw_batch_prepare_it_first(model):
    _randomise(model)
    obj = LatentDiffusionObjective(model)
    obj.global_step = 2
    with torch.no_grad():
        raw = obj.losses(_batch(), 0)["loss"]
        prepared = obj.losses(obj.prepare_batch(_batch()), 0)["loss"]
    torch.testing.assert_close(raw, prepared)


def test_the_caption_cache_is_cleared_when_the_new_captions_would_overflow_it(model):
    obj = LatentDiffusionObjective(model)
    obj._captions.size = 4
    obj.encode_captions(["a", "b"])
    obj.encode_captions(["c", "d"])  # 2 + 2 = 4: fits
    assert set(obj._captions.rows) == {"a", "b", "c", "d"}
    obj.encode_captions(["e"])  # 4 + 1 > 4: cleared first
    assert set(obj._captions.rows) == {"e"}
    tokens, mask = pad_tokens([torch.ones(2, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)])
    assert tokens.dtype == torch.float64 and mask.tolist() == [[True, True], [True, False]]


def test_frozen_parts_never_reach_the_optimizer_ema_or_checkpoints(model, tmp_path):
    obj = LatentDiffusionObjective(model)
    obj.prepare_batch(_batch())  # builds the frozen parts
    frozen = {id(p) for name in ("vae", "vocoder") for p in model.part(name).parameters()}
    assert model.part("vae") is frozen_component(ShippedRef("t_vae"))  # the one shared instance
    assert frozen
    (opt,) = obj.configure_optimizers(TrainConfig())
    optimized = {id(p) for g in opt.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in model.denoiser.parameters()}
    assert not optimized & frozen
    assert all(k.startswith("model.denoiser.") for k in obj.state_dict())  # what training checkpoints hold
    assert all(k.startswith("denoiser.") for k in EMA(model, 0.99).shadow)
    save_model(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(model):
    obj = LatentDiffusionObjective(model)
    batch = obj.prepare_batch(_batch())
    (opt,) = obj.configure_optimizers(TrainConfig(lr=3e-3))
    with torch.no_grad():
        before = float(obj.losses(batch, 0)["loss"])
    for _ in range(20):
        opt.zero_grad()
        obj.losses(batch, 0)["loss"].backward()
        opt.step()
    with torch.no_grad():
        assert float(obj.losses(batch, 0)["loss"]) < 0.9 * before


def test_sample_generates_short_clips_from_the_batch_captions(model):
    obj = LatentDiffusionObjective(model)
    obj.sample_seconds = 0.25
    model.train()
    audio = obj.sample(obj.prepare_batch(_batch()))
    assert audio.shape == (2, SR // 4) and torch.isfinite(audio).all()
    assert model.training  # the mode is restored


def test_a_sampler_that_cannot_run_the_prediction_fails_at_once(model):
    from soundsmith.errors import ConfigError

    model.config.sampler = "heun"
    with pytest.raises(ConfigError, match="unknown sampler 'heun'"):
        LatentDiffusionObjective(model)
    model.config.sampler = "ddim"  # flow prediction: ddim cannot run it
    with pytest.raises(ConfigError, match="does not run prediction_type 'flow'"):
        LatentDiffusionObjective(model)


def test_the_caption_cache_encodes_each_missing_caption_once_and_keeps_order():
    from soundsmith.train.objectives.base import CaptionCache

    asked = []
    cache = CaptionCache(lambda captions: asked.append(list(captions)) or [c.upper() for c in captions], size=3)
    assert cache(["a", "b", "a"]) == ["A", "B", "A"]
    assert cache(["b"]) == ["B"] and asked == [["a", "b"]]  # repeats and cached captions are not encoded again
    assert cache(["c", "d"]) == ["C", "D"] and set(cache.rows) == {"c", "d"}  # 2 + 2 > 3: emptied first
    with pytest.raises(ValueError):  # an encoder that returns the wrong number of rows is not silently zipped
        CaptionCache(lambda captions: ["x"])(["a", "b"])
