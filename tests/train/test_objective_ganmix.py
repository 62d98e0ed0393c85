"""GANmix objective: losses equal hand-computed references, R1, the two optimizers never touch each other's
networks, seeded draws, the diagnostics (discriminator accuracy, diversity), and a short run through the engine."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch.utils.data import Dataset

from soundsmith import families
from soundsmith.errors import TrainingError
from soundsmith.train import Trainer
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives import get_objective
from soundsmith.train.objectives.ganmix import (
    GANmixObjective,
    discriminator_loss,
    generator_loss,
    latent_moment_distance,
    r1_penalty,
    rejection_loss,
)
from soundsmith.train.runconfig import load_run_config

REAL = torch.tensor([0.5, -0.2])
FAKE = torch.tensor([0.1, -0.6])


def objective(**overrides) -> GANmixObjective:
    family = families.get("ganmix")
    cfg = dataclasses.replace(load_run_config(family.tiny_config_path()).model, **overrides)
    torch.manual_seed(0)
    return GANmixObjective(family.contract_build(cfg))


def batch(n: int = 4) -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "audio": 0.1 * torch.randn(n, 8000, generator=g),
        "caption": [f"a tone number {i % 2}" for i in range(n)],
        "labels": [["tone"]] * n,
    }


def test_the_declared_objective_is_this_one():
    assert get_objective("ganmix") is GANmixObjective


def _log(x: float) -> float:
    return math.log(x)


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_bce_on_a_tanh_output_read_as_a_probability_by_hand():
    # p = (1 + y) / 2: real p = 0.75, 0.4; fake p = 0.55, 0.2
    d = -(_log(0.75) + _log(0.4)) / 2 - (_log(1 - 0.55) + _log(1 - 0.2)) / 2
    g = -(_log(0.55) + _log(0.2)) / 2
    assert float(discriminator_loss(REAL, FAKE, "bce", tanh=True)) == pytest.approx(d, rel=1e-6)
    assert float(generator_loss(FAKE, "bce", tanh=True)) == pytest.approx(g, rel=1e-6)
    # label smoothing 0.1: the real target is 0.9
    ds = -sum(0.9 * _log(p) + 0.1 * _log(1 - p) for p in (0.75, 0.4)) / 2 - (_log(0.45) + _log(0.8)) / 2
    assert float(discriminator_loss(REAL, FAKE, "bce", tanh=True, smoothing=0.1)) == pytest.approx(
        ds, rel=1e-6
    )


def test_bce_on_a_tanh_output_read_as_a_logit_by_hand():
    d = -(_log(_sig(0.5)) + _log(_sig(-0.2))) / 2 - (_log(1 - _sig(0.1)) + _log(1 - _sig(-0.6))) / 2
    g = -(_log(_sig(0.1)) + _log(_sig(-0.6))) / 2
    assert float(discriminator_loss(REAL, FAKE, "bce", tanh=True, tanh_as="logit")) == pytest.approx(
        d, rel=1e-6
    )
    assert float(generator_loss(FAKE, "bce", tanh=True, tanh_as="logit")) == pytest.approx(g, rel=1e-6)
    # a linear output is a logit whatever tanh_as says
    assert float(discriminator_loss(REAL, FAKE, "bce", tanh=False)) == pytest.approx(d, rel=1e-6)


def test_nonsaturating_and_hinge_by_hand():
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    d = (sp(-0.5) + sp(0.2)) / 2 + (sp(0.1) + sp(-0.6)) / 2
    assert float(discriminator_loss(REAL, FAKE, "nonsaturating")) == pytest.approx(d, rel=1e-6)
    assert float(generator_loss(FAKE, "nonsaturating")) == pytest.approx((sp(-0.1) + sp(0.6)) / 2, rel=1e-6)
    # hinge: relu(1 - real) = 0.5, 1.2; relu(1 + fake) = 1.1, 0.4
    assert float(discriminator_loss(REAL, FAKE, "hinge")) == pytest.approx((0.5 + 1.2) / 2 + (1.1 + 0.4) / 2)
    assert float(generator_loss(FAKE, "hinge")) == pytest.approx(0.25)


def test_saturated_tanh_bce_stays_finite():
    """The thesis saw NaN losses; BCE on (1 + tanh) / 2 clamps log(0) at -100 as torch.nn.BCELoss does."""
    loss = discriminator_loss(torch.tensor([-1.0]), torch.tensor([1.0]), "bce", tanh=True)
    assert torch.isfinite(loss) and float(loss) == pytest.approx(200.0)


def test_r1_is_the_squared_input_gradient():
    w = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    x = torch.randn(3, 2, 2, requires_grad=True)
    scores = (x * w).sum(dim=(1, 2)) + (x**2).sum(dim=(1, 2))  # d/dx = w + 2x
    expected = ((w + 2 * x.detach()) ** 2).flatten(1).sum(1).mean()
    torch.testing.assert_close(r1_penalty(scores, x), expected)


def test_objective_losses_are_the_functions_on_its_networks():
    obj = objective(label_smoothing=0.1)
    b = obj.prepare_batch(batch())
    assert b["latents"].shape == (4, 8, 13) and b["text_pooled"].shape == (4, 32)
    fake = obj.fake(b)
    with torch.no_grad():
        s_real, s_fake = obj.disc(b["latents"], b["text_pooled"]), obj.disc(fake, b["text_pooled"])
    g = obj.losses(b, 0)
    d = obj.losses(b, 1)
    torch.testing.assert_close(g["loss"], generator_loss(s_fake, "bce", tanh=True))
    torch.testing.assert_close(d["loss"], discriminator_loss(s_real, s_fake, "bce", tanh=True, smoothing=0.1))
    assert float(d["acc_real"]) == float((s_real > 0).float().mean())
    assert float(d["acc_fake"]) == float((s_fake < 0).float().mean())


def text_matters(obj: GANmixObjective) -> None:
    """Discriminator weights drawn large, so that its score depends on the caption well beyond float tolerance."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in obj.disc.parameters():
            p.copy_(0.6 * torch.randn(p.shape, generator=g))


