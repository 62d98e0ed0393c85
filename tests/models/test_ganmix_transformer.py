"""GANmix's token-reading generator (``generator.arch: transformer``): the time transformer run once at the noise end
of the flow path, started from a latent diffusion model's denoiser; its text (pooled + tokens) through the objective's
cache, the pipeline, prompt interpolation and save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundsmith.errors import ConfigError, ModelError, TrainingError
from soundsmith.models.ganmix import DiscriminatorConfig, GANmix, GANmixConfig, GeneratorConfig
from soundsmith.models.latent_diffusion import LatentDenoiserConfig, LatentDiffusion, LatentDiffusionConfig
from soundsmith.models.registry import SHIPPED_ENV, load_model, save_model
from soundsmith.models.vae import MelVAE, VAEConfig
from soundsmith.models.vocoder import Vocoder, VocoderConfig
from soundsmith.pipelines.ganmix import GANmixPipeline, mix_text
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives.ganmix import GANmixObjective, init_generator_from

SR = 16000


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A tiny VAE (8 latent channels) and vocoder shipped under ``tmp_path``, and a tiny guidance-distilled latent
    diffusion model over them (``tmp_path / "ldm"``): the teacher a transformer generator starts from."""
    torch.manual_seed(0)
    save_model(MelVAE(VAEConfig(channels=[16, 32, 32], latent_channels=8)), tmp_path / "shipped" / "t_vae")
    save_model(Vocoder(VocoderConfig(dim=32, intermediate_dim=64, depth=2)), tmp_path / "shipped" / "t_voc")
    monkeypatch.setenv(SHIPPED_ENV, str(tmp_path / "shipped"))
    denoiser = LatentDenoiserConfig(
        latent_channels=8, latent_bins=1, d_model=32, layers=2, heads=2, text_dim=32, guidance_embed=True
    )
    ldm = LatentDiffusion(
        LatentDiffusionConfig(denoiser=denoiser, vae="t_vae", vocoder="t_voc", text_encoder="hashed:32", duration=0.5)
    )
    with torch.no_grad():  # a trained-looking denoiser: its zero-initialised output layers made non-zero
        for p in ldm.denoiser.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    save_model(ldm, tmp_path / "ldm")
    return tmp_path


def config(init_from=None, guidance=3.0, **kw) -> GANmixConfig:
    return GANmixConfig(
        generator=GeneratorConfig(
            arch="transformer", noise_dim=8, channels=32, blocks=2, heads=2, guidance=guidance, init_from=init_from
        ),
        discriminator=DiscriminatorConfig(
            arch="conv", channels=8, blocks=1, kernel_size=3, output="linear", projection=True
        ),
        vae="t_vae",
        vocoder="t_voc",
        text_encoder="hashed:32",
        text_dim=32,
        latent_channels=8,
        latent_frames=13,
        duration=0.5,
        loss="hinge",
        **kw,
    )


