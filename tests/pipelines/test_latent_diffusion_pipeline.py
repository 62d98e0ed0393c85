"""The latent-diffusion pipeline on tiny parts: seeds, guidance, durations, audio-to-audio, inpainting, re-ranking,
provenance and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundsmith.errors import AudioError, ConfigError, TextError
from soundsmith.eval.embedders import ClapEmbedder
from soundsmith.models.clap import AudioTextContrastive, ClapConfig
from soundsmith.models.latent_diffusion import LatentDenoiserConfig, LatentDiffusion, LatentDiffusionConfig
from soundsmith.models.vae import MelVAE, VAEConfig
from soundsmith.models.vocoder import Vocoder, VocoderConfig
from soundsmith.nn.int8 import int8_available
from soundsmith.pipelines.latent_diffusion import LatentDiffusionPipeline

SR = 16000


def tiny_model(seed: int = 0, **overrides) -> LatentDiffusion:
    """Tiny denoiser (weights randomised: the zero-initialised output layer would predict 0), VAE and vocoder."""
    torch.manual_seed(seed)
    denoiser = LatentDenoiserConfig(
        latent_channels=4, latent_bins=2, d_model=32, layers=2, heads=2, text_dim=32
    )
    config = LatentDiffusionConfig(
        denoiser=denoiser, text_encoder="hashed:32", steps=3, guidance=2.0, duration=0.5, **overrides
    )
    parts = {
        "vae": MelVAE(VAEConfig(channels=[16, 32, 32], latent_channels=8)),
        "vocoder": Vocoder(VocoderConfig(dim=32, intermediate_dim=64, depth=2)),
    }
    model = LatentDiffusion(config, components=parts).eval()
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.normal_(0, 0.05)
    return model


@pytest.fixture(scope="module")
def pipe() -> LatentDiffusionPipeline:
    return LatentDiffusionPipeline(tiny_model())


def _tone(seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_same_inputs_same_audio_and_seeds_differ(pipe):
    a = pipe("a bell rings", duration=0.3, seed=5, progress=False)
    b = pipe("a bell rings", duration=0.3, seed=5, progress=False)
    c = pipe("a bell rings", duration=0.3, seed=6, progress=False)
    assert a.audio.shape == (1, int(0.3 * SR)) and a.audio.dtype == np.float32
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)


def test_candidate_i_is_seed_plus_i(pipe):
    both = pipe("rain", duration=0.2, seed=3, num_candidates=2, progress=False, rerank=False)
    alone = pipe("rain", duration=0.2, seed=4, progress=False)
    assert both.meta["candidate_seeds"] == [3, 4]
    np.testing.assert_array_equal(both.audio[1], alone.audio[0])  # bit for bit


@pytest.mark.parametrize("duration", [0.01, 0.5, 1.37])
def test_any_duration_gives_exactly_that_many_samples(pipe, duration):
    out = pipe("a dog barks", duration=duration, seed=0, steps=1, progress=False)
    assert out.audio.shape == (1, int(round(duration * SR)))
    assert np.isfinite(out.audio).all()


def test_prompt_guidance_and_negative_prompt_change_the_audio(pipe):
    base = pipe("a bell rings", duration=0.3, seed=1, progress=False).audio
    other = pipe("heavy rain on a tin roof", duration=0.3, seed=1, progress=False).audio
    unguided = pipe("a bell rings", duration=0.3, seed=1, guidance=1.0, progress=False).audio
    negative = pipe("a bell rings", duration=0.3, seed=1, negative_prompt="noise", progress=False)
    for audio in (other, unguided, negative.audio):  # the same request gives identical audio (above)
        assert np.abs(audio - base).max() > 1e-6
    assert negative.meta["negative_prompt"] == "noise"


def test_provenance_in_meta(pipe):
    out = pipe("a bell rings", duration=0.2, seed=9, progress=False)
    m = out.meta
    assert m["family"] == "latent_diffusion" and m["sampler"] == "flow_euler"
    assert m["steps"] == 3 and m["guidance"] == 2.0  # the model's defaults, recorded
    assert len(m["weights_sha256"]) == 64 and m["soundsmith_version"]
    assert out.prompt == "a bell rings" and out.seed == 9
    assert m["components"].startswith("vae=MelVAE") and "text_encoder=hashed:32" in m["components"]


def test_default_duration_is_the_models(pipe):
    assert pipe("a bell", seed=0, steps=1, progress=False).audio.shape == (1, int(0.5 * SR))


def test_every_sampler_runs(pipe):
    for sampler in ("flow_euler", "dpmpp"):
        out = pipe("a bell", duration=0.2, seed=0, sampler=sampler, progress=False)
        assert out.meta["sampler"] == sampler and np.isfinite(out.audio).all()
    with pytest.raises(ConfigError, match="does not run prediction_type 'flow'"):
        pipe("a bell", duration=0.2, sampler="ddim", progress=False)


def test_sample_shift_moves_the_samplers_steps_toward_the_noise_and_leaves_training_alone():
    from soundsmith.sampling.diffusion import DiffusionSampler
    from soundsmith.train.objectives.latent_diffusion import LatentDiffusionObjective

    plain, shifted = tiny_model(), tiny_model(sample_shift=4.0)
    p0, p1 = LatentDiffusionPipeline(plain), LatentDiffusionPipeline(shifted)
    assert p0.schedule.shift == 1.0 and p1.schedule.shift == 4.0
    assert LatentDiffusionObjective(shifted).schedule.shift == 1.0  # training draws its timesteps as before
    for sampler in ("flow_euler", "dpmpp"):
        runs = []
        for pipe in (p0, p1):
            run = DiffusionSampler(sampler, pipe.schedule)
            run.set_steps(4)
            runs.append(run.timesteps.float())
        # same first step (pure noise), every later step at a higher noise level
        assert (runs[1][1:] > runs[0][1:] + 1).all(), runs
    a = p0("a bell", duration=0.3, seed=0, progress=False)
    b = p1("a bell", duration=0.3, seed=0, progress=False)
    assert b.meta["shift"] == 4.0 and not np.array_equal(a.audio, b.audio)
    with pytest.raises(ConfigError, match="sample_shift"):
        tiny_model(sample_shift=0.0)


def test_guidance_interval_guides_only_the_steps_inside_it():
    kw = dict(duration=0.3, seed=2, progress=False)
    plain = LatentDiffusionPipeline(tiny_model())
    whole = LatentDiffusionPipeline(tiny_model(guidance_interval=[0.0, 1.0]))
    none = LatentDiffusionPipeline(tiny_model(guidance_interval=[0.0, 0.0]))
    part = LatentDiffusionPipeline(tiny_model(guidance_interval=[0.5, 1.0]))
    np.testing.assert_array_equal(whole("a bell", **kw).audio, plain("a bell", **kw).audio)
    np.testing.assert_array_equal(none("a bell", **kw).audio, plain("a bell", guidance=1.0, **kw).audio)
    mixed = part("a bell", **kw).audio
    assert not np.array_equal(mixed, plain("a bell", **kw).audio)
    assert not np.array_equal(mixed, plain("a bell", guidance=1.0, **kw).audio)
    for bad in ([0.5, 0.2], [0.0, 1.5], [0.3], "0.1"):
        with pytest.raises(ConfigError, match="guidance_interval"):
            tiny_model(guidance_interval=bad)


class _Distilled(torch.nn.Module):
    """A perfectly guidance-distilled denoiser: in one pass, what ``teacher`` predicts guided in two."""

    def __init__(self, teacher: torch.nn.Module) -> None:
        super().__init__()
        self.teacher, self.calls = teacher, []

    def forward(self, x, t, tokens, mask, pooled, drop=None, guidance=None):
        self.calls.append((len(x), None if guidance is None else guidance.tolist()))
        cond = self.teacher(x, t, tokens, mask, pooled, drop)
        if guidance is None:
            return cond
        uncond = self.teacher(x, t, tokens, mask, pooled, torch.ones(len(x), dtype=torch.bool))
        return uncond + guidance.view(-1, 1, 1, 1) * (cond - uncond)


def test_a_guidance_distilled_denoiser_guides_in_one_pass_as_the_two_branches_do():
    kw = dict(duration=0.5, seed=3, progress=False)
    over = dict(kind_guidance={"speech": 3.5}, compose=True)
    teacher = LatentDiffusionPipeline(tiny_model(**over))
    student_model = tiny_model(**over)
    student_model.config.denoiser.guidance_embed = True
    student_model.denoiser = oracle = _Distilled(student_model.denoiser)
    student = LatentDiffusionPipeline(student_model)
    prompt = "a man says the word seven over steady rain"  # two parts: speech at 3.5, the bed at 2
    out = student(prompt, **kw)
    np.testing.assert_allclose(out.audio, teacher(prompt, **kw).audio, atol=1e-4)
    assert oracle.calls and all(rows == 2 for rows, _ in oracle.calls)  # one row per part, not two
    assert sorted(oracle.calls[0][1]) == [2.0, 3.5]
    oracle.calls.clear()
    np.testing.assert_allclose(  # a negative prompt: two branches, both at scale 1 (None)
        student("a bell", negative_prompt="hum", **kw).audio,
        teacher("a bell", negative_prompt="hum", **kw).audio,
        atol=1e-4,
    )
    assert oracle.calls and all(rows == 2 and w is None for rows, w in oracle.calls)
    oracle.calls.clear()
    unguided = student("a bell", guidance=1.0, **kw).audio
    np.testing.assert_allclose(unguided, teacher("a bell", guidance=1.0, **kw).audio, atol=1e-5)
    assert oracle.calls and all(rows == 1 and w is None for rows, w in oracle.calls)  # the conditional alone


def test_guidance_rescale_matches_the_formula_and_reaches_the_pipeline():
    from soundsmith.pipelines.latent_diffusion import rescale_guided

    gen = torch.Generator().manual_seed(0)
    cond = torch.randn(3, 4, 1, 9, generator=gen)
    guided = 5.0 * torch.randn(3, 4, 1, 9, generator=gen) + 1.0
    full = rescale_guided(guided, cond, 1.0)
    for i in range(3):  # phi = 1: each clip at its own conditional std, same direction
        assert float(full[i].std()) == pytest.approx(float(cond[i].std()), rel=1e-5)
        ratio = float(cond[i].std() / guided[i].std())
        torch.testing.assert_close(full[i], guided[i] * ratio)
    torch.testing.assert_close(rescale_guided(guided, cond, 0.0), guided)
    torch.testing.assert_close(rescale_guided(guided, cond, 0.3), 0.3 * full + 0.7 * guided)

    kw = dict(duration=0.3, seed=2, progress=False)
    plain = LatentDiffusionPipeline(tiny_model())("a bell", **kw)
    rescaled = LatentDiffusionPipeline(tiny_model(guidance_rescale=0.7))("a bell", **kw)
    assert rescaled.meta["guidance_rescale"] == 0.7 and "guidance_rescale" not in plain.meta
    assert not np.array_equal(rescaled.audio, plain.audio)
    unguided = LatentDiffusionPipeline(tiny_model(guidance_rescale=0.7))("a bell", guidance=1.0, **kw)
    reference = LatentDiffusionPipeline(tiny_model())("a bell", guidance=1.0, **kw)
    np.testing.assert_array_equal(unguided.audio, reference.audio)  # no guidance: nothing to rescale
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ConfigError, match="guidance_rescale"):
            tiny_model(guidance_rescale=bad)


def test_raise_to_floor_lifts_only_rows_below_it_and_never_past_the_ceiling():
    from soundsmith.pipelines.latent_audio import PEAK_CEILING, raise_to_floor

    t = np.arange(SR) / SR
    tone = (np.sqrt(2) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # RMS 0 dBFS
    spike = np.zeros(SR, np.float32)
    spike[100] = 0.01  # RMS far below the floor, but its peak caps the gain
    rows = np.stack([tone * 10 ** (-57 / 20), tone * 0.3, spike, np.zeros(SR, np.float32)])
    out, gains = raise_to_floor(rows, -40.0)
    level = 20 * np.log10(np.sqrt(np.mean(out[0].astype(np.float64) ** 2)))
    assert level == pytest.approx(-40.0, abs=1e-3) and gains[0] == pytest.approx(17.0, abs=0.01)
    np.testing.assert_array_equal(out[1], rows[1])  # above the floor: untouched
    assert np.abs(out[2]).max() == pytest.approx(PEAK_CEILING) and gains[2] == pytest.approx(39.91, abs=0.01)
    assert gains[1] == gains[3] == 0.0 and not out[3].any()  # silence stays silence
    np.testing.assert_allclose(out[0], rows[0] * 10 ** (17 / 20), rtol=1e-4)


def test_level_floor_reaches_text_to_audio_only():
    kw = dict(duration=0.3, seed=2, progress=False)
    plain = LatentDiffusionPipeline(tiny_model())("a bell", **kw)
    level = 20 * np.log10(np.sqrt(np.mean(plain.audio[0].astype(np.float64) ** 2)))
    floor = round(level) + 6.0  # above this tiny model's level: it must be raised
    lifted = LatentDiffusionPipeline(tiny_model(level_floor_db=floor))("a bell", **kw)
    gain = lifted.meta["level_gain_db"][0]
    assert gain > 0 and "level_gain_db" not in plain.meta
    np.testing.assert_allclose(lifted.audio, plain.audio * 10 ** (gain / 20), rtol=1e-3, atol=1e-6)
    pipe = LatentDiffusionPipeline(tiny_model(level_floor_db=floor))
    variation = pipe("a bell", init_audio=plain.audio[0], strength=0.5, **kw)
    assert "level_gain_db" not in variation.meta  # audio-to-audio keeps the input's level
    for bad in (-90.0, 0.0, True, "-40"):
        with pytest.raises(ConfigError, match="level_floor_db"):
            tiny_model(level_floor_db=bad)


def test_hold_to_dynamics_brings_soft_down_and_loud_up_within_the_peak_ceiling():
    from soundsmith.pipelines.latent_audio import PEAK_CEILING, hold_to_dynamics

    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)  # RMS -3 dBFS at amplitude 1
    bounds = {"soft": -30.0, "loud": -20.0}

    def level(x):
        return 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))

    loud_tone = tone * 10 ** (-10 / 20)  # -13 dBFS
    soft, gain = hold_to_dynamics(loud_tone, "soft", bounds)
    assert level(soft) == pytest.approx(-30.0, abs=1e-3) and gain == pytest.approx(-16.99, abs=0.02)
    loud, gain = hold_to_dynamics(loud_tone, "loud", bounds)  # already loud enough: as it is
    assert gain == 0.0 and np.array_equal(loud, loud_tone)
    quiet_tone = tone * 10 ** (-40 / 20)  # -43 dBFS
    loud, gain = hold_to_dynamics(quiet_tone, "loud", bounds)
    assert level(loud) == pytest.approx(-20.0, abs=1e-3) and gain == pytest.approx(23.01, abs=0.02)
    assert hold_to_dynamics(quiet_tone, "soft", bounds)[1] == 0.0  # already soft
    spike = np.zeros(SR, np.float32)
    spike[10] = 0.1  # quiet by RMS, but its peak caps the gain
    raised, _ = hold_to_dynamics(spike, "loud", bounds)
    assert np.abs(raised).max() == pytest.approx(PEAK_CEILING)
    assert hold_to_dynamics(loud_tone, None, bounds)[1] == 0.0  # nothing asked
    assert hold_to_dynamics(quiet_tone, "loud", {"soft": -30.0})[1] == 0.0  # no bound for what is asked
    assert hold_to_dynamics(np.zeros(SR, np.float32), "loud", bounds)[1] == 0.0  # silence stays silence


def test_parts_asked_soft_or_loud_are_held_to_the_model_levels():
    kw = dict(duration=0.5, seed=2, progress=False)
    plain = LatentDiffusionPipeline(tiny_model())
    level = 20 * np.log10(np.sqrt(np.mean(plain("a cello plays gently", **kw).audio[0].astype(np.float64) ** 2)))
    bounds = {"soft": round(level) - 10.0, "loud": round(level) + 3.0}  # this tiny model is neither
    pipe = LatentDiffusionPipeline(tiny_model(dynamics_db=bounds))
    soft = pipe("a cello plays gently", **kw)
    assert soft.meta["dynamics_gain_db"][0][0] < -9.0
    got = 20 * np.log10(np.sqrt(np.mean(soft.audio[0].astype(np.float64) ** 2)))
    assert got == pytest.approx(bounds["soft"], abs=0.05)
    loud = pipe("a trumpet plays at full volume", **kw)
    assert loud.meta["dynamics_gain_db"][0][0] > 0
    for prompt in ("a cello plays", "a cello plays softly, then loudly"):  # nothing asked, or both
        assert "dynamics_gain_db" not in pipe(prompt, **kw).meta
    variation = pipe("a cello plays gently", init_audio=plain("a bell", **kw).audio[0], strength=0.5, **kw)
    assert "dynamics_gain_db" not in variation.meta  # audio-to-audio keeps the input's level
    for bad in ({"soft": -20.0, "loud": -30.0}, {"quiet": -30.0}, {"soft": 0.0}, {"loud": True}, [-30.0]):
        with pytest.raises(ConfigError, match="dynamics_db"):
            tiny_model(dynamics_db=bad)


def test_windowed_prediction_covers_every_frame_with_trained_length_windows():
    from soundsmith.pipelines.latent_diffusion import _windowed

    seen = []

    def pointwise(x, t, *text):  # a model whose output at a frame depends on that frame only
        seen.append(x.shape[-1])
        return x * 2.0 + t.view(-1, 1, 1, 1)

    x, t = torch.randn(2, 3, 1, 37), torch.tensor([0.5, 0.25])
    torch.testing.assert_close(_windowed(pointwise, x, t, (), 10), x * 2.0 + t.view(-1, 1, 1, 1))
    assert seen and max(seen) == 10 and len(seen) == 7  # starts 0, 5, ..., 25, then 27 (aligned to the end)
    seen.clear()
    _windowed(pointwise, x, t, (), 40)
    assert seen == [37]  # short enough: one pass


def test_context_seconds_crops_short_clips_and_windows_long_ones():
    from soundsmith.pipelines.latent_diffusion import most_active

    pipe = LatentDiffusionPipeline(tiny_model(context_seconds=0.3))
    full = pipe("a bell rings", duration=0.3, seed=3, progress=False)
    short = pipe("a bell rings", duration=0.1, seed=3, progress=False)
    assert short.audio.shape == (1, int(0.1 * SR)) and short.meta["context_seconds"] == 0.3
    np.testing.assert_array_equal(short.audio[0], most_active(full.audio[0], int(0.1 * SR), SR))
    long = pipe("a bell rings", duration=1.1, seed=3, progress=False)
    assert long.audio.shape == (1, int(1.1 * SR)) and np.isfinite(long.audio).all()
    plain = LatentDiffusionPipeline(tiny_model())("a bell rings", duration=1.1, seed=3, progress=False)
    assert not np.array_equal(long.audio, plain.audio)  # the windows change the result
    with pytest.raises(ConfigError, match="context_seconds"):
        tiny_model(context_seconds=0.0)


def test_most_active_keeps_the_loudest_stretch_and_fades_its_cuts():
    from soundsmith.pipelines.latent_diffusion import most_active

    clip = np.full(1000, 0.01, np.float32)
    clip[600:800] = 0.5
    out = most_active(clip, 200, 1000)
    assert len(out) == 200
    np.testing.assert_array_equal(out[10:-10], clip[610:790])  # the burst
    assert out[0] == 0.0 and abs(out[-1]) < 0.06  # 10 ms fades where it cuts into the clip
    np.testing.assert_array_equal(most_active(clip, 1000, 1000), clip)


@pytest.mark.parametrize("prediction,sampler", [("epsilon", "ddim"), ("v_prediction", "euler")])
def test_vp_predictions_run_with_their_samplers(prediction, sampler):
    model = tiny_model(sampler=sampler)
    model.config.denoiser.prediction = prediction
    pipe = LatentDiffusionPipeline(model)
    out = pipe("a bell", duration=0.2, seed=0, progress=False)
    assert out.meta["sampler"] == sampler and np.isfinite(out.audio).all()
    assert "shift" not in out.meta  # a flow shift means nothing to a VP schedule


def test_strength_zero_returns_the_round_trip_exactly(pipe):
    tone = _tone(0.5)
    out = pipe("a flute", init_audio=tone, strength=0.0, seed=0, progress=False)
    assert out.audio.shape == (1, len(tone))  # duration follows the init audio
    np.testing.assert_array_equal(out.audio[0], pipe.round_trip(tone))
    varied = pipe("a flute", init_audio=tone, strength=0.5, seed=0, progress=False).audio[0]
    full = pipe("a flute", init_audio=tone, strength=1.0, seed=0, progress=False).audio[0]
    trip = pipe.round_trip(tone)
    # partial noising stays nearer the input than full regeneration
    assert np.abs(varied - trip).mean() < np.abs(full - trip).mean()


def test_init_audio_from_a_file(pipe, tmp_path):
    from soundsmith.audio import save_audio

    path = tmp_path / "in.wav"
    save_audio(path, _tone(0.4), SR)
    out = pipe("a flute", init_audio=str(path), strength=0.0, progress=False)
    np.testing.assert_allclose(out.audio[0], pipe.round_trip(str(path)), atol=1e-6)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(AudioError, match="bad.wav"):
        pipe("a flute", init_audio=str(tmp_path / "bad.wav"), progress=False)


def test_inpainting_keeps_the_rest_of_the_clip(pipe):
    tone = _tone(1.0)
    out = pipe("a dog barks", init_audio=tone, inpaint=(0.6, 1.0), seed=0, progress=False).audio[0]
    trip = pipe.round_trip(tone)
    kept = slice(0, int(0.45 * SR))  # away from the boundary (decoder and vocoder receptive fields)
    new = slice(int(0.7 * SR), SR)
    np.testing.assert_allclose(out[kept], trip[kept], atol=1e-4)
    assert np.abs(out[new] - trip[new]).mean() > 10 * np.abs(out[kept] - trip[kept]).mean() + 1e-6


def test_candidates_are_ranked_best_first_by_the_clap_score():
    torch.manual_seed(0)
    clap = AudioTextContrastive(
        ClapConfig(text_encoder="hashed:32", text_dim=32, channels=[8, 16], audio_embed_dim=16, proj_dim=16)
    )
    pipe = LatentDiffusionPipeline(tiny_model(), reranker=ClapEmbedder(clap))
    out = pipe("a bell rings", duration=0.3, seed=0, num_candidates=3, progress=False)
    scores = out.meta["clap_scores"]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    assert sorted(out.meta["candidate_seeds"]) == [0, 1, 2]
    unranked = pipe("a bell rings", duration=0.3, seed=0, num_candidates=3, progress=False, rerank=False)
    for rank, seed in enumerate(out.meta["candidate_seeds"]):
        np.testing.assert_array_equal(out.audio[rank], unranked.audio[seed])
    np.testing.assert_allclose(pipe.clap_scores(out.audio, "a bell rings"), scores, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"prompt": "   "}, TextError, "white space"),
        ({"prompt": ""}, TextError, "the prompt is empty"),
        ({"duration": 0}, ConfigError, "duration"),
        ({"duration": -1.0}, ConfigError, "duration"),
        ({"duration": 31.0}, ConfigError, "30 s limit"),
        ({"steps": 0}, ConfigError, "steps=0"),
        ({"guidance": -1.0}, ConfigError, "guidance"),
        ({"strength": 0.5}, ConfigError, "give init_audio"),
        ({"init_audio": np.zeros(800, np.float32), "strength": 1.5}, ConfigError, "strength=1.5"),
        ({"init_audio": np.zeros(8000, np.float32), "inpaint": (0.2, 0.9)}, ConfigError, "inpaint range"),
        ({"init_audio": np.zeros(8000, np.float32), "inpaint": (0.3, 0.1)}, ConfigError, "inpaint range"),
        ({"init_audio": np.zeros(0, np.float32)}, ConfigError, "init_audio"),
        ({"negative_prompt": " "}, ConfigError, "negative_prompt"),
    ],
)
def test_bad_input_is_a_one_line_error(pipe, kwargs, error, match):
    kwargs = {"prompt": "a bell", "duration": 0.2, "progress": False, **kwargs}
    if "init_audio" in kwargs and kwargs["duration"] == 0.2:
        del kwargs["duration"]
    with pytest.raises(error, match=match) as info:
        pipe(**kwargs)
    assert "\n" not in str(info.value)


def test_loud_output_is_scaled_below_full_scale_and_quiet_output_is_untouched():
    from soundsmith.pipelines.latent_audio import limit_peak

    audio = np.stack([np.linspace(-3, 2, 50), np.linspace(-0.5, 0.4, 50)]).astype(np.float32)
    out = limit_peak(audio)
    assert out.dtype == np.float32 and np.abs(out[0]).max() == pytest.approx(0.99)
    np.testing.assert_allclose(out[0] / out[0][-1], audio[0] / audio[0][-1], rtol=1e-6)  # one gain per row
    np.testing.assert_array_equal(out[1], audio[1])


@pytest.mark.skipif(not int8_available(), reason="no quantized CPU engine in this PyTorch")
def test_int8_compute_predicts_close_to_float32_and_is_recorded(pipe):
    net, compute = pipe.denoiser_for("int8")
    assert compute == "int8" and net is not pipe.model.denoiser
    assert pipe.denoiser_for("int8")[0] is net  # built once
    torch.manual_seed(0)
    x = torch.randn(2, 4, 2, 7)
    text = pipe.model.encode_text(["a bell rings", "rain"])
    with torch.no_grad():
        ref, out = (
            pipe.model.denoiser(x, torch.tensor([0.3, 0.8]), *text),
            net(x, torch.tensor([0.3, 0.8]), *text),
        )
    assert 0 < float((out - ref).norm() / ref.norm()) < 0.05
    a = pipe("a bell rings", duration=0.2, seed=4, compute="int8", progress=False)
    b = pipe("a bell rings", duration=0.2, seed=4, compute="int8", progress=False)
    f = pipe("a bell rings", duration=0.2, seed=4, progress=False)
    assert a.meta["compute"] == "int8" and f.meta["compute"] == "float32"  # the config's default
    np.testing.assert_array_equal(a.audio, b.audio)  # deterministic
    assert not np.array_equal(a.audio, f.audio)
    # the model's own weights are untouched: float32 gives what it gave before int8 ran
    np.testing.assert_array_equal(pipe("a bell rings", duration=0.2, seed=4, progress=False).audio, f.audio)


def test_compute_outside_the_choices_is_a_one_line_error(pipe):
    with pytest.raises(ConfigError, match="compute='fp16' must be one of") as info:
        pipe("a bell", duration=0.2, compute="fp16", progress=False)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="LatentDiffusionConfig.compute='bf16'"):
        tiny_model(compute="bf16")


@pytest.mark.parametrize("distilled", [False, True])
def test_sample_latents_are_what_generate_decodes_for_a_plain_prompt(distilled):
    """The teacher latents of GANmix's pairs: per prompt, the latent a single-part, untuned generate() decodes from
    the same noise, each prompt at its kind's guidance, in one batch (one pass when guidance is distilled)."""
    model = tiny_model(kind_guidance={"speech": 3.5}, compose=False, tune=False)
    if distilled:
        model.config.denoiser.guidance_embed = True
        model.denoiser = _Distilled(model.denoiser)
    pipe = LatentDiffusionPipeline(model)
    prompts, seeds = ["a bell rings", "a man says the word seven"], [4, 9]
    shape = model.latent_shape(pipe.num_samples(0.5))
    noise = torch.cat([torch.randn((1, *shape), generator=torch.Generator().manual_seed(s)) for s in seeds])
    latents = pipe.sample_latents(prompts, noise, compute="float32")
    assert latents.shape == noise.shape
    for i, (prompt, seed) in enumerate(zip(prompts, seeds)):
        made = pipe(prompt, duration=0.5, seed=seed, progress=False, compute="float32").audio
        np.testing.assert_allclose(pipe.decode(latents[i : i + 1], pipe.num_samples(0.5)), made, atol=1e-4)
    # the speech prompt was guided at its kind's 3.5: at the bell's 2.0 it comes out otherwise
    at_two = pipe.sample_latents(prompts, noise, guidance=2.0, compute="float32")
    torch.testing.assert_close(at_two[0], latents[0], atol=1e-5, rtol=0)
    assert not torch.allclose(at_two[1], latents[1], atol=1e-4)
    with pytest.raises(ConfigError, match="one noise row per prompt"):
        pipe.sample_latents(prompts, noise[:1])
    with pytest.raises(TextError):
        pipe.sample_latents(["a bell", " "], noise)