def distinct(b: dict) -> dict:
    """Every clip its own caption (the shared batch() repeats two)."""
    return {**b, "caption": [f"sound number {i} of {len(b['caption'])}" for i in range(len(b["caption"]))]}


@pytest.mark.parametrize("loss", ["bce", "nonsaturating", "hinge"])
def test_rejection_loss_by_hand(loss):
    y = torch.tensor([0.3, -1.5])
    expected = {
        "bce": -(math.log(1 - _sig(0.3)) + math.log(1 - _sig(-1.5))) / 2,
        "nonsaturating": (math.log1p(math.exp(0.3)) + math.log1p(math.exp(-1.5))) / 2,
        "hinge": (1.3 + 0.0) / 2,
    }[loss]
    assert float(rejection_loss(y, loss)) == pytest.approx(expected, rel=1e-6)
    # the discriminator's loss is its real term plus the rejection of the fakes
    torch.testing.assert_close(
        discriminator_loss(REAL, FAKE, "hinge"), torch.relu(1 - REAL).mean() + rejection_loss(FAKE, "hinge")
    )
    with pytest.raises(TrainingError, match="unknown GAN loss 'wgan'"):
        rejection_loss(y, "wgan")


def test_the_mismatch_term_rejects_real_latents_under_the_next_clips_caption():
    obj = objective(mismatch_weight=0.5, loss="hinge", discriminator={"output": "linear", "hidden": [16]})
    text_matters(obj)
    b = obj.prepare_batch(distinct(batch(3)))
    real, pooled = b["latents"], b["text_pooled"]
    d = obj.losses(b, 1)
    with torch.no_grad():
        wrong = torch.stack([pooled[2], pooled[0], pooled[1]])  # clip i under clip i-1's caption
        s_mis = obj.disc(real, wrong)
    torch.testing.assert_close(d["loss"], d["adv"] + 0.5 * torch.relu(1 + s_mis).mean())
    assert float(d["acc_mismatch"]) == float((s_mis < 0).float().mean())
    # off by default, and a batch of one has no other caption to borrow
    assert "acc_mismatch" not in objective(loss="hinge").losses(b, 1)
    one = obj.prepare_batch(batch(1))
    d1 = obj.losses(one, 1)
    torch.testing.assert_close(d1["loss"], d1["adv"])
    assert "acc_mismatch" not in d1