def _batch(n: int = 3) -> dict:
    g = torch.Generator().manual_seed(0)
    captions = ["a bell rings", "rain falls softly on a tin roof at night", "a dog barks"][:n]
    return {"audio": 0.1 * torch.randn(n, SR // 2, generator=g), "caption": captions, "labels": [["x"]] * n}


def test_transformer_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="noise_dim"):
        GANmixConfig(generator=GeneratorConfig(arch="transformer", noise_dim=16), latent_channels=8)
    with pytest.raises(ConfigError, match="heads"):
        GeneratorConfig(arch="transformer", channels=30, heads=4)
    with pytest.raises(ConfigError, match="init_from and guidance"):
        GeneratorConfig(arch="conv", init_from="default")
    with pytest.raises(ConfigError, match="guidance"):
        GeneratorConfig(arch="transformer", guidance=-1.0)
    with pytest.raises(ConfigError, match="unknown"):
        DiscriminatorConfig(arch="transformer")  # the discriminator has no transformer


def test_an_untrained_generator_returns_its_noise_and_needs_tokens(shipped):
    model = GANmix(config()).eval()
    text = model.text_condition(["a bell rings"])
    noise = torch.randn(1, 8, 9)
    # the time transformer's output layers start at zero: the flow's x0 = noise - v is the noise itself
    torch.testing.assert_close(model(noise, text["pooled"], 9, text["tokens"], text["mask"]), noise)
    with pytest.raises(ModelError, match="tokens"):
        model(noise, text["pooled"], 9)


def test_started_from_a_denoiser_it_is_that_denoisers_one_step_estimate(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"))).eval()
    GANmixObjective(model)  # the objective copies the denoiser in when training begins
    teacher = load_model(shipped / "ldm")
    noise = torch.randn(2, 8, 13)
    tokens, mask, pooled = teacher.encode_text(["a bell rings", "a dog barks loudly"])
    with torch.no_grad():
        v = teacher(noise[:, :, None], torch.ones(2), tokens, mask, pooled, guidance=torch.full((2,), 3.0))
        made = model(noise, pooled, 13, tokens, mask)
    torch.testing.assert_close(made, noise - v[:, :, 0], rtol=1e-5, atol=1e-6)
    assert (made - noise).abs().mean() > 1e-3  # not the untrained identity
    # the caption's tokens reach it: another caption with the same pooled vector gives another latent
    other, other_mask, _ = teacher.encode_text(["a cat meows", "rain falls"])
    with torch.no_grad():
        assert not torch.allclose(model(noise, pooled, 13, other, other_mask), made)


def test_a_denoiser_that_does_not_fit_is_one_clear_error(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"), guidance=None))  # no guidance input: tensors differ
    with pytest.raises(TrainingError, match="guidance_mlp"):
        init_generator_from(model, str(shipped / "ldm"))
    with pytest.raises(TrainingError, match="cannot be loaded"):
        init_generator_from(GANmix(config()), str(shipped / "nowhere"))
    with pytest.raises(TrainingError, match="not a latent diffusion model"):
        init_generator_from(GANmix(config()), str(shipped / "shipped" / "t_voc"))


def test_padded_caption_tokens_give_each_row_what_it_gives_alone(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"))).eval()
    obj = GANmixObjective(model)
    batch = obj.prepare_batch(_batch())
    assert batch["text_tokens"].shape[:2] == batch["text_mask"].shape
    lengths = batch["text_mask"].sum(1).tolist()
    assert len(set(lengths)) > 1  # the captions differ in length, so rows are padded
    noise = torch.randn(3, 8, 13)
    with torch.no_grad():
        together = model(noise, batch["text_pooled"], 13, batch["text_tokens"], batch["text_mask"])
        for i, caption in enumerate(batch["captions"]):
            t = model.text_condition([caption])
            alone = model(noise[i : i + 1], t["pooled"], 13, t["tokens"], t["mask"])
            torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-4, atol=1e-5)


def test_a_few_steps_move_it_and_it_saves_and_generates_the_same(shipped, tmp_path):
    model = GANmix(config(init_from=str(shipped / "ldm")))
    obj = GANmixObjective(model)
    before = [p.detach().clone() for p in model.generator.parameters()]
    opt = torch.optim.Adam(model.generator.parameters(), lr=1e-3)
    batch = obj.prepare_batch(_batch())
    for step in range(2):
        obj.global_step = step
        opt.zero_grad()
        loss = obj.losses(batch, 0)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.generator.parameters(), strict=True))
    save_model(model, tmp_path / "gm")
    again = load_model(tmp_path / "gm")
    assert again.config.generator.arch == "transformer"
    a = GANmixPipeline(model.eval())("a bell rings", duration=0.5, seed=3, progress=False).audio
    b = GANmixPipeline(again)("a bell rings", duration=0.5, seed=3, progress=False).audio
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, SR // 2)


def test_prompt_interpolation_mixes_pooled_and_padded_tokens(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"))).eval()
    a, b = model.text_condition(["a bell"]), model.text_condition(["rain falls softly on the roof"])
    assert a["tokens"].shape[1] < b["tokens"].shape[1]
    ends = mix_text(a, b, 0.0), mix_text(a, b, 1.0)
    torch.testing.assert_close(ends[1]["tokens"], b["tokens"])
    torch.testing.assert_close(ends[0]["tokens"][:, : a["tokens"].shape[1]], a["tokens"])
    assert torch.equal(ends[0]["mask"], ends[1]["mask"]) and bool(ends[0]["mask"].all())
    out = GANmixPipeline(model).interpolate("a bell", "rain falls softly on the roof", steps=3, duration=0.5)
    assert out.audio.shape == (3, SR // 2) and np.isfinite(out.audio).all()


# --- the teacher discriminator (discriminator.arch: teacher): heads on a frozen denoiser's features ---------------


def teacher_config(ldm, **disc) -> GANmixConfig:
    c = config(init_from=str(ldm))
    d = {"arch": "teacher", "channels": 8, "kernel_size": 3, "output": "linear", "feature_layers": [1, 2], **disc}
    return GANmixConfig(**{**c.__dict__, "discriminator": DiscriminatorConfig(**d)})


def test_hidden_states_are_what_the_blocks_give_forward():
    from soundsmith.nn.time_transformer import LatentDenoiser

    torch.manual_seed(0)
    net = LatentDenoiser(LatentDenoiserConfig(latent_channels=8, latent_bins=1, d_model=16, layers=3, heads=2,
                                              text_dim=32)).eval()
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(o)) for b in net.blocks]
    x, t = torch.randn(2, 8, 1, 7), torch.tensor([0.2, 0.9])
    tokens, mask, pooled = torch.randn(2, 4, 32), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]).bool(), torch.randn(2, 32)
    with torch.no_grad():
        net(x, t, tokens, mask, pooled)
        states = net.hidden_states(x, t, tokens, mask, pooled, layers=2)
    for h in hooks:
        h.remove()
    assert len(states) == 2
    for got, want in zip(states, seen[:2], strict=True):
        torch.testing.assert_close(got, want)


