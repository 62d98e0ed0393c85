"""Mel VAE: any-length round trip, latent scale factor, mel checks, KL by hand, the reconstruct pipeline."""

import dataclasses
import re

import numpy as np
import pytest
import torch

from soundsmith.audio import mel_spectrogram
from soundsmith.errors import ConfigError
from soundsmith.models.registry import load_model, save_model
from soundsmith.models.vae import MelVAE, VAEConfig, latent_scale_factor
from soundsmith.models.vocoder import Vocoder, VocoderConfig
from soundsmith.pipelines.reconstruct import Reconstructor
from soundsmith.train.objectives.vae import VAEObjective, kl_to_standard_normal

TINY = dict(channels=[8, 16, 16], latent_channels=4)


def _vae(seed: int = 0, **kw) -> MelVAE:
    torch.manual_seed(seed)
    return MelVAE(VAEConfig(**{**TINY, **kw})).eval()


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 17, 101])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_any_length_round_trip_shapes(frames, kernel_size):
    vae = _vae(kernel_size=kernel_size)
    mel = torch.randn(2, 64, frames) - 5
    with torch.no_grad():
        mean, logvar = vae.encode(mel)
        assert mean.shape == logvar.shape == (2, 4, -(-frames // 4))
        assert vae(mel).shape == (2, 64, frames)
        assert vae.decode_latents(vae.encode_latents(mel), frames).shape == (2, 64, frames)


def test_batch_equals_singles_with_padding():
    vae = _vae()
    mel = torch.randn(3, 64, 11) - 5
    with torch.no_grad():
        batch = vae(mel)
        singles = torch.cat([vae(mel[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-5)


def test_wrong_mel_is_a_clear_error():
    with pytest.raises(ConfigError, match="64"):
        _vae()(torch.randn(1, 80, 10))
    with pytest.raises(ConfigError, match="kernel_size"):
        VAEConfig(kernel_size=4)


def test_scale_factor_is_used_and_stored(tmp_path):
    vae = _vae(seed=1)
    mels = [torch.randn(2, 64, 40) - 5 for _ in range(3)]
    factor = latent_scale_factor(vae, mels)
    with torch.no_grad():  # 1 / std of the posterior means, by hand
        means = torch.cat([vae.encode(m)[0].flatten() for m in mels]).double()
    assert factor == pytest.approx(1 / float(means.std(unbiased=False)), rel=1e-6)

    scaled = MelVAE(dataclasses.replace(vae.config, scale_factor=factor)).eval()
    scaled.load_state_dict(vae.state_dict())
    mel = mels[0]
    with torch.no_grad():
        z = scaled.encode_latents(mel)
        torch.testing.assert_close(z, vae.encode(mel)[0] * factor)
        torch.testing.assert_close(scaled.decode_latents(z, 40), vae(mel), rtol=1e-4, atol=1e-4)
        latents = torch.cat([scaled.encode_latents(m).flatten() for m in mels])
    assert float(latents.std()) == pytest.approx(1.0, rel=0.01)

    save_model(scaled, tmp_path / "vae")
    loaded = load_model(tmp_path / "vae")
    assert loaded.config.scale_factor == factor
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_latents(mel), z, rtol=0, atol=0)


def test_sampled_latents_follow_the_generator():
    vae = _vae()
    mel = torch.randn(1, 64, 16) - 5
    a = vae.encode_latents(mel, generator=torch.Generator().manual_seed(0))
    b = vae.encode_latents(mel, generator=torch.Generator().manual_seed(0))
    c = vae.encode_latents(mel, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_kl_by_hand():
    zeros = torch.zeros(1, 2, 3)
    assert float(kl_to_standard_normal(zeros, zeros)) == 0.0
    # mean 1, var 1: 0.5 * (1 + 1 - 1 - 0) = 0.5; mean 0, logvar log 2: 0.5 * (2 - 1 - log 2)
    assert float(kl_to_standard_normal(torch.ones(1, 1, 4), torch.zeros(1, 1, 4))) == pytest.approx(0.5)
    lv = torch.full((1, 1, 2), float(np.log(2.0)))
    assert float(kl_to_standard_normal(torch.zeros(1, 1, 2), lv)) == pytest.approx(0.5 * (1 - np.log(2.0)))


def test_objective_loss_is_reconstruction_plus_weighted_kl():
    torch.manual_seed(0)
    obj = VAEObjective(MelVAE(VAEConfig(**TINY)), kl_weight=0.5)
    batch = obj.prepare_batch({"audio": 0.1 * torch.randn(2, 4000)})
    out = obj.losses(batch, 0)
    assert float(out["loss"].detach()) == pytest.approx(float(out["rec"]) + 0.5 * float(out["kl"]), rel=1e-5)
    obj.eval()
    with torch.no_grad():
        rec = (obj.model(batch["mel"]) - batch["mel"]).abs().mean()
    assert obj.validate(batch)["loss"] == pytest.approx(float(rec), rel=1e-5)


def test_training_loss_decodes_a_reparameterised_sample_of_the_posterior():
    torch.manual_seed(0)
    vae = MelVAE(VAEConfig(**TINY, n_mels=32))  # not the default front end: the objective must use the VAE's
    with torch.no_grad():
        vae.encoder.conv_out.bias[4:] = 1.0  # a posterior wide enough for the sample to matter
    obj = VAEObjective(vae, sample_rate=8000)
    assert obj.sample_rate == 8000
    batch = obj.prepare_batch({"audio": 0.1 * torch.randn(2, 4000)})
    assert batch["mel"].shape[1] == 32
    obj.train()
    torch.manual_seed(7)
    out = obj.losses(batch, 0)
    mean, logvar = vae.encode(batch["mel"])
    torch.manual_seed(7)
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    rec = torch.mean(torch.abs(vae.decode(z, batch["mel"].shape[-1]) - batch["mel"]))
    torch.testing.assert_close(out["rec"], rec.detach())
    obj.eval()  # and the posterior mean outside training
    with torch.no_grad():
        assert float(obj.losses(batch, 0)["rec"]) != float(rec)
        torch.testing.assert_close(
            obj.losses(batch, 0)["rec"], (vae(batch["mel"]) - batch["mel"]).abs().mean()
        )


# --- the reconstruct pipeline ---------------------------------------------------------------------------------


def _reconstructor(**kw) -> Reconstructor:
    torch.manual_seed(0)
    voc = Vocoder(VocoderConfig(dim=16, intermediate_dim=32, depth=2)).eval()
    return Reconstructor(vocoder=voc, vae=_vae(), **kw)


@pytest.mark.parametrize("samples", [100, 3333, 8000])
def test_reconstruct_keeps_the_length(samples):
    rec = _reconstructor()
    audio = 0.1 * np.random.default_rng(0).standard_normal(samples).astype(np.float32)
    out = rec(audio)
    assert out.shape == (samples,) and out.dtype == np.float32 and np.isfinite(out).all()
    assert rec(np.stack([audio, audio])).shape == (2, samples)


def test_reconstruct_resamples_and_griffin_lim_baseline():
    t = np.arange(22050) / 22050
    audio = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    gl = Reconstructor(vocoder=None, vae=None, griffin_lim_iters=8)
    out = gl(audio, 22050)
    assert out.shape == (16000,)
    # Griffin-Lim keeps the mel of a steady tone close (away from the edges)
    mel_in = mel_spectrogram(torch.tensor(np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 0.5).float())
    mel_out = mel_spectrogram(torch.tensor(out))
    assert float((mel_in - mel_out)[:, 5:-5].abs().mean()) < 1.0


def test_vae_and_vocoder_must_share_the_mel():
    torch.manual_seed(0)
    voc = Vocoder(VocoderConfig(dim=16, intermediate_dim=32, depth=2, hop_length=256))
    with pytest.raises(ConfigError, match="hop_length"):
        Reconstructor(vocoder=voc, vae=_vae())


def test_reconstruct_file_round_trip_and_cli(tmp_path):
    import argparse

    from soundsmith.audio import load_audio, save_audio
    from soundsmith.cli import reconstruct as cli

    rec = _reconstructor()
    save_model(rec.vocoder, tmp_path / "voc")
    save_model(rec.vae, tmp_path / "vae")
    t = np.arange(11025) / 22050
    save_audio(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 22050)
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "reconstruct",
            str(tmp_path / "in.wav"),
            "-o",
            str(tmp_path / "out.wav"),
            "--vocoder",
            str(tmp_path / "voc"),
        ]
        + ["--vae", str(tmp_path / "vae")]
    )
    assert args.func(args) == 0
    out, sr = load_audio(tmp_path / "out.wav")
    assert sr == 16000 and out.shape == (8000,)
    expected = rec(load_audio(tmp_path / "in.wav", sample_rate=16000)[0])
    np.testing.assert_allclose(out, np.clip(expected, -1, 1), atol=1e-4)  # 16-bit file
    args = parser.parse_args(  # the network's output as it is: neither the refinement nor the level match
        ["reconstruct", str(tmp_path / "in.wav"), "-o", str(tmp_path / "raw.wav"), "--vocoder", str(tmp_path / "voc")]
        + ["--vae", str(tmp_path / "vae"), "--refine", "0", "--no-level-match"]
    )
    assert args.func(args) == 0
    raw = load_audio(tmp_path / "raw.wav")[0]
    plain = Reconstructor(vocoder=rec.vocoder, vae=rec.vae, refine=0, level_match=False)
    np.testing.assert_allclose(raw, np.clip(plain(load_audio(tmp_path / "in.wav", sample_rate=16000)[0]), -1, 1), atol=1e-4)
    assert np.abs(raw - out).max() > 1e-3
    args = parser.parse_args(
        ["reconstruct", str(tmp_path / "in.wav"), "-o", str(tmp_path / "gl.wav")]
        + ["--vocoder", "griffin-lim", "--no-vae"]
    )
    assert args.func(args) == 0
    assert load_audio(tmp_path / "gl.wav")[0].shape == (8000,)


def test_eval_loss_matches_a_numpy_reference():
    from soundsmith.families.vae import reference_loss

    torch.manual_seed(0)
    obj = VAEObjective(MelVAE(VAEConfig(**TINY))).eval()
    batch = obj.prepare_batch({"audio": 0.1 * torch.randn(2, 4000)})
    with torch.no_grad():
        got = float(obj.losses(batch, 0)["loss"])
    assert got == pytest.approx(reference_loss(obj.model, batch), rel=1e-5)


def test_freeze_encoder_trains_the_decoder_alone():
    """``objective.freeze_encoder``: the latents of every clip stay what they were (a denoiser trained on them stays
    valid) while the decoder learns."""
    torch.manual_seed(0)
    model = MelVAE(VAEConfig(**TINY))
    obj = VAEObjective(model, freeze_encoder=True).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # weight decay too: parameters whose grad is None are skipped by the optimizer
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    audio = 0.1 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        opt.zero_grad()
        obj.losses({"audio": audio})["loss"].backward()
        opt.step()
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("encoder."))
    assert any(not torch.equal(after[k], v) for k, v in before.items() if k.startswith("decoder."))
    assert all(p.grad is None for p in model.encoder.parameters())
    free = MelVAE(VAEConfig(**TINY))
    VAEObjective(free).losses({"audio": audio})["loss"].backward()
    assert any(p.grad is not None for p in free.encoder.parameters())  # the default still trains both


def test_config_limits_and_mel_settings_reach_the_front_end():
    VAEConfig(channels=[1], latent_channels=1, kernel_size=1)  # the smallest valid VAE
    for bad in ([], [0], [8, -1]):
        with pytest.raises(
            ConfigError, match=re.escape(f"VAEConfig.channels={bad}: give one positive width per level")
        ):
            VAEConfig(channels=bad)
    for kw in ({"latent_channels": 0}, {"kernel_size": 0}, {"kernel_size": -1}):
        with pytest.raises(ConfigError, match="latent_channels"):
            VAEConfig(**kw)
    for kw in ({"mel_std": 0.0}, {"scale_factor": 0.0}, {"mel_std": -1.0}):
        with pytest.raises(ConfigError, match=r"mel_std \(.*\) and scale_factor \(.*\) must be positive"):
            VAEConfig(**kw)
    VAEConfig(mel_std=0.5, scale_factor=0.5)
    cfg = VAEConfig(
        sample_rate=22050, n_fft=512, hop_length=128, win_length=400, n_mels=40, fmin=30.0, fmax=9000.0
    )
    mel = cfg.mel_config()
    assert (mel.sample_rate, mel.n_fft, mel.hop_length, mel.win_length, mel.n_mels, mel.fmin, mel.fmax) == (
        22050, 512, 128, 400, 40, 30.0, 9000.0
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"expects a log-mel \[B, 64, frames\], got shape \(1, 80, 10\); compute "
                       "it with the VAE's mel_config\\(\\)"):  # fmt: skip
        _vae()(torch.randn(1, 80, 10))


def test_a_short_mel_is_padded_with_silence_and_the_log_variance_is_clamped():
    from soundsmith.models.vae import SILENCE_LOG_MEL

    vae = _vae(seed=2)
    with torch.no_grad():
        for p in vae.parameters():  # every weight gets a value, so the padded frames reach the last latent
            p.add_(0.05 * torch.randn_like(p))
        mel = torch.randn(1, 64, 10) - 5
        padded = torch.cat([mel, torch.full((1, 64, 2), SILENCE_LOG_MEL)], dim=-1)
        torch.testing.assert_close(vae.encode(mel)[0], vae.encode(padded)[0])
        shifted = torch.cat([mel, torch.full((1, 64, 2), SILENCE_LOG_MEL + 3.0)], dim=-1)
        assert not torch.allclose(vae.encode(mel)[0], vae.encode(shifted)[0])
        head = vae.encoder.conv_out
        head.bias[4:] = 1e4  # the log-variance half
        assert float(vae.encode(mel)[1].max()) == 20.0
        head.bias[4:] = -1e4
        assert float(vae.encode(mel)[1].min()) == -30.0