def test_mismatch_weight_out_of_range_is_refused():
    from soundsmith.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mismatch_weight=-0.1 must be in \[0, 10\]"):
        objective(mismatch_weight=-0.1)


def test_the_mode_seeking_term_by_hand():
    obj = objective(mode_seeking_weight=0.5, loss="hinge", discriminator={"output": "linear", "hidden": [16]})
    b = obj.prepare_batch(batch())
    obj.global_step = 3
    out = obj.losses(b, 0)
    real, pooled = b["latents"], b["text_pooled"]
    frames = real.shape[-1]
    z1, z2 = obj.noise(4, frames, "fake"), obj.noise(4, frames, "mode_seeking")
    with torch.no_grad():
        f1, f2 = obj.model(z1, pooled, frames), obj.model(z2, pooled, frames)
        adv = generator_loss(obj.disc(f1, pooled), "hinge")
    ratio = (f1 - f2).abs().mean() / (z1 - z2).abs().mean()
    torch.testing.assert_close(out["mode_seeking"], ratio)
    torch.testing.assert_close(out["loss"], adv + 0.5 / (ratio + 1e-5))
    # the term's gradient pushes the two draws apart: one small step on it alone raises the ratio
    gen = obj.model.generator
    gen.zero_grad()
    (0.5 / (obj.mode_seeking_ratio(b, obj.fake(b)) + 1e-5)).backward()
    with torch.no_grad():
        for p in gen.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
        assert float(obj.mode_seeking_ratio(b, obj.fake(b))) > float(ratio)
    # off by default: no term, no diagnostic
    plain = objective(loss="hinge", discriminator={"output": "linear", "hidden": [16]})
    assert "mode_seeking" not in plain.losses(plain.prepare_batch(batch()), 0)
    from soundsmith.errors import ConfigError

    with pytest.raises(ConfigError, match=r"mode_seeking_weight=11.0 must be in \[0, 10\]"):
        objective(mode_seeking_weight=11.0)


def test_the_diversity_diagnostic_reuses_the_mode_seeking_draw():
    obj = objective(mode_seeking_weight=0.2, loss="hinge", discriminator={"output": "linear", "hidden": [16]})
    b = obj.prepare_batch(batch())
    obj.global_step = 2
    calls = []
    obj.model.generator.register_forward_hook(lambda *args: calls.append(1))
    out = obj.losses(b, 0)
    assert len(calls) == 2  # this step's fake and the second draw; the diagnostic adds no third pass
    frames = b["latents"].shape[-1]
    with torch.no_grad():
        f1 = obj.model(obj.noise(4, frames, "fake"), b["text_pooled"], frames)
        f2 = obj.model(obj.noise(4, frames, "mode_seeking"), b["text_pooled"], frames)
    expected = (f1 - f2).pow(2).mean().sqrt() / (math.sqrt(2.0) * b["latents"].std())
    torch.testing.assert_close(out["diversity"], expected)


def test_r1_enters_the_discriminator_loss_with_its_weight_and_interval():
    obj = objective(
        r1_weight=2.0, r1_every=3, loss="hinge", discriminator={"output": "linear", "hidden": [16]}
    )
    b = obj.prepare_batch(batch())
    obj.global_step = 3
    d = obj.losses(b, 1)
    assert float(d["r1"]) > 0
    torch.testing.assert_close(d["loss"], d["adv"] + 0.5 * 2.0 * 3 * d["r1"])
    obj.global_step = 4  # off-interval step: no penalty
    assert "r1" not in obj.losses(b, 1)