def test_the_teacher_discriminator_reads_a_frozen_copy_and_only_its_heads_train(shipped):
    model = GANmix(teacher_config(shipped / "ldm"))
    obj = GANmixObjective(model)
    teacher = load_model(shipped / "ldm").denoiser
    for k, v in teacher.state_dict().items():  # the denoiser copied in, frozen
        torch.testing.assert_close(obj.disc.teacher.state_dict()[k], v)
    assert not any(p.requires_grad for p in obj.disc.teacher.parameters())
    from soundsmith.train.config import TrainConfig

    opts = obj.configure_optimizers(TrainConfig(lr=1e-3))
    trained = {id(p) for group in opts[1].optimizer.param_groups for p in group["params"]}
    assert trained and not trained & {id(p) for p in obj.disc.teacher.parameters()}
    batch = obj.prepare_batch(_batch())
    obj.global_step = 4
    frozen = [p.detach().clone() for p in obj.disc.teacher.parameters()]
    heads = [p.detach().clone() for p in obj.disc.heads.parameters()]
    obj.losses(batch, 1)["loss"].backward()
    opts[1].optimizer.step()
    assert all(torch.equal(a, p) for a, p in zip(frozen, obj.disc.teacher.parameters(), strict=True))
    assert any(not torch.equal(a, p) for a, p in zip(heads, obj.disc.heads.parameters(), strict=True))
    # the generator's adversarial loss reaches it through the frozen denoiser
    model.zero_grad()
    obj.losses(batch, 0)["loss"].backward()
    assert sum(float(p.grad.abs().sum()) for p in model.generator.parameters() if p.grad is not None) > 0
    assert obj.disc.teacher.training is False and obj.disc.train().teacher.training is False