def test_vocoder_refine_holds_every_decoded_clip_to_its_mel():
    """``vocoder_refine`` reaches the shared decode: the pipeline's clip is the vocoder's output refined that many
    rounds (the same seed, the same latent), and a bad count is a one-line error naming the field."""
    from soundsmith.models.vocoder import refine_to_mel

    plain, held = tiny_model(), tiny_model(vocoder_refine=2)
    mel = torch.randn(1, 64, 51) - 4.0
    want = refine_to_mel(plain.vocoder.vocode(mel), mel, plain.mel_config(), 2)[..., :8000]
    np.testing.assert_allclose(held.mel_to_audio(mel, 8000), want, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(plain.mel_to_audio(mel, 8000), plain.vocoder.vocode(mel, length=8000))
    kwargs = {"duration": 0.5, "seed": 3, "progress": False}
    a = LatentDiffusionPipeline(plain)("a dog barks", **kwargs).audio
    b = LatentDiffusionPipeline(held)("a dog barks", **kwargs).audio
    assert a.shape == b.shape and not np.allclose(a, b)
    with pytest.raises(ConfigError, match=r"LatentDiffusionConfig.vocoder_refine=-1 must be an integer from 0"):
        tiny_model(vocoder_refine=-1)


def test_speech_parts_are_decoded_without_the_vocoders_refinement(monkeypatch):
    """A layered prompt's parts are decoded with the config's ``vocoder_refine``, but a spoken part with none (the
    refinement blurs words: docs/latent_diffusion.md); each row decoded alone equals its row of a batch."""
    from soundsmith.pipelines.latent_audio import LatentAudioPipeline

    pipe = LatentDiffusionPipeline(tiny_model(compose=True, vocoder_refine=2))
    seen = []
    decode = LatentAudioPipeline.decode

    def spy(self, latents, num_samples, refine=None):
        seen.append(list(refine))
        return decode(self, latents, num_samples, refine)

    monkeypatch.setattr(LatentAudioPipeline, "decode", spy)
    pipe('a man says the word "go" with rain behind', duration=0.5, seed=1, progress=False)
    assert seen[0] == [2, 0]  # the bed refined, the words not
    latents = torch.randn(2, *pipe.model.latent_shape(8000))
    both = decode(pipe, latents, 8000, [2, 0])
    np.testing.assert_allclose(both[0], decode(pipe, latents[:1], 8000, [2])[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(both[1], decode(pipe, latents[1:], 8000, [0])[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(both[1], decode(pipe, latents[1:], 8000, [2])[0])