def test_each_optimizer_steps_only_its_own_network():
    obj = objective()
    opt_g, opt_d = (spec.optimizer for spec in obj.configure_optimizers(TrainConfig(lr=1e-2)))
    g_params = {id(p) for grp in opt_g.param_groups for p in grp["params"]}
    d_params = {id(p) for grp in opt_d.param_groups for p in grp["params"]}
    assert g_params == {id(p) for p in obj.model.generator.parameters()}
    assert d_params == {id(p) for p in obj.disc.parameters()}
    frozen = [p for name in ("vae", "vocoder") for p in obj.model.part(name).parameters()]
    assert not any(p.requires_grad for p in frozen)
    b = obj.prepare_batch(batch())

    def snapshot(module):
        return [p.detach().clone() for p in module.parameters()]

    def same(a, module):
        return all(torch.equal(x, y) for x, y in zip(a, module.parameters(), strict=True))

    # as the engine: zero this optimizer's grads, its loss, backward, step
    for opt, i, moved, kept in (
        (opt_g, 0, obj.model.generator, obj.disc),
        (opt_d, 1, obj.disc, obj.model.generator),
    ):
        before_moved, before_kept, before_frozen = (
            snapshot(moved),
            snapshot(kept),
            [p.clone() for p in frozen],
        )
        opt.zero_grad(set_to_none=True)
        obj.losses(b, i)["loss"].backward()
        opt.step()
        assert not same(before_moved, moved), f"optimizer {i} did not move its own network"
        assert same(before_kept, kept), f"optimizer {i} moved the other network"
        assert all(torch.equal(x, y) for x, y in zip(before_frozen, frozen, strict=True))


def test_same_step_same_noise_other_step_other_noise():
    obj = objective()
    b = obj.prepare_batch(batch())
    obj.global_step = 7
    a = obj.fake(b)
    torch.testing.assert_close(obj.fake(b), a, rtol=0, atol=0)
    obj.global_step = 8
    assert not torch.equal(obj.fake(b), a)


def test_diversity_is_zero_when_the_generator_ignores_its_noise():
    obj = objective()
    b = obj.prepare_batch(batch())
    assert float(obj.losses(b, 0)["diversity"]) > 0
    with (
        torch.no_grad()
    ):  # the first layer's noise columns to zero: the output no longer depends on the noise
        obj.model.generator.body[0].weight[:, : obj.model.config.generator.noise_dim] = 0
    assert float(obj.losses(b, 0)["diversity"]) == 0.0


def test_latent_moment_distance_by_hand_and_validation_loss():
    real = torch.tensor([[[1.0, 3.0]], [[1.0, 3.0]]])  # one channel: mean 2, std (unbiased) 2 / sqrt(3)
    fake = torch.zeros(2, 1, 2)  # mean 0, std 0
    assert float(latent_moment_distance(fake, real)) == pytest.approx(4.0 + 4.0 / 3.0)
    assert float(latent_moment_distance(real, real)) == 0.0
    obj = objective()
    b = obj.prepare_batch(batch())
    out = obj.validate(b)
    with torch.no_grad():
        expected = float(latent_moment_distance(obj.fake(b), b["latents"]))
    assert out["loss"] == pytest.approx(expected)
    assert {"g_loss", "d_loss", "d_acc_real", "d_acc_fake", "g_diversity"} <= set(out)


class Clips(Dataset):
    def __init__(self, n: int) -> None:
        self.items = batch(n)

    def __len__(self) -> int:
        return len(self.items["audio"])

    def __getitem__(self, i: int) -> dict:
        return {"audio": self.items["audio"][i], "caption": self.items["caption"][i]}


def _engine_config(**kw) -> TrainConfig:
    values = dict(
        max_steps=4, batch_size=4, lr=1e-3, betas=(0.5, 0.999), schedule="step", step_every_epochs=1,
        clip_grad_norm=0.0, valid_every=0, sample_every=0, checkpoint_every=0, log_every=2,
        accelerator="cpu", devices=1,
    )  # fmt: skip
    return TrainConfig(**{**values, **kw})


def test_a_short_engine_run_logs_the_diagnostics(tmp_path):
    obj = objective()
    Trainer(obj, Clips(8), None, _engine_config(), tmp_path / "run").fit()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    for key in ("acc_real_1", "acc_fake_1", "diversity", "grad_norm", "grad_norm_1", "loss", "loss_1"):
        assert any(k.endswith(key) for k in keys), f"{key} not logged: {sorted(keys)}"