def test_teacher_discriminator_scores_by_hand_seeded_by_step_and_reading_tokens(shipped):
    model = GANmix(teacher_config(shipped / "ldm", t_range=[0.2, 0.6])).eval()
    obj = GANmixObjective(model)
    batch = obj.prepare_batch(_batch())
    text = obj._batch_text(batch)
    obj.global_step = 9
    latents = batch["latents"]
    with torch.no_grad():
        got = obj._scores(latents, text, "real")
        gen = obj._generator("disc_noise:real")
        t = 0.2 + 0.4 * torch.rand(3, generator=gen)
        noise = torch.randn(latents.shape, generator=gen)
        want = obj.disc((1 - t[:, None, None]) * latents + t[:, None, None] * noise, t, text["pooled"],
                        text["tokens"], text["mask"])
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(obj._scores(latents, text, "real"), got)  # the same step, the same draw
        assert not torch.allclose(obj._scores(latents, text, "fake"), got)  # another salt, another draw
        other = obj._batch_text(batch, roll=1)
        assert torch.equal(other["tokens"][1], text["tokens"][0]) and torch.equal(other["mask"][0], text["mask"][2])
        swapped = dict(text, tokens=other["tokens"], mask=other["mask"])  # same pooled, other tokens
        assert not torch.allclose(obj._scores(latents, swapped, "real"), got)


def test_teacher_discriminator_config_errors_name_the_fix(shipped):
    with pytest.raises(ConfigError, match="generator.arch: transformer"):
        GANmixConfig(generator=GeneratorConfig(arch="conv"), discriminator=DiscriminatorConfig(arch="teacher"))
    with pytest.raises(ConfigError, match="teacher_from or generator.init_from"):
        GANmixConfig(**{**config().__dict__, "discriminator": DiscriminatorConfig(arch="teacher")})
    with pytest.raises(ConfigError, match=r"reach past the teacher's 2 blocks"):
        teacher_config(shipped / "ldm", feature_layers=[1, 3])
    with pytest.raises(ConfigError, match="r1_weight=1.0 with the teacher discriminator.*set r1_weight: 0"):
        GANmixConfig(**{**teacher_config(shipped / "ldm").__dict__, "r1_weight": 1.0})
    with pytest.raises(ConfigError, match="t_range"):
        DiscriminatorConfig(arch="teacher", t_range=[0.8, 0.2])
    with pytest.raises(ConfigError, match="feature_layers"):
        DiscriminatorConfig(arch="teacher", feature_layers=[0])
    model = GANmix(teacher_config(shipped / "ldm", teacher_from=str(shipped / "nowhere")))
    with pytest.raises(TrainingError, match=r"discriminator.teacher_from=.*nowhere.*cannot be loaded"):
        GANmixObjective(model)


