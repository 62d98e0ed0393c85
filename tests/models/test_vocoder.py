"""Vocoder: output length, mel front-end checks, the inverse-STFT head, save/load, GAN losses by hand."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from soundsmith.audio import MelConfig, mel_spectrogram, stft
from soundsmith.errors import ConfigError, TrainingError
from soundsmith.models.registry import load_model, save_model
from soundsmith.models.vocoder import (
    MAX_LEVEL_GAIN_DB,
    Vocoder,
    VocoderConfig,
    check_mel_config,
    match_mel_level,
    refine_to_mel,
)
from soundsmith.nn.discriminators import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from soundsmith.nn.istft import ISTFTHead
from soundsmith.pipelines.reconstruct import DEFAULT_REFINE, Reconstructor
from soundsmith.train.objectives.vocoder import (
    VocoderObjective,
    low_band_stft_loss,
    multi_resolution_stft_loss,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(dim=16, intermediate_dim=32, depth=2)


def _vocoder(seed: int = 0, **kw) -> Vocoder:
    torch.manual_seed(seed)
    return Vocoder(VocoderConfig(**{**TINY, **kw})).eval()


@pytest.mark.parametrize("frames", [1, 2, 3, 7, 50, 101])
def test_output_length_is_hop_times_frames(frames):
    voc = _vocoder()
    with torch.no_grad():
        out = voc(torch.randn(2, 64, frames))
    assert out.shape == (2, frames * 160)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("samples", [1, 159, 160, 161, 4000, 16001])
def test_any_clip_length_comes_back_at_least_as_long(samples):
    voc = _vocoder()
    mel = mel_spectrogram(torch.randn(samples) * 0.1, voc.mel_config())
    wav = voc.vocode(mel)
    assert wav.shape == ((samples // 160 + 1) * 160,)
    assert voc.vocode(mel, length=samples).shape == (samples,)


def test_mel_config_mismatch_is_a_clear_error():
    voc = _vocoder()
    mel = torch.randn(1, 64, 10)
    with pytest.raises(ConfigError, match="hop_length=256 \\(expects 160\\)"):
        voc.vocode(mel, mel_config=MelConfig(hop_length=256))
    with pytest.raises(ConfigError, match="80"):
        voc(torch.randn(1, 80, 10))
    other = Vocoder(VocoderConfig(**TINY, n_mels=80))
    with pytest.raises(ConfigError, match="n_mels=80"):
        Reconstructor(vocoder=voc, mel_config=other.mel_config())


def test_bad_head_size_is_refused():
    with pytest.raises(ConfigError, match="head_n_fft"):
        VocoderConfig(head_n_fft=200)  # < 2 * hop: the frames would not cover every sample


@pytest.mark.parametrize("head_n_fft", [0, 2 * 160 + 2])  # 4x overlap (default), and about 2x
def test_istft_head_inverts_a_centred_stft_exactly(head_n_fft):
    voc = _vocoder(head_n_fft=head_n_fft)
    head = voc.head
    x = torch.randn(2, 40 * 160, dtype=torch.float32)
    spec = stft(x, head.n_fft, head.hop)  # [2, n_fft/2+1, 41], centred like the mel front end
    y = head.istft(spec)
    assert y.shape == (2, 41 * 160)
    torch.testing.assert_close(y[:, : x.shape[1]], x, rtol=1e-4, atol=1e-4)


def test_batch_equals_singles_with_odd_lengths():
    voc = _vocoder()
    mel = torch.randn(3, 64, 13)
    with torch.no_grad():
        batch = voc(mel)
        singles = torch.cat([voc(mel[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-6)


def test_save_load_identity_and_fp16_storage(tmp_path):
    voc = _vocoder(seed=3)
    mel = torch.randn(1, 64, 20)
    save_model(voc, tmp_path / "fp32")
    loaded = load_model(tmp_path / "fp32")
    assert isinstance(loaded, Vocoder) and loaded.config == voc.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), voc(mel), rtol=0, atol=0)
    save_model(voc.half(), tmp_path / "fp16")
    half = load_model(tmp_path / "fp16")  # stored fp16, loaded back as float32
    assert next(half.parameters()).dtype == torch.float32
    with torch.no_grad():
        ref = _vocoder(seed=3)(mel)
        assert float((half(mel) - ref).abs().max()) < 0.02 * float(ref.abs().max()) + 1e-3


def _steady_head(phase: str, freq: float) -> ISTFTHead:
    """A 640-point head (hop 160) whose output is the same every frame: bins 2-5 at one level, each frame's phase
    the same at its centre, and (accumulated) every bin advancing as a ``freq`` Hz sinusoid does."""
    head = ISTFTHead(8, 640, 160, math.log(1000.0), phase)
    bins = 321
    with torch.no_grad():
        head.proj.weight.zero_()
        bias = torch.full((head.proj.out_features,), -20.0)
        for j in (2, 3, 4, 5):
            bias[j] = math.log(50.0)
            bias[bins + j] = (-math.pi * j) % (2 * math.pi)
            if phase == "accumulated":
                want = 2 * math.pi * freq * 160 / 16000 - 2 * math.pi * j * 160 / 640
                bias[2 * bins + j] = math.atanh(((want + math.pi) % (2 * math.pi) - math.pi) / math.pi)
        head.proj.bias.copy_(bias)
    return head


def test_a_steady_absolute_head_buzzes_at_the_frame_rate_and_an_accumulated_one_holds_its_note():
    """The frame-rate buzz by construction: the same output every frame is a 100 Hz line for the absolute-phase
    head (its frames repeat at the hop) and an E2 (82.4 Hz) for the accumulated one."""
    from soundsmith.eval.reconstruction import frame_rate_buzz

    for phase, peak_hz, buzz in (("absolute", 100.0, 0.99), ("accumulated", 82.4, None)):
        with torch.no_grad():
            y = _steady_head(phase, 82.4)(torch.zeros(1, 200, 8))[0].numpy()
        mid = y[1600:-1600]
        spectrum = np.abs(np.fft.rfft(mid * np.hanning(len(mid)), 1 << 18))
        assert np.fft.rfftfreq(1 << 18, 1 / 16000)[spectrum.argmax()] == pytest.approx(peak_hz, abs=0.2)
        share = frame_rate_buzz(y, 16000, 160)
        assert share > buzz if buzz else share < 1e-6


def test_the_accumulated_head_keeps_the_vocoder_contract_and_sums_advances_by_hand():
    voc = _vocoder(seed=2, head_phase="accumulated")
    mel = torch.randn(3, 64, 13)
    with torch.no_grad():
        out = voc(mel)
        singles = torch.cat([voc(mel[i : i + 1]) for i in range(3)])
    assert out.shape == (3, 13 * 160) and torch.isfinite(out).all()
    torch.testing.assert_close(out, singles, rtol=1e-5, atol=1e-6)
    head = voc.head
    deviation = torch.randn(2, 321, 6)
    got = head.accumulated_phase(deviation)
    want = torch.zeros(2, 321, 6, dtype=torch.float64)
    for t in range(1, 6):  # frame t: frame t-1's phase plus the bin's centre advance plus pi tanh(deviation)
        step = 2 * math.pi * torch.arange(321, dtype=torch.float64) * 160 / 640 + math.pi * torch.tanh(deviation[..., t].double())
        want[..., t] = want[..., t - 1] + step
    torch.testing.assert_close(torch.cos(got.double()), torch.cos(want), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.sin(got.double()), torch.sin(want), atol=1e-5, rtol=0)
    assert float(got.abs().max()) <= math.pi + 1e-6
    with pytest.raises(ConfigError, match="head_phase"):
        VocoderConfig(head_phase="relative")


def test_the_head_phase_script_copies_a_trained_vocoder_into_the_accumulated_head(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("vhp", ROOT / "scripts" / "vocoder_head_phase.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    source = _vocoder(seed=4)
    save_model(source, tmp_path / "abs")
    script.main(["--from", str(tmp_path / "abs"), "--out", str(tmp_path / "acc")])
    copy = load_model(tmp_path / "acc")
    assert copy.config.head_phase == "accumulated" and source.config.head_phase == "absolute"
    for a, b in zip(source.backbone.state_dict().values(), copy.backbone.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    w_src, w = source.head.proj.weight, copy.head.proj.weight
    torch.testing.assert_close(w[: w_src.shape[0]], w_src, rtol=0, atol=0)  # magnitudes, phases -> offsets
    assert float(w[w_src.shape[0] :].abs().max()) == 0.0  # advances start at each bin's centre
    with pytest.raises(SystemExit, match="absolute-phase head"):
        script.main(["--from", str(tmp_path / "acc"), "--out", str(tmp_path / "again")])


# --- losses -------------------------------------------------------------------------------------------------


def _judgements(values):
    """[(logits, [features...])] from nested lists of floats."""
    return [(torch.tensor([v]), [torch.tensor([f]) for f in feats]) for v, feats in values]


def test_least_squares_gan_losses_by_hand():
    real = _judgements([(0.5, [1.0, 2.0]), (1.0, [3.0])])
    fake = _judgements([(0.25, [0.0, 2.5]), (-1.0, [1.0])])
    # D: sum_k (1 - r_k)^2 + f_k^2
    assert float(discriminator_loss(real, fake)) == pytest.approx((0.5**2 + 0.25**2) + (0.0 + 1.0))
    # G: sum_k (1 - f_k)^2
    assert float(generator_adversarial_loss(fake)) == pytest.approx(0.75**2 + 2.0**2)
    # FM: sum_k mean_l |r_l - f_l|
    assert float(feature_matching_loss(real, fake)) == pytest.approx((1.0 + 0.5) / 2 + 2.0)


def test_mr_stft_loss_zero_on_equal_and_finite_on_silence():
    y = torch.randn(2, 4000)
    assert float(multi_resolution_stft_loss(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(multi_resolution_stft_loss(0.5 * y, y)) > 0.1
    silent = multi_resolution_stft_loss(0.01 * torch.randn(2, 4000), torch.zeros(2, 4000))
    assert math.isfinite(float(silent)) and float(silent) < 100


def _objective():
    torch.manual_seed(0)
    obj = VocoderObjective(
        Vocoder(VocoderConfig(**TINY)), disc_start_step=5, mpd_channels=(4, 8), mrd_channels=4
    )
    rng = np.random.default_rng(0)
    t = np.arange(3200) / 16000
    audio = torch.tensor(np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(3200)]))
    return obj, obj.prepare_batch({"audio": audio.float()})


def test_generator_loss_is_the_weighted_sum_of_its_terms():
    obj, batch = _objective()
    obj.active_optimizers = (0,)  # warm-up: reconstruction only
    with torch.no_grad():
        out = obj.losses(batch, 0)
    assert set(out) == {"loss", "mel", "stft"}
    assert float(out["loss"]) == pytest.approx(45 * float(out["mel"]) + 2.5 * float(out["stft"]), rel=1e-5)
    with torch.no_grad():  # the mel term by hand
        y_hat = obj.model(batch["mel"])[:, : batch["audio"].shape[1]]
        mel_hat = mel_spectrogram(y_hat, obj.mel_config)
    assert float(out["mel"]) == pytest.approx(float((mel_hat - batch["mel"]).abs().mean()), rel=1e-5)
    obj.active_optimizers = (0, 1)  # GAN phase: + adversarial + feature matching
    with torch.no_grad():
        out = obj.losses(batch, 0)
    expected = 45 * out["mel"] + 2.5 * out["stft"] + out["adv"] + 2 * out["fm"]
    assert float(out["loss"]) == pytest.approx(float(expected), rel=1e-5)


def test_discriminator_loss_uses_the_generators_output_and_trains_only_judges():
    obj, batch = _objective()
    obj.active_optimizers = (0, 1)
    obj.train()
    obj.losses(batch, 0)["loss"].backward()  # caches the generator's output for the discriminator step
    for p in obj.parameters():
        p.grad = None
    out = obj.losses(batch, 1)
    y = batch["audio"]
    with torch.no_grad():
        y_hat = obj.model(batch["mel"])[:, : y.shape[1]]
        expected = discriminator_loss(obj.mpd(y) + obj.mrd(y), obj.mpd(y_hat) + obj.mrd(y_hat))
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    out["loss"].backward()
    assert all(p.grad is None for p in obj.model.parameters())  # the generator's output came in detached
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.mpd.parameters())


def test_optimizer_specs_delay_the_discriminator():
    from soundsmith.train.config import TrainConfig

    obj, _ = _objective()
    gen, disc = obj.configure_optimizers(TrainConfig())
    assert gen.start_step == 0 and disc.start_step == 5
    assert not disc.active(4) and disc.active(5)
    gen_params = {id(p) for g in gen.optimizer.param_groups for p in g["params"]}
    assert gen_params == {id(p) for p in obj.model.parameters()}


def test_the_low_band_term_sees_a_frame_rate_buzz_the_coarse_losses_hardly_see():
    """A low note (E2, 82.4 Hz) with lines at 100 and 200 Hz added: the fine low-band term grows by over 1.5 times
    what the three coarse resolutions do; it is 0 on equal signals, its bins stop at fmax, and it has a gradient."""
    t = torch.arange(16000) / 16000
    floor = 1e-3 * torch.randn(16000, generator=torch.Generator().manual_seed(0))  # a recording's noise floor
    note = (0.3 * torch.sin(2 * math.pi * 82.4 * t) + 0.15 * torch.sin(2 * math.pi * 164.8 * t) + floor)[None]
    buzzed = note + 0.03 * torch.sin(2 * math.pi * 100 * t) + 0.02 * torch.sin(2 * math.pi * 200 * t)
    assert float(low_band_stft_loss(note, note, 4096, 257)) == pytest.approx(0.0, abs=1e-6)
    fine = float(low_band_stft_loss(buzzed, note, 4096, 257))  # 257 bins: 0-1 kHz
    coarse = float(multi_resolution_stft_loss(buzzed, note))
    assert fine > 1.5 * coarse > 0
    above = note + 0.03 * torch.sin(2 * math.pi * 3000 * t)  # a line above fmax: not in the term
    assert float(low_band_stft_loss(above, note, 4096, 257)) < 0.1 * fine
    y_hat = buzzed.clone().requires_grad_(True)
    low_band_stft_loss(y_hat, note, 4096, 257).backward()
    assert torch.isfinite(y_hat.grad).all() and y_hat.grad.abs().sum() > 0


def test_the_low_band_term_joins_the_generators_loss_with_its_weight_and_is_validated():
    obj, batch = _objective()
    obj.active_optimizers = (0,)
    weighted = VocoderObjective(obj.model, disc_start_step=5, mpd_channels=(4, 8), mrd_channels=4,
                                fine_stft_weight=3.0, fine_stft_n_fft=1024, fine_stft_fmax=2000.0)  # fmt: skip
    weighted.active_optimizers = (0,)
    with torch.no_grad():
        base, out = obj.losses(batch, 0), weighted.losses(batch, 0)
        y_hat = obj.model(batch["mel"])[:, : batch["audio"].shape[1]]
        by_hand = low_band_stft_loss(y_hat, batch["audio"], 1024, 129)  # 2 kHz of 8: 128 bins + DC
    assert "fine_stft" not in base and float(out["fine_stft"]) == pytest.approx(float(by_hand), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(float(base["loss"]) + 3.0 * float(by_hand), rel=1e-5)
    assert weighted.validate(batch)["fine_stft"] == pytest.approx(float(by_hand), rel=1e-5)
    for bad in ({"fine_stft_weight": -1.0}, {"fine_stft_n_fft": 64}, {"fine_stft_fmax": 9000.0}):
        with pytest.raises(TrainingError, match="fine_stft"):
            VocoderObjective(obj.model, **bad)


def test_validation_loss_is_mel_l1():
    obj, batch = _objective()
    obj.eval()
    metrics = obj.validate(batch)
    with torch.no_grad():
        mel_l1 = float(obj.losses(batch, 0)["mel"])
    assert metrics["loss"] == pytest.approx(mel_l1, rel=1e-5)


def test_generator_loss_matches_a_librosa_reference():
    from soundsmith.families.vocoder import reference_loss

    obj, batch = _objective()
    obj.eval()
    with torch.no_grad():
        got = float(obj.losses(batch, 0)["loss"])
    assert got == pytest.approx(reference_loss(obj.model, batch), rel=1e-3)


def test_config_limits_are_refused_with_their_values():
    VocoderConfig(
        dim=1, intermediate_dim=1, depth=1, kernel_size=1, head_n_fft=2 * 256, hop_length=256
    )  # smallest
    for key in ("dim", "intermediate_dim", "depth", "kernel_size"):
        with pytest.raises(ConfigError, match=rf"^VocoderConfig.{key}=0 must be positive$"):
            VocoderConfig(**{key: 0})
    for k in (4, 9 - 1):
        with pytest.raises(ConfigError, match=rf"^VocoderConfig.kernel_size={k} must be odd$"):
            VocoderConfig(kernel_size=k)
    VocoderConfig(kernel_size=9)
    for n_fft in (2 * 160 - 2, 2 * 160 + 1, 4 * 160 + 3):
        with pytest.raises(
            ConfigError,
            match=rf"^VocoderConfig.head_n_fft={n_fft} must be even and >= 2 \* hop_length \(320\)",
        ):
            VocoderConfig(hop_length=160, head_n_fft=n_fft)
    VocoderConfig(hop_length=160, head_n_fft=2 * 160 + 2)
    with pytest.raises(ConfigError) as err:
        _vocoder()(torch.zeros(1, 80, 11))
    assert str(err.value) == (
        "vocoder expects a log-mel [B, 64, frames], got shape (1, 80, 11); compute it with the vocoder's mel_config()"
    )
    with pytest.raises(
        ConfigError, match=r"^the mel given to the vocoder was .*with the vocoder's own mel_config"
    ):
        check_mel_config(MelConfig(), MelConfig(n_mels=80))
    widths = {
        k: tuple(v.shape) for k, v in Vocoder(VocoderConfig(**TINY, kernel_size=3)).state_dict().items()
    }
    assert any(shape[-1:] == (3,) for shape in widths.values())  # the depthwise convolutions are 3 wide
    assert not any(shape[-1:] == (7,) for shape in widths.values())
    with pytest.raises(ConfigError) as err:
        check_mel_config(MelConfig(), MelConfig(n_mels=80, fmax=7000.0), who="VAE")
    assert str(err.value) == (
        "the mel given to the VAE was computed with different settings: n_mels=80 (expects 64), fmax=7000.0 "
        "(expects 8000.0); compute the mel with the VAE's own mel_config()"
    )


def test_optimizers_carry_the_run_settings_and_the_discriminator_its_own():
    from soundsmith.train.config import TrainConfig

    torch.manual_seed(0)
    obj = VocoderObjective(Vocoder(VocoderConfig(**TINY)), sample_rate=8000)
    assert obj.sample_rate == 8000 and obj.disc_clip_grad_norm == 10.0
    assert obj.mrd.discriminators[0].convs[0].out_channels == 8  # the documented default width
    cfg = TrainConfig(lr=3e-4, betas=(0.8, 0.95), weight_decay=0.02)
    gen, disc = obj.configure_optimizers(cfg)
    for spec, lr in ((gen, 3e-4), (disc, 3e-4)):
        group = spec.optimizer.param_groups[0]
        assert (group["lr"], group["betas"], group["weight_decay"]) == (lr, (0.8, 0.95), 0.02)
    assert disc.clip_grad_norm == 10.0 and gen.clip_grad_norm is None
    obj = VocoderObjective(Vocoder(VocoderConfig(**TINY)), disc_lr=1e-4, disc_clip_grad_norm=3.0)
    _, disc = obj.configure_optimizers(cfg)
    assert disc.optimizer.param_groups[0]["lr"] == 1e-4 and disc.clip_grad_norm == 3.0


def test_the_discriminator_step_reuses_the_generators_output_or_makes_its_own():
    obj, batch = _objective()
    obj.active_optimizers = (0, 1)
    obj.train()
    calls = []
    generate = obj.generate
    obj.generate = lambda b: calls.append(b) or generate(b)
    obj.losses(batch, 1)  # a fresh objective: no cached output, so it makes its own
    assert len(calls) == 1 and calls[0] is batch
    obj.losses(batch, 0)
    assert len(calls) == 2
    out = obj.losses(batch, 1)  # reuses the cached output: no second generator pass
    assert len(calls) == 2 and set(out) == {"loss", "disc"}
    again = obj.losses(batch, 1)  # the cache was emptied: a fresh (detached) pass of this batch
    assert len(calls) == 3 and calls[2] is batch
    assert float(again["disc"]) == pytest.approx(float(out["disc"]), rel=1e-5)
    with pytest.raises(TrainingError, match="vocoder objective has 2 optimizers, got opt_index=2"):
        obj.losses(batch, 2)


def test_reconstruction_loss_uses_the_vocoders_own_mel():
    torch.manual_seed(0)
    obj = VocoderObjective(Vocoder(VocoderConfig(**TINY, n_mels=40)), mpd_channels=(4,), mrd_channels=4)
    batch = obj.prepare_batch({"audio": 0.1 * torch.randn(2, 3200)})
    assert batch["mel"].shape[1] == 40
    obj.active_optimizers = (0,)
    with torch.no_grad():
        assert torch.isfinite(obj.losses(batch, 0)["loss"])


def _rms_mel(x: torch.Tensor) -> torch.Tensor:
    return mel_spectrogram(x, MelConfig(), log=False).pow(2).mean(dim=(-2, -1)).sqrt()


def test_match_mel_level_brings_each_clip_to_its_mels_level_and_keeps_its_shape():
    """A clip made 9 dB too quiet, and one 5 dB too loud, each come back at the level of the mel they were made
    from, by one gain each (the waveform's shape is untouched); the gain is capped, and silence is left alone."""
    t = torch.arange(16000) / 16000.0
    src = torch.stack([0.3 * torch.sin(2 * math.pi * 440 * t), 0.05 * torch.randn(16000, generator=torch.Generator().manual_seed(0))])
    mel = mel_spectrogram(src, MelConfig())
    made = src * torch.tensor([10 ** (-9 / 20), 10 ** (5 / 20)])[:, None]
    out = match_mel_level(made, mel, MelConfig())
    np.testing.assert_allclose(_rms_mel(out), _rms_mel(src), rtol=1e-3)
    gains = out[:, 100] / made[:, 100]
    np.testing.assert_allclose(out, made * gains[:, None], rtol=1e-5, atol=1e-8)  # one gain per clip
    assert 8.5 < 20 * math.log10(gains[0]) < 9.5 and -5.5 < 20 * math.log10(gains[1]) < -4.5
    far = match_mel_level(src * 1e-3, mel, MelConfig())  # 60 dB under: moved by the cap only
    np.testing.assert_allclose(far, src * 1e-3 * 10 ** (MAX_LEVEL_GAIN_DB / 20), rtol=1e-4, atol=1e-9)
    silent = torch.full_like(mel, math.log(1e-5))
    np.testing.assert_array_equal(match_mel_level(made, silent, MelConfig()), made)


def test_vocode_matches_the_level_only_when_asked_and_the_reconstructor_asks_by_default():
    voc = _vocoder()
    tone = 0.3 * torch.sin(2 * math.pi * 330 * torch.arange(8000) / 16000.0)
    mel = mel_spectrogram(tone[None], MelConfig())
    plain, matched = voc.vocode(mel, length=8000), voc.vocode(mel, length=8000, level_match=True)
    with torch.no_grad():
        own = voc(mel)
    np.testing.assert_array_equal(plain, own[..., :8000])  # off: the network's own output
    np.testing.assert_allclose(matched, match_mel_level(own, mel, MelConfig())[..., :8000], rtol=1e-6)
    assert not torch.allclose(plain, matched)
    audio = tone.numpy()
    np.testing.assert_allclose(Reconstructor(vocoder=voc, refine=0)(audio), matched[0].numpy(), rtol=1e-5, atol=1e-7)
    off = Reconstructor(vocoder=voc, refine=0, level_match=False)(audio)
    np.testing.assert_allclose(off, plain[0].numpy(), rtol=1e-5, atol=1e-7)
    held = voc.vocode(mel, length=8000, level_match=True, refine=DEFAULT_REFINE)[0].numpy()
    np.testing.assert_allclose(Reconstructor(vocoder=voc)(audio), held, rtol=1e-5, atol=1e-6)  # the default: both
    for bad in (-1, 17, 1.5, True):
        with pytest.raises(ConfigError, match=r"refine=.* must be an integer from 0 to 16"):
            voc.vocode(mel, refine=bad)
        with pytest.raises(ConfigError, match=r"refine=.* must be an integer from 0 to 16"):
            Reconstructor(vocoder=voc, refine=bad)


def test_refine_to_mel_moves_magnitudes_to_the_mel_and_leaves_a_consistent_clip_alone():
    """A clip whose spectrum was tilted (its phase right, its magnitudes wrong) comes closer to the mel it should
    have with every round; a clip that already is its mel's is (nearly) a fixed point."""
    gen = torch.Generator().manual_seed(1)
    t = torch.arange(16000) / 16000.0
    src = (0.2 * torch.sin(2 * math.pi * 220 * t) + 0.1 * torch.sin(2 * math.pi * 1760 * t)
           + 0.01 * torch.randn(16000, generator=gen))[None]
    mel = mel_spectrogram(src, MelConfig())
    spec = stft(src, 1024, 160)
    tilt = torch.linspace(2.0, 0.2, spec.shape[-2])[:, None]  # loud lows, quiet highs
    from soundsmith.audio import istft

    off = istft(spec * tilt, 1024, 160, length=16000)

    def err(x):
        return float((mel_spectrogram(x, MelConfig()) - mel).abs().mean())

    errors = [err(off)] + [err(refine_to_mel(off, mel, MelConfig(), k)) for k in (1, 2, 4)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.3 * errors[0], errors
    same = refine_to_mel(src, mel, MelConfig(), 2)
    assert err(same) < 2e-3  # its mel stays its mel
    np.testing.assert_allclose(same[..., 1024:-1024], src[..., 1024:-1024], atol=3e-3)  # (edges: reflect padding)