def test_kill_and_resume_gives_the_same_weights(tmp_path):
    """Step-seeded noise, spectral-norm vectors and both optimizers' states survive a resume bit for bit."""
    improved = {
        "generator": {"arch": "conv", "noise_dim": 4, "channels": 8, "blocks": 2, "kernel_size": 3},
        "discriminator": {"arch": "conv", "channels": 8, "blocks": 2, "kernel_size": 3, "output": "linear",
                          "spectral_norm": True, "projection": True},
        "loss": "hinge", "r1_weight": 1.0, "r1_every": 2, "disc_every": 2,
    }  # fmt: skip
    cfg = _engine_config(checkpoint_every=2)
    straight = objective(**improved)
    Trainer(straight, Clips(8), None, cfg, tmp_path / "a").fit()
    first = objective(**improved)
    Trainer(first, Clips(8), None, cfg, tmp_path / "b").fit(stop_at=2)
    resumed = objective(**improved)
    with torch.no_grad():  # other starting weights: only the checkpoint can make the result equal
        for p in resumed.parameters():
            p.add_(0.1)
    Trainer(resumed, Clips(8), None, cfg, tmp_path / "b").fit(resume=True)
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and any(k.startswith("disc.") for k in a)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)


def test_optimizers_carry_the_run_settings_and_the_discriminators_own():
    obj = objective(disc_lr=5e-4, disc_betas=[0.0, 0.9], gen_every=2, disc_every=3, clip_grad_norm=4.0)
    gen, disc = obj.configure_optimizers(TrainConfig(lr=2e-4, betas=(0.5, 0.999), weight_decay=0.01))
    g, d = gen.optimizer.param_groups[0], disc.optimizer.param_groups[0]
    assert (g["lr"], g["betas"], g["weight_decay"]) == (2e-4, (0.5, 0.999), 0.01)
    assert (d["lr"], d["betas"], d["weight_decay"]) == (5e-4, (0.0, 0.9), 0.01)
    assert (gen.every, disc.every, gen.clip_grad_norm, disc.clip_grad_norm) == (2, 3, 4.0, 4.0)
    _, disc = objective().configure_optimizers(TrainConfig(lr=2e-4, betas=(0.5, 0.999)))
    assert (disc.optimizer.param_groups[0]["lr"], disc.optimizer.param_groups[0]["betas"]) == (
        2e-4,
        (0.5, 0.999),
    )


def test_the_discriminator_step_reuses_the_generators_fake_of_its_step_and_batch_and_r1_applies_below_one():
    obj = objective(
        r1_weight=0.5,
        r1_every=1,
        diversity_every=1000,
        loss="hinge",
        discriminator={"output": "linear", "hidden": [16]},
    )
    b = obj.prepare_batch(batch())
    obj.global_step = 5
    calls = []
    fake = obj.fake
    obj.fake = lambda bb, *a, **k: calls.append(1) or fake(bb, *a, **k)
    g = obj.losses(b, 0)
    assert len(calls) == 1 and "d_fake" in g
    d = obj.losses(b, 1)  # the generator's fake of this step, reused
    assert len(calls) == 1 and float(d["r1"]) > 0  # a gamma below 1 still applies
    torch.testing.assert_close(d["loss"], d["adv"] + 0.5 * 0.5 * 1 * d["r1"])
    obj.losses(b, 1)  # the same step and batch: the same fake
    assert len(calls) == 1
    obj.losses(obj.prepare_batch(batch()), 1)  # an equal batch, but another tensor: a fresh one
    assert len(calls) == 2
    obj.global_step = 6
    obj.losses(b, 1)  # another step: a fresh one
    assert len(calls) == 3
    with pytest.raises(TrainingError, match="^GANmix objective has 2 optimizers, got opt_index=2$"):
        obj.losses(b, 2)
    raw = objective()
    raw.global_step = 1
    with torch.no_grad():  # a raw batch is prepared first, to the same numbers
        torch.testing.assert_close(
            raw.losses(batch(), 0)["loss"], raw.losses(raw.prepare_batch(batch()), 0)["loss"]
        )