def test_a_generator_starts_from_a_ganmix_run_but_the_teacher_discriminator_only_from_a_teacher(shipped, tmp_path):
    trained = GANmix(config(init_from=str(shipped / "ldm")))
    GANmixObjective(trained)
    with torch.no_grad():
        for p in trained.generator.parameters():
            p.add_(0.01)  # a continued run: no longer the denoiser
    save_model(trained, tmp_path / "run_model")
    model = GANmix(config(init_from=str(tmp_path / "run_model")))
    GANmixObjective(model)
    for a, b in zip(model.generator.parameters(), trained.generator.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    c = teacher_config(shipped / "ldm")
    student_as_teacher = GANmixConfig(**{**c.__dict__, "generator": config(init_from=str(tmp_path / "run_model"))
                                         .generator})
    with pytest.raises(TrainingError, match=r"generator.init_from=.*run_model.*not a latent diffusion model \(the"):
        GANmixObjective(GANmix(student_as_teacher))
    explicit = GANmixConfig(**{**student_as_teacher.__dict__, "discriminator": DiscriminatorConfig(
        **{**c.discriminator.__dict__, "teacher_from": str(shipped / "ldm")})})
    obj = GANmixObjective(GANmix(explicit))
    torch.testing.assert_close(obj.disc.teacher.inp.weight, load_model(shipped / "ldm").denoiser.inp.weight)


def test_the_pairs_script_scores_a_model_by_the_objectives_teacher_term(shipped, tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    spec = importlib.util.spec_from_file_location(
        "teacher_pairs", Path(__file__).resolve().parents[2] / "scripts" / "ganmix_teacher_pairs.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model = GANmix(config(init_from=str(shipped / "ldm")))
    obj = GANmixObjective(model)
    save_model(model, tmp_path / "gm")
    g = torch.Generator().manual_seed(1)
    captions = ["a bell rings", "a dog barks", "rain falls", "a cat meows", "a horn honks"]
    save_file({"latents": torch.randn(5, 8, 13, generator=g).half(), "seeds": torch.arange(5) + 40},
              str(tmp_path / "pairs.safetensors"), metadata={"captions": json.dumps(captions)})
    assert script.main(["--score", str(tmp_path / "gm"), "--pairs", str(tmp_path / "pairs.safetensors"),
                        "--count", "4", "--batch", "3"]) == 0
    printed = float(capsys.readouterr().out.split("teacher term ")[1].split()[0])
    from soundsmith.train.objectives.ganmix import load_teacher_pairs

    pairs = load_teacher_pairs(tmp_path / "pairs.safetensors", model.generator.noise_shape, 8)
    with torch.no_grad():
        model.eval()
        want = float(obj._pairs_mse(pairs, [0, 1, 2, 3]))
    assert printed == pytest.approx(want, abs=1e-4)
    with pytest.raises(SystemExit, match="needs --pairs"):
        script.main(["--score", str(tmp_path / "gm")])
    with pytest.raises(SystemExit, match="not GANmix"):
        script.main(["--score", str(shipped / "ldm"), "--pairs", str(tmp_path / "pairs.safetensors")])


def test_feature_norm_gives_the_heads_each_tokens_features_normalised(shipped):
    seen = {}
    for norm in (False, True):
        model = GANmix(teacher_config(shipped / "ldm", feature_norm=norm)).eval()
        obj = GANmixObjective(model)
        hook = obj.disc.heads[0].register_forward_hook(lambda m, i, o, norm=norm: seen.__setitem__(norm, i[0]))
        batch = obj.prepare_batch(_batch())
        with torch.no_grad():
            obj._scores(batch["latents"], obj._batch_text(batch), "real")
        hook.remove()
    normed = seen[True].transpose(1, 2)  # [B, T', d]: per token
    torch.testing.assert_close(normed.mean(-1), torch.zeros(normed.shape[:2]), atol=1e-5, rtol=0)
    torch.testing.assert_close(normed.var(-1, unbiased=False), torch.ones(normed.shape[:2]), atol=1e-3, rtol=0)
    raw = seen[False].transpose(1, 2)
    torch.testing.assert_close(normed, torch.nn.functional.layer_norm(raw, raw.shape[-1:]))  # the same features


def _plain_ldm(root) -> str:
    """A tiny latent diffusion model without a guidance input (guided in two passes), beside the fixture's."""
    torch.manual_seed(1)
    denoiser = LatentDenoiserConfig(latent_channels=8, latent_bins=1, d_model=32, layers=2, heads=2, text_dim=32)
    ldm = LatentDiffusion(
        LatentDiffusionConfig(denoiser=denoiser, vae="t_vae", vocoder="t_voc", text_encoder="hashed:32", duration=0.5)
    )
    with torch.no_grad():
        for p in ldm.denoiser.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    save_model(ldm, root / "ldm_plain")
    return str(root / "ldm_plain")


def _flow_draw(obj, x, salt: str, lo: float, hi: float):
    """By hand, the objective's draw for ``salt`` at its step: ``(t, noise, x_t [B, C, 1, T'])``."""
    gen = obj._generator(salt)
    t = lo + (hi - lo) * torch.rand(len(x), generator=gen)
    noise = torch.randn(x.shape, generator=gen)
    with torch.no_grad():
        noisy = ((1 - t[:, None, None]) * x + t[:, None, None] * noise)[:, :, None, :]
    return t, noise, noisy


def test_score_term_pulls_a_latent_toward_the_teachers_guided_estimate(shipped):
    from soundsmith.train.objectives.ganmix import guided_velocity

    plain = _plain_ldm(shipped)
    for score_from in (str(shipped / "ldm"), plain):  # one pass (guidance input) and two (dropped-caption branch)
        model = GANmix(config(init_from=str(shipped / "ldm"), score_weight=1.0, score_from=score_from,
                              score_guidance=2.5, score_t_range=[0.3, 0.7])).eval()  # fmt: skip
        obj = GANmixObjective(model)
        net = obj._score_net[0]
        assert not any(p.requires_grad for p in net.parameters())
        assert not any(k.startswith("_score") for k in obj.state_dict())  # not a module: not in checkpoints
        batch = obj.prepare_batch(_batch())
        text = obj._batch_text(batch)
        obj.global_step = 5
        x = torch.randn(3, 8, 13, requires_grad=True)
        loss, gaps = obj.score_loss(x, text)
        gap = gaps["score_gap"]
        assert set(gaps) == {"score_gap"}  # no fake score asked
        loss.backward()
        # by hand: the same draw of t and noise, the guided estimate x0, DMD's normalised gradient
        t, _, noisy = _flow_draw(obj, x, "score", 0.3, 0.7)
        with torch.no_grad():
            tok, mask, pooled = text["tokens"], text["mask"], text["pooled"]
            if net.config.guidance_embed:
                v = net(noisy, t, tok, mask, pooled, guidance=torch.full((3,), 2.5))
            else:
                cond = net(noisy, t, tok, mask, pooled)
                uncond = net(noisy, t, tok, mask, pooled, drop=torch.ones(3))
                v = uncond + 2.5 * (cond - uncond)
                torch.testing.assert_close(guided_velocity(net, noisy, t, text, 1.0), cond)
            torch.testing.assert_close(guided_velocity(net, noisy, t, text, 2.5), v)
            x0 = noisy[:, :, 0] - t[:, None, None] * v[:, :, 0]
            diff = x - x0
            torch.testing.assert_close(gap, diff.abs().mean())
            want = diff / diff.abs().mean(dim=(1, 2), keepdim=True) / diff.numel()
        torch.testing.assert_close(x.grad, want)
        with torch.no_grad():  # a step down the gradient brings the latent nearer the estimate
            moved = x - 0.1 * x.grad * x.numel()
            assert (moved - x0).abs().mean() < diff.abs().mean()


def test_score_term_joins_the_generators_loss_and_its_errors_name_the_fix(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"), score_weight=2.0))  # score_from: the init model
    obj = GANmixObjective(model)
    batch = obj.prepare_batch(_batch())
    obj.global_step = 3
    with_score = obj.losses(batch, 0)
    assert float(with_score["score_gap"]) > 0
    plain = GANmixObjective(GANmix(config(init_from=str(shipped / "ldm"))))
    plain.global_step = 3
    plain.model.load_state_dict(model.state_dict())
    plain.disc.load_state_dict(obj.disc.state_dict())  # the same players: only the score term differs
    base = plain.losses(batch, 0)
    fake = obj.fake(batch)
    score, _ = obj.score_loss(fake, obj._batch_text(batch))
    torch.testing.assert_close(with_score["loss"], base["loss"] + 2.0 * score)
    with pytest.raises(ConfigError, match="score_weight > 0 needs a latent diffusion model"):
        config(score_weight=1.0)
    with pytest.raises(ConfigError, match="transformer generator"):
        GANmixConfig(score_weight=1.0, score_from="default")
    with pytest.raises(ConfigError, match="score_t_range"):
        config(score_t_range=[0.0, 0.5])
    with pytest.raises(TrainingError, match=r"score_from=.*nowhere.*cannot be loaded"):
        GANmixObjective(GANmix(config(init_from=str(shipped / "ldm"), score_weight=1.0,
                                      score_from=str(shipped / "nowhere"))))  # fmt: skip


def test_fake_score_is_a_trained_copy_and_the_pull_is_teacher_minus_copy(shipped):
    """DMD's two halves by hand: the generator's gradient is (x0_fake - x0_real) / mean|x - x0_real|, with x0_fake
    the trainable copy's conditional estimate at the same noised latent; a copy equal to a plain teacher guided at
    1 pulls nowhere."""
    plain = _plain_ldm(shipped)
    for score_from, w in ((str(shipped / "ldm"), 2.5), (plain, 2.5), (plain, 1.0)):
        model = GANmix(config(init_from=str(shipped / "ldm"), score_weight=1.0, score_from=score_from,
                              score_guidance=w, score_t_range=[0.3, 0.7], fake_score=True)).eval()  # fmt: skip
        obj = GANmixObjective(model)
        real_net, fake_net = obj._score_net[0], obj.fake_net
        assert fake_net is not real_net and all(p.requires_grad for p in fake_net.parameters())
        for a, b in zip(real_net.state_dict().values(), fake_net.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b)  # starts as the teacher
        assert any(k.startswith("fake_net.") for k in obj.state_dict())  # a module: checkpointed, resumed
        batch = obj.prepare_batch(_batch())
        text = obj._batch_text(batch)
        obj.global_step = 4
        with torch.no_grad():  # the copy is moved, as training would
            for p in fake_net.parameters():
                p.add_(0.02 * torch.randn(p.shape))
        x = torch.randn(3, 8, 13, requires_grad=True)
        loss, gaps = obj.score_loss(x, text)
        loss.backward()
        t, _, noisy = _flow_draw(obj, x, "score", 0.3, 0.7)
        with torch.no_grad():
            tok, mask, pooled = text["tokens"], text["mask"], text["pooled"]
            if real_net.config.guidance_embed:
                v_real = real_net(noisy, t, tok, mask, pooled, guidance=torch.full((3,), w))
                v_fake = fake_net(noisy, t, tok, mask, pooled, guidance=torch.ones(3))
            else:
                cond = real_net(noisy, t, tok, mask, pooled)
                uncond = real_net(noisy, t, tok, mask, pooled, drop=torch.ones(3))
                v_real = uncond + w * (cond - uncond)
                v_fake = fake_net(noisy, t, tok, mask, pooled)
            x0 = noisy[:, :, 0] - t[:, None, None] * v_real[:, :, 0]
            x0_fake = noisy[:, :, 0] - t[:, None, None] * v_fake[:, :, 0]
            torch.testing.assert_close(gaps["score_gap"], (x - x0).abs().mean())
            torch.testing.assert_close(gaps["fake_gap"], (x0_fake - x0).abs().mean())
            want = (x0_fake - x0) / (x - x0).abs().mean(dim=(1, 2), keepdim=True) / x.numel()
        torch.testing.assert_close(x.grad, want)
    fresh = GANmixObjective(GANmix(config(init_from=str(shipped / "ldm"), score_weight=1.0, score_from=plain,
                                          score_guidance=1.0, fake_score=True)))  # fmt: skip
    fresh.global_step = 4
    x = torch.randn(3, 8, 13, requires_grad=True)
    fresh.score_loss(x, fresh._batch_text(fresh.prepare_batch(_batch())))[0].backward()
    assert float(x.grad.abs().max()) == 0.0  # the copy is the teacher, unguided: the two estimates agree


def test_fake_score_learns_the_generators_latents_by_its_own_optimizer(shipped):
    model = GANmix(config(init_from=str(shipped / "ldm"), score_weight=1.0, fake_score=True, fake_score_lr=3e-3,
                          score_t_range=[0.2, 0.8], diversity_every=0))  # fmt: skip
    obj = GANmixObjective(model)
    specs = obj.configure_optimizers(TrainConfig(lr=1e-4, betas=(0.5, 0.999)))
    assert len(specs) == 3 and specs[2].optimizer.param_groups[0]["lr"] == 3e-3
    owned = [{id(p) for g in s.optimizer.param_groups for p in g["params"]} for s in specs]
    assert owned[2] == {id(p) for p in obj.fake_net.parameters()} and not owned[2] & (owned[0] | owned[1])
    teacher = {k: v.clone() for k, v in obj._score_net[0].state_dict().items()}
    batch = obj.prepare_batch(_batch())
    obj.global_step = 7
    calls = []
    draw = obj.fake
    obj.fake = lambda bb, *a, **k: calls.append(1) or draw(bb, *a, **k)
    g = obj.losses(batch, 0)
    assert {"score_gap", "fake_gap"} <= set(g) and len(calls) == 1
    out = obj.losses(batch, 2)  # the generator's latents of this step, reused
    assert len(calls) == 1
    # by hand: the flow loss of the copy, conditional, on the step's generated latents at a "fake_score" draw
    x = obj._fake_cache[2]
    t, noise, noisy = _flow_draw(obj, x, "fake_score", 0.2, 0.8)
    text = obj._batch_text(batch)
    with torch.no_grad():
        v = obj.fake_net(noisy, t, text["tokens"], text["mask"], text["pooled"], guidance=torch.ones(3))
        torch.testing.assert_close(out["loss"], torch.nn.functional.mse_loss(v[:, :, 0], noise - x))
    opt = specs[2].optimizer
    first = float(out["loss"].detach())
    for _ in range(8):  # the same step's draw: its own optimizer brings the loss down
        opt.zero_grad()
        obj.losses(batch, 2)["loss"].backward()
        assert all(p.grad is None for p in model.parameters())  # the generator is not touched
        opt.step()
    assert float(obj.losses(batch, 2)["loss"].detach()) < first
    for k, v in obj._score_net[0].state_dict().items():
        torch.testing.assert_close(v, teacher[k])  # the teacher stays frozen
    assert "f_loss" in obj.validate(batch)
    with pytest.raises(ConfigError, match="fake_score: the fake score is the second half"):
        config(init_from=str(shipped / "ldm"), fake_score=True)
    with pytest.raises(ConfigError, match="fake_score_lr"):
        config(init_from=str(shipped / "ldm"), score_weight=1.0, fake_score=True, fake_score_lr=-1.0)
    with pytest.raises(TrainingError, match="^GANmix objective has 3 optimizers, got opt_index=3$"):
        obj.losses(batch, 3)


def test_a_killed_run_with_the_fake_score_resumes_to_the_same_weights(shipped, tmp_path):
    """Three optimizers (generator, discriminator, fake score) through the engine: the copy's weights and moments
    are checkpointed and a resumed run ends bit for bit where a straight one does."""
    from soundsmith.train.engine import Trainer

    items = _batch(3)

    class Clips(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> dict:
            return {"audio": items["audio"][i], "caption": items["caption"][i]}

    cfg = TrainConfig(max_steps=4, batch_size=3, lr=1e-3, clip_grad_norm=0.0, valid_every=0, sample_every=0,
                      checkpoint_every=2, log_every=1, accelerator="cpu", devices=1)  # fmt: skip

    def objective() -> GANmixObjective:
        torch.manual_seed(0)  # the discriminator's first weights
        return GANmixObjective(GANmix(config(init_from=str(shipped / "ldm"), score_weight=1.0, fake_score=True,
                                             diversity_every=0)))  # fmt: skip

    straight = objective()
    Trainer(straight, Clips(), None, cfg, tmp_path / "a").fit()
    first = objective()
    Trainer(first, Clips(), None, cfg, tmp_path / "b").fit(stop_at=2)
    resumed = objective()
    with torch.no_grad():  # other starting weights: only the checkpoint can make the result equal
        for p in resumed.parameters():
            p.add_(0.1)
    Trainer(resumed, Clips(), None, cfg, tmp_path / "b").fit(resume=True)
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    moved = [k for k in a if k.startswith("fake_net.") and not torch.equal(a[k], objective().state_dict()[k])]
    assert moved  # the copy trained
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)
    logged = "".join((tmp_path / "a" / "metrics.jsonl").read_text().splitlines())
    assert "loss_2" in logged and "fake_gap" in logged