def test_diversity_is_logged_on_its_interval_and_unknown_losses_are_named():
    obj = objective(diversity_every=3)
    b = obj.prepare_batch(batch())
    logged = []
    for step in range(1, 8):
        obj.global_step = step
        logged.append("diversity" in obj.losses(b, 0))
    assert logged == [False, False, True, False, False, True, False]
    for fn in (generator_loss, lambda y, loss: discriminator_loss(y, y, loss=loss)):
        with pytest.raises(TrainingError, match="^unknown GAN loss 'wgan'; use bce, nonsaturating or hinge$"):
            fn(torch.zeros(2), loss="wgan")
    obj = objective()
    obj._captions.size = 2
    obj.encode_captions(["a"])
    obj.encode_captions(["b"])  # 1 + 1 = 2: fits
    assert set(obj._captions.rows) == {"a", "b"}
    obj.encode_captions(["c"])
    assert set(obj._captions.rows) == {"c"}


def test_latent_moment_distance_per_channel():
    real = torch.tensor(
        [[[1.0, 3.0], [0.0, 0.0]], [[1.0, 3.0], [2.0, 2.0]]]
    )  # channel 0: mean 2; channel 1: mean 1
    fake = torch.zeros(2, 2, 2)
    want = ((4.0 + 4.0 / 3.0) + (1.0 + 4.0 / 3.0)) / 2  # per channel (mean gap^2 + std gap^2), averaged
    assert float(latent_moment_distance(fake, real)) == pytest.approx(want)
    assert float(latent_moment_distance(real, fake)) == pytest.approx(want)


def test_bce_defaults_to_logits():
    d = (
        -(math.log(_sig(0.5)) + math.log(_sig(-0.2))) / 2
        - (math.log(1 - _sig(0.1)) + math.log(1 - _sig(-0.6))) / 2
    )
    assert float(discriminator_loss(REAL, FAKE, loss="bce")) == pytest.approx(d, rel=1e-6)
    g = -(math.log(_sig(0.1)) + math.log(_sig(-0.6))) / 2
    assert float(generator_loss(FAKE, loss="bce")) == pytest.approx(g, rel=1e-6)


def test_discriminator_diagnostics_are_named_and_r1_is_absent_when_off():
    obj = objective(r1_weight=0.0, loss="hinge", discriminator={"output": "linear", "hidden": [16]})
    assert GANmixObjective(obj.model, sample_rate=8000).sample_rate == 8000
    b = obj.prepare_batch(batch())
    obj.global_step = 2
    assert set(obj.losses(b, 1)) == {"d_real", "d_fake", "acc_real", "acc_fake", "adv", "loss"}
    short = obj.prepare_batch(batch())
    assert obj.fake(short).shape == short["latents"].shape


def test_rejection_of_a_tanh_output_reads_it_as_a_probability_by_default():
    y = torch.tensor([0.4, -0.8])
    want = -(math.log(1 - 1.4 / 2) + math.log(1 - 0.2 / 2)) / 2
    assert float(rejection_loss(y, "bce", tanh=True)) == pytest.approx(want, rel=1e-6)


def test_losses_default_to_the_generators_turn():
    obj = objective()
    b = obj.prepare_batch(batch())
    default, gen = obj.losses(b), obj.losses(b, 0)
    assert set(default) == set(gen) and "acc_real" not in default
    torch.testing.assert_close(default["loss"], gen["loss"])


def test_the_mismatch_term_applies_from_a_batch_of_two():
    obj = objective(mismatch_weight=1.0, loss="hinge", discriminator={"output": "linear", "hidden": [16]})
    text_matters(obj)
    two = obj.prepare_batch(distinct(batch(2)))
    d = obj.losses(two, 1)
    with torch.no_grad():
        s_mis = obj.disc(two["latents"], two["text_pooled"].flip(0))  # each clip under the other's caption
    torch.testing.assert_close(d["loss"], d["adv"] + torch.relu(1 + s_mis).mean())


def test_conv_fakes_take_the_length_of_the_real_latents():
    conv = {"arch": "conv", "channels": 8, "blocks": 1, "kernel_size": 3}
    obj = objective(
        generator={**conv, "noise_dim": 4}, discriminator={**conv, "output": "linear", "projection": True}
    )
    g = torch.Generator().manual_seed(0)
    long = {"audio": 0.1 * torch.randn(2, 12000, generator=g), "caption": ["a", "b"], "labels": [["x"]] * 2}
    b = obj.prepare_batch(long)
    frames = math.ceil((12000 // 160 + 1) / 4)  # 19 latent frames, not the crop's 13, nor the 8 channels
    assert b["latents"].shape == (2, 8, frames)
    assert obj.fake(b).shape == (2, 8, frames)


def _write_pairs(path, n: int = 6, channels: int = 8, frames: int = 13, **meta_overrides) -> None:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(5)
    captions = [f"a tone number {i}" for i in range(n)]
    meta = {"captions": json.dumps(captions), **meta_overrides}
    tensors = {"latents": torch.randn(n, channels, frames, generator=g).half(), "seeds": torch.arange(n) + 100}
    save_file(tensors, str(path), metadata=meta)


def _conv(**overrides):
    conv = {"arch": "conv", "noise_dim": 8, "channels": 16, "blocks": 2, "kernel_size": 3}
    disc = {"arch": "conv", "channels": 16, "blocks": 1, "kernel_size": 3, "output": "linear", "projection": True}
    return objective(generator=conv, discriminator=disc, loss="hinge", **overrides)


def test_the_teacher_term_is_the_mse_to_the_teachers_latent_for_the_same_noise_and_caption(tmp_path):
    path = tmp_path / "pairs.safetensors"
    _write_pairs(path)
    obj = _conv(teacher_weight=2.0, teacher_pairs=str(path))
    b = obj.prepare_batch(batch())
    obj.global_step = 7
    out = obj.losses(b, 0)
    # by hand: the pairs drawn for step 7, each from its seed's noise, against the stored latents
    from safetensors.torch import load_file

    stored = load_file(str(path))
    index = torch.randint(6, (4,), generator=obj._generator("teacher")).tolist()
    noise = torch.stack([torch.randn(8, 13, generator=torch.Generator().manual_seed(100 + i)) for i in index])
    pooled = obj.model.encode_text([f"a tone number {i}" for i in index])
    with torch.no_grad():
        made = obj.model(noise, pooled, 13)
        adv = generator_loss(obj.disc(obj.fake(b), b["text_pooled"]), "hinge")
    teach = ((made - stored["latents"][index].float()) ** 2).mean()
    torch.testing.assert_close(out["teacher"], teach)
    torch.testing.assert_close(out["loss"], adv + 2.0 * teach)
    # the same step draws the same pairs; its gradient moves the generator toward the teacher
    torch.testing.assert_close(obj.teacher_loss(4), teach.detach(), rtol=1e-5, atol=1e-6)
    opt = torch.optim.SGD(obj.model.generator.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        obj.teacher_loss(4).backward()
        opt.step()
    assert float(obj.teacher_loss(4).detach()) < float(teach)
    # off by default: no pairs read, no diagnostic
    assert "teacher" not in _conv().losses(b, 0)


def test_teacher_pairs_that_do_not_fit_are_named_with_the_fix(tmp_path):
    from soundsmith.errors import ConfigError

    b = batch()
    missing = _conv(teacher_weight=1.0, teacher_pairs=str(tmp_path / "none.safetensors"))
    with pytest.raises(TrainingError, match=r"none.safetensors not found; make them with scripts/ganmix_teacher"):
        missing.losses(missing.prepare_batch(b), 0)
    wide = tmp_path / "wide.safetensors"
    _write_pairs(wide, channels=16)
    obj = _conv(teacher_weight=1.0, teacher_pairs=str(wide))
    with pytest.raises(TrainingError, match=r"\(16, 13\) per pair.*noise_dim=16"):
        obj.losses(obj.prepare_batch(b), 0)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    obj = _conv(teacher_weight=1.0, teacher_pairs=str(corrupt))
    with pytest.raises(TrainingError, match="corrupt.safetensors cannot be read"):
        obj.losses(obj.prepare_batch(b), 0)
    short = tmp_path / "short.safetensors"
    _write_pairs(short, captions=json.dumps(["only one"]))
    obj = _conv(teacher_weight=1.0, teacher_pairs=str(short))
    with pytest.raises(TrainingError, match="do not make N pairs"):
        obj.losses(obj.prepare_batch(b), 0)
    with pytest.raises(ConfigError, match="teacher_weight > 0 needs teacher_pairs"):
        _conv(teacher_weight=1.0)
    with pytest.raises(ConfigError, match=r"teacher_weight=101.0 must be in \[0, 100\]"):
        _conv(teacher_weight=101.0)


def test_teacher_batch_sets_the_pairs_a_step_and_heldout_pairs_are_scored_at_validation(tmp_path):
    from soundsmith.errors import ConfigError

    train, heldout = tmp_path / "pairs.safetensors", tmp_path / "heldout.safetensors"
    _write_pairs(train)
    _write_pairs(heldout, n=5)
    obj = _conv(teacher_weight=1.0, teacher_pairs=str(train), teacher_batch=3)
    b = obj.prepare_batch(batch())
    obj.global_step = 2
    seen = []
    mse = obj._pairs_mse
    obj._pairs_mse = lambda pairs, index: seen.append(list(index)) or mse(pairs, index)
    obj.losses(b, 0)
    assert len(seen) == 1 and len(seen[0]) == 3  # 3 pairs, not the batch's 4
    assert "g_teacher_heldout" not in obj.validate(b)  # no held-out file: no figure
    # the held-out figure is the teacher term over all 5 held-out pairs (fewer than heldout_pairs), by hand
    obj = _conv(teacher_weight=1.0, teacher_pairs=str(train), teacher_heldout_pairs=str(heldout))
    obj.global_step = 3
    from safetensors.torch import load_file

    stored = load_file(str(heldout))["latents"].float()
    noise = torch.stack([torch.randn(8, 13, generator=torch.Generator().manual_seed(100 + i)) for i in range(5)])
    with torch.no_grad():
        made = obj.model(noise, obj.model.encode_text([f"a tone number {i}" for i in range(5)]), 13)
    want = float(((made - stored) ** 2).mean())
    out = obj.validate(obj.prepare_batch(batch()))
    assert out["g_teacher_heldout"] == pytest.approx(want, rel=1e-5)
    # computed once per step: a second validation batch of the same step reuses it
    calls = []
    obj._pairs_mse = lambda pairs, index: calls.append(1) or mse(pairs, index)
    assert obj.validate(obj.prepare_batch(batch()))["g_teacher_heldout"] == pytest.approx(want, rel=1e-5)
    assert len(calls) == 1  # the generator's own teacher term only
    with pytest.raises(ConfigError, match=r"teacher_batch=0 must be in \[1, 4096\]"):
        _conv(teacher_batch=0)


def test_the_pairs_script_merges_files_of_one_teacher_and_refuses_overlaps(tmp_path):
    import importlib.util
    from pathlib import Path

    from safetensors.torch import load_file, save_file

    spec = importlib.util.spec_from_file_location(
        "teacher_pairs", Path(__file__).resolve().parents[2] / "scripts" / "ganmix_teacher_pairs.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def write(path, seeds, sha="abc"):
        captions = [f"clip {s}" for s in seeds]
        meta = {"captions": json.dumps(captions), "teacher_sha256": sha, "steps": "12", "duration": "4.0"}
        save_file({"latents": torch.full((len(seeds), 2, 3), float(seeds[0])).half(),
                   "seeds": torch.tensor(seeds)}, str(path), metadata=meta)

    a, b, c, d = (tmp_path / f"{k}.safetensors" for k in "abcd")
    write(a, [1, 2]), write(b, [7, 8, 9]), write(c, [2, 5]), write(d, [30], sha="other")
    out = tmp_path / "joined.safetensors"
    assert script.main(["--merge", str(a), str(b), "--out", str(out)]) == 0
    joined = load_file(str(out))
    assert joined["seeds"].tolist() == [1, 2, 7, 8, 9]
    assert joined["latents"][:, 0, 0].tolist() == [1, 1, 7, 7, 7]
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        assert json.loads(f.metadata()["captions"]) == ["clip 1", "clip 2", "clip 7", "clip 8", "clip 9"]
    with pytest.raises(SystemExit, match="share noise seeds"):
        script.main(["--merge", str(a), str(c), "--out", str(out)])
    with pytest.raises(SystemExit, match=r"d.safetensors was made by .*other.*one teacher per file"):
        script.main(["--merge", str(a), str(d), "--out", str(out)])
    with pytest.raises(SystemExit, match="missing.safetensors not found"):
        script.main(["--merge", str(a), str(tmp_path / "missing.safetensors"), "--out", str(out)])
