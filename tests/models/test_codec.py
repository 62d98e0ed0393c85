"""Codec and residual VQ: lengths, codebooks (EMA, dead codes, residuals), quantizer dropout, losses by hand."""

import numpy as np
import pytest
import torch

from soundsmith.audio import MelConfig, mel_spectrogram
from soundsmith.errors import ConfigError, ModelError, TrainingError
from soundsmith.models.codec import Codec, CodecConfig
from soundsmith.nn.rvq import ResidualVQ, VectorQuantizer
from soundsmith.train.objectives.codec import CodecObjective
from soundsmith.train.objectives.vocoder import STFT_LOSS_RESOLUTIONS, multi_resolution_stft_loss

TINY = dict(channels=4, ratios=[2, 2], dim=8, num_quantizers=4, codebook_size=16)


def tiny_codec(**kw) -> Codec:
    torch.manual_seed(0)
    return Codec(CodecConfig(**{**TINY, **kw})).eval()


SPECTRAL = dict(decoder_dim=16, decoder_intermediate_dim=32, decoder_depth=2)
SPECTRAL_ENC = dict(encoder_dim=16, encoder_intermediate_dim=32, encoder_depth=1, encoder_mels=8)


@pytest.mark.parametrize(
    "kind",
    [
        {},
        {"decoder": "istft", **SPECTRAL},
        {"encoder": "mel", "decoder": "istft", **SPECTRAL, **SPECTRAL_ENC},
    ],
)
@pytest.mark.parametrize("T", [1, 3, 4, 5, 17, 101, 1000])
def test_output_length_equals_input_length(T, kind):
    codec = tiny_codec(ratios=[2, 3], **kind)
    out = codec(torch.randn(2, T))
    assert out.audio.shape == (2, T)
    assert out.codes.shape == (2, 4, -(-T // 6))
    assert codec.decode(codec.encode(torch.randn(1, T)), T).shape == (1, T)


def test_decode_of_fewer_codebooks_and_bad_codes():
    codec = tiny_codec()
    codes = codec.encode(torch.randn(1, 40), n_q=2)
    assert codes.shape == (1, 2, 10)
    assert codec.decode(codes, 40).shape == (1, 40)
    with pytest.raises(ModelError, match="codes must lie in"):
        codec.decode(codes + 100, 40)
    with pytest.raises(ModelError, match="mono audio"):
        codec.encode(torch.randn(40))


def _clustered(n=512, dim=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(8, dim, generator=gen) * 2
    return centres[torch.randint(0, 8, (n,), generator=gen)] + 0.1 * torch.randn(n, dim, generator=gen)


def test_residuals_decrease_with_more_codebooks():
    rvq = ResidualVQ(4, num_quantizers=4, codebook_size=16, decay=0.8, dead_threshold=0.5).train()
    x = _clustered()[None]  # [1, N, D]
    for _ in range(30):
        rvq(x)  # EMA training on the data
    rvq.eval()
    norms = rvq.residual_norms(x)
    assert all(b < a for a, b in zip(norms, norms[1:])), norms
    errors = [float((rvq.decode(rvq.encode(x, n)) - x).pow(2).mean()) for n in range(1, 5)]
    assert errors == pytest.approx(norms, rel=1e-4)


def test_ema_update_moves_codes_toward_their_assigned_vectors():
    vq = VectorQuantizer(2, 4, decay=0.5, dead_threshold=0.0)
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    vq.embed_sum.copy_(vq.embed)
    x = torch.tensor([[1.0, 1.0], [1.2, 0.8], [9.0, 1.0]])  # two near code 0, one near code 1
    codes = vq.encode(x)
    assert codes.tolist() == [0, 0, 1]
    before = [(vq.embed[0] - x[:2].mean(0)).norm(), (vq.embed[1] - x[2]).norm()]
    vq.ema_update(x, codes)
    after = [(vq.embed[0] - x[:2].mean(0)).norm(), (vq.embed[1] - x[2]).norm()]
    assert after[0] < before[0] and after[1] < before[1]
    # the update by hand (no smoothing effect at eps -> 0 is checked loosely): N_0 = 0.5 + 0.5 * 2, S_0 = 0.5 * 0 + 0.5 * sum
    assert vq.cluster_size[0] == pytest.approx(1.5)
    torch.testing.assert_close(vq.embed_sum[0], 0.5 * x[:2].sum(0))


def test_dead_codes_are_restarted_on_batch_vectors():
    vq = VectorQuantizer(2, 4, decay=0.5, dead_threshold=0.8)
    vq.embed.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0], [100.0, -100.0]]))
    vq.embed_sum.copy_(vq.embed)
    x = torch.randn(64, 2) * 0.1  # every vector goes to code 0: codes 1-3 are never used
    vq.ema_update(x, vq.encode(x))  # their EMA counts fall to 0.5 < 0.8: dead
    for k in (1, 2, 3):
        assert (vq.embed[k] - x).norm(dim=1).min() < 1e-6  # now equal to a batch vector
    assert vq.embed[0].norm() < 1.0  # the live code stays


def test_quantizer_dropout_uses_fewer_codebooks():
    codec = tiny_codec()
    assert codec.train()(torch.randn(2, 40), n_q=2).codes.shape[1] == 2
    obj = CodecObjective(codec, quantizer_dropout=0.5)
    picks = []
    for step in range(200):
        obj.global_step = step
        picks.append(obj.draw_n_q())
    used = [p for p in picks if p is not None]
    assert 40 < len(used) < 160 and min(used) == 1 and max(used) == 4
    obj.global_step = 7
    assert obj.draw_n_q() == picks[7]  # a pure function of the step
    assert all(CodecObjective(codec, quantizer_dropout=0.0).draw_n_q() is None for _ in range(5))


def _stft_loss_by_hand(y_hat: np.ndarray, y: np.ndarray) -> float:
    """Spectral convergence (batch-wide, normalised by the larger norm) + log-magnitude L1, numpy FFTs."""

    def mag(x, n_fft, hop, win):
        w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
        w = np.pad(w, ((n_fft - win) // 2, n_fft - win - (n_fft - win) // 2))
        x = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
        n = 1 + (x.shape[1] - n_fft) // hop
        frames = np.stack([x[:, i * hop : i * hop + n_fft] * w for i in range(n)], 1)
        return np.maximum(np.abs(np.fft.rfft(frames, axis=-1)), 1e-7)

    total = 0.0
    for n_fft, hop, win in STFT_LOSS_RESOLUTIONS:
        s_hat, s = mag(y_hat, n_fft, hop, win), mag(y, n_fft, hop, win)
        sc = np.linalg.norm(s - s_hat) / max(np.linalg.norm(s), np.linalg.norm(s_hat))
        total += sc + np.mean(np.abs(np.log(s) - np.log(s_hat)))
    return total / len(STFT_LOSS_RESOLUTIONS)


def test_codec_losses_equal_the_hand_computed_reference():
    codec = tiny_codec()
    obj = CodecObjective(codec, l1_weight=2.0, mel_weight=4.0, stft_weight=0.5, commit_weight=3.0)
    gen = torch.Generator().manual_seed(0)
    y = 0.3 * torch.randn(2, 1200, generator=gen, dtype=torch.float64).float()
    with torch.no_grad():
        got = obj.losses({"audio": y}, 0)
        y_hat = codec(y).audio
        # commitment by hand: each stage's mean squared distance from its residual to its code, averaged
        r = codec.embed(y)
        commits = []
        for layer in codec.quantizer.layers:
            e = layer.embed[((r[..., None, :] - layer.embed) ** 2).sum(-1).argmin(-1)]
            commits.append(float(((r - e) ** 2).mean()))
            r = r - e
    l1 = float(np.abs(y.numpy() - y_hat.numpy()).mean())
    stft = _stft_loss_by_hand(y_hat.double().numpy(), y.double().numpy())
    assert float(got["l1"]) == pytest.approx(l1, rel=1e-5)
    assert float(got["commit"]) == pytest.approx(np.mean(commits), rel=1e-4)
    # the STFT term by hand in float64 equals the objective's function in float64 (float32 FFTs of the untrained
    # codec's near-silent bins differ in the log-magnitude term by ~1 %, so the float32 value is checked through it)
    assert float(multi_resolution_stft_loss(y_hat.double(), y.double())) == pytest.approx(stft, rel=1e-6)
    assert float(got["stft"]) == pytest.approx(float(multi_resolution_stft_loss(y_hat, y)), rel=1e-6)
    # log-mel L1 through the project's mel front end at the codec's rate (the vocoder's term)
    cfg = MelConfig(sample_rate=16000, fmax=8000.0)
    mel = float((mel_spectrogram(y_hat, cfg) - mel_spectrogram(y, cfg)).abs().mean())
    assert float(got["mel"]) == pytest.approx(mel, rel=1e-5)
    want = 2.0 * l1 + 4.0 * mel + 0.5 * float(got["stft"]) + 3.0 * np.mean(commits)
    assert float(got["loss"]) == pytest.approx(want, rel=1e-5)
    assert obj.validate({"audio": y})["loss"] == pytest.approx(
        mel, rel=1e-5
    )  # best.ckpt follows the mel term


@pytest.mark.parametrize("floor", [1e-5, 1e-3])
def test_the_log_mel_floor_is_the_given_one(floor):
    codec = tiny_codec()
    obj = CodecObjective(codec, mel_floor=floor)
    y = 0.3 * torch.randn(2, 1200, generator=torch.Generator().manual_seed(1))
    y[:, 600:] = 0.0  # digital silence, where the floor decides the term
    with torch.no_grad():
        got, y_hat = obj.losses({"audio": y}, 0), codec(y).audio
    cfg = MelConfig(sample_rate=16000, fmax=8000.0)
    logs = [np.log(np.maximum(mel_spectrogram(a, cfg, log=False).numpy(), floor)) for a in (y_hat, y)]
    assert float(got["mel"]) == pytest.approx(float(np.abs(logs[0] - logs[1]).mean()), rel=1e-5)
    with pytest.raises(TrainingError, match="mel_floor=0.0 must be positive"):
        CodecObjective(codec, mel_floor=0.0)


def test_discriminators_start_at_their_step_and_train_adversarially():
    codec = tiny_codec()
    obj = CodecObjective(codec.train(), disc_start_step=5, mpd_channels=(4, 4), mrd_channels=4)
    from soundsmith.train.config import TrainConfig

    specs = obj.configure_optimizers(TrainConfig())
    assert [s.active(4) for s in specs] == [True, False] and specs[1].active(5)
    y = torch.randn(2, 1024) * 0.1
    assert "adv" not in obj.losses({"audio": y}, 0)
    obj.active_optimizers = (0, 1)
    gen_out = obj.losses({"audio": y}, 0)
    assert {"adv", "fm"} <= set(gen_out)
    disc = obj.losses({"audio": y}, 1)["loss"]
    disc.backward()
    assert any(p.grad is not None for p in obj.mpd.parameters())


def test_the_codebook_starts_from_the_first_training_batch():
    vq = VectorQuantizer(2, 8, dead_threshold=0.0)
    x = torch.randn(1, 50, 2) * 5 + 20  # far from the random initial codes
    vq.eval()(x)
    assert not bool(vq.initialized)  # eval mode changes nothing
    vq.train()(x)
    assert bool(vq.initialized)
    for k in range(8):  # each code moved from a batch vector by at most one EMA step toward its cluster mean
        assert (vq.embed[k] - x[0]).norm(dim=1).min() < 5.0


def test_codebooks_and_their_restarts_follow_the_seed_and_the_settings_reach_every_stage():
    a, b, c = (
        VectorQuantizer(16, 32, seed=3),
        VectorQuantizer(16, 32, seed=3),
        VectorQuantizer(16, 32, seed=4),
    )
    assert torch.equal(a.embed, b.embed) and not torch.equal(a.embed, c.embed)
    expected = torch.randn(32, 16, generator=torch.Generator().manual_seed(3)) / 4.0  # N(0, 1 / dim)
    assert torch.equal(a.embed, expected)
    assert not bool(a.initialized) and a.initialized.dtype == torch.bool
    assert (a.decay, a.eps, a.dead_threshold) == (0.99, 1e-5, 2.0)
    flat = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))
    a.init_from_data(flat)  # the first batch's vectors, picked by the restart generator (seed + 1)
    picks = torch.randint(0, 40, (32,), generator=torch.Generator().manual_seed(4))
    assert bool(a.initialized) and torch.equal(a.embed, flat[picks])
    rvq = ResidualVQ(16, num_quantizers=3, codebook_size=32, decay=0.9, dead_threshold=5.0, seed=10)
    assert [(q.decay, q.dead_threshold) for q in rvq.layers] == [(0.9, 5.0)] * 3
    assert [
        torch.equal(q.embed, VectorQuantizer(16, 32, seed=10 + 2 * i).embed) for i, q in enumerate(rvq.layers)
    ] == [True] * 3
    default = ResidualVQ(16, num_quantizers=2, codebook_size=32).layers[1]
    assert (default.decay, default.dead_threshold) == (0.99, 2.0)
    with pytest.raises(ValueError, match=r"^n_q=4 must be from 1 to 3 \(the codebooks of this RVQ\)$"):
        rvq(torch.zeros(1, 2, 16), n_q=4)


def test_the_codebook_is_drawn_from_data_once():
    vq = VectorQuantizer(8, 16).train()
    calls = []
    init = vq.init_from_data
    vq.init_from_data = lambda x: calls.append(x.shape) or init(x)
    for seed in range(3):
        vq(torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(seed)))
    assert calls == [(10, 8)]


def test_upsample_crop_and_residual_unit_by_hand():
    import torch.nn.functional as F

    from soundsmith.models.codec import ResidualUnit, Upsample

    torch.manual_seed(0)
    for ratio in (2, 3, 4):
        up = Upsample(3, 2, ratio)
        x = torch.randn(1, 3, 5)
        with torch.no_grad():
            full = F.conv_transpose1d(x, up.conv.weight, up.conv.bias, stride=ratio)  # [1, 2, (5 + 1) r]
            left = ratio - ratio // 2  # the frames' centres line up with the encoder's strided frames
            torch.testing.assert_close(up(x), full[..., left : left + 5 * ratio])
    unit = ResidualUnit(4, 3)
    x = torch.randn(2, 4, 11)
    with torch.no_grad():
        torch.testing.assert_close(unit(x), x + unit.block(x))


def test_input_gain_scales_in_and_out():
    """``input_gain`` g: the encoder hears g x, the decoder's output is divided by g (same weights otherwise)."""
    plain, gained = tiny_codec(), tiny_codec(input_gain=8.0)
    gained.load_state_dict(plain.state_dict())
    x = 0.05 * torch.randn(2, 200, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(gained.encode(x), plain.encode(8.0 * x))
        torch.testing.assert_close(gained(x).audio, plain(8.0 * x).audio / 8.0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="input_gain"):
            CodecConfig(input_gain=bad)


def test_base_preset_latent_hears_the_corpus_level():
    """The base preset at its init: a -30 dBFS clip (the built-in corpus' level) moves the latent well beyond the
    convs' biases, and the first codebook, drawn from a batch of such clips, spreads a clip over many codes. At
    unit gain the input moved the latent by ~2.5 % and every frame of a clip took one code: the first base run
    collapsed to one output for every input (docs/codec_lm.md)."""
    from soundsmith.train.runconfig import load_run_config

    torch.manual_seed(0)
    codec = Codec(load_run_config("configs/codec/base.yaml").model).train()
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    pitch = 110 * 2 ** (torch.randint(0, 36, (16, 1), generator=gen) / 12)  # tones A2-G#5
    x = 0.045 * torch.sin(2 * torch.pi * pitch * t) * (torch.rand(16, 1, generator=gen) + 0.5)  # ~-30 dBFS
    x = x + 0.003 * torch.randn(16, 16000, generator=gen)
    with torch.no_grad():
        codec(x)  # the first training batch: codebooks drawn from its latents
        codec.eval()
        latent, bias_only = codec.embed(x[:4]), codec.embed(torch.zeros(4, 16000))
        codes = codec.encode(x[:4], n_q=1)[:, 0]  # [4, 50]
    moved = (latent - bias_only).pow(2).mean().sqrt() / latent.pow(2).mean().sqrt()
    assert moved > 0.25
    assert min(len(torch.unique(c)) for c in codes) >= 5


@pytest.mark.parametrize("n_q", [1, 3])
@pytest.mark.parametrize("training", [True, False])
def test_straight_through_passes_the_decoder_gradient_once(n_q, training):
    """The RVQ's output is the sum of its codes forward and the identity backward, at any number of stages (a
    straight-through per stage would hand the encoder the gradient n_q times)."""
    rvq = ResidualVQ(4, num_quantizers=4, codebook_size=16, decay=0.8).train(training)
    rvq(_clustered()[None])  # draws the codebooks from data
    x = _clustered(seed=1)[None].requires_grad_(True)
    out = rvq(x, n_q)
    assert torch.allclose(out.quantized, rvq.decode(out.codes), atol=1e-6)
    g = torch.randn_like(x)
    (out.quantized * g).sum().backward()
    assert torch.allclose(x.grad, g)


@pytest.mark.parametrize("T", [1, 40, 401])
def test_istft_decoder_lengths_and_gain(T):
    codec = tiny_codec(decoder="istft", decoder_dim=16, decoder_intermediate_dim=32, decoder_depth=2)
    assert codec(torch.randn(2, T)).audio.shape == (2, T)
    loud = tiny_codec(
        decoder="istft", decoder_dim=16, decoder_intermediate_dim=32, decoder_depth=2, input_gain=4.0
    )
    loud.load_state_dict(codec.state_dict())
    z = codec.quantizer.decode(codec.encode(torch.randn(1, 40)))
    assert torch.allclose(loud.decode_latent(z, 40) * 4.0, codec.decode_latent(z, 40), atol=1e-6)
    # the head's magnitude ceiling is in the audio's own scale: where it binds, the gained codec's output (divided
    # by its gain) is as loud as the plain one's (a fixed ceiling clipped the base preset's loud tones 30 dB)
    for c in (codec, loud):
        with torch.no_grad():
            c.decoder.head.proj.bias[: c.decoder.head.n_fft // 2 + 1] = 30.0  # far above any ceiling
    torch.testing.assert_close(loud.decode_latent(z, 40), codec.decode_latent(z, 40), rtol=1e-4, atol=1e-4)


def test_the_mel_encoder_hears_the_log_mel_of_its_frames():
    """The mel encoder is the project's log-mel front end at hop / encoder_stride (the first stride x T' centred
    frames of the gained input), then its backbone and strided conv: recomposed by hand."""
    codec = tiny_codec(encoder="mel", **{**SPECTRAL_ENC, "encoder_depth": 1}, ratios=[2, 4])
    x = 0.3 * torch.randn(1, 64, generator=torch.Generator().manual_seed(2))
    enc = codec.encoder
    mel = mel_spectrogram(x * codec.config.input_gain, MelConfig.at_rate(16000, hop_length=4, n_mels=8))
    assert mel.shape[-1] == 64 // 4 + 1  # centred frames; the encoder keeps the first 2 per token frame
    with torch.no_grad():
        want = enc.out(enc.backbone(mel[..., :16]).transpose(1, 2)).transpose(1, 2)
        assert torch.allclose(codec.embed(x), want, atol=1e-5)
        assert codec.embed(x).shape == (1, 8, codec.config.dim)


def test_istft_decoder_settings_are_checked():
    with pytest.raises(ConfigError, match="encoder='cqt' must be one of seanet, mel"):
        CodecConfig(encoder="cqt")
    with pytest.raises(ConfigError, match="encoder_stride=3 must divide the hop"):
        CodecConfig(encoder="mel", ratios=[2, 2], encoder_stride=3)
    with pytest.raises(ConfigError, match="decoder='wavernn' must be one of seanet, istft"):
        CodecConfig(decoder="wavernn")
    with pytest.raises(ConfigError, match="decoder_upsample=3 must divide the hop"):
        CodecConfig(decoder="istft", ratios=[2, 2], decoder_upsample=3)
    with pytest.raises(ConfigError, match="decoder_depth=0"):
        CodecConfig(decoder="istft", decoder_depth=0)


def test_the_istft_decoder_starts_from_a_vocoder_of_the_same_shape(tmp_path):
    from soundsmith.models.registry import save_model
    from soundsmith.models.vocoder import Vocoder, VocoderConfig

    torch.manual_seed(1)
    voc = Vocoder(
        VocoderConfig(dim=16, intermediate_dim=32, depth=2, n_mels=8, hop_length=2, n_fft=16, win_length=16)
    )
    save_model(voc, tmp_path / "voc")
    kw = dict(decoder="istft", decoder_dim=16, decoder_intermediate_dim=32, decoder_depth=2)  # hop 4 / 2 = 2
    codec = tiny_codec(**kw)
    before = codec.encoder.state_dict()
    CodecObjective(codec, decoder_init=str(tmp_path / "voc"))
    for part in ("backbone", "head"):
        for k, v in getattr(voc, part).state_dict().items():
            assert torch.equal(getattr(codec.decoder, part).state_dict()[k], v), k
    assert all(
        torch.equal(v, codec.encoder.state_dict()[k]) for k, v in before.items()
    )  # the encoder is its own
    with pytest.raises(ConfigError, match="does not fit this codec's decoder: backbone.embed.weight"):
        tiny_codec(**{**kw, "dim": 4}).init_decoder_from(voc)
    with pytest.raises(ConfigError, match="head.proj.weight"):  # a head of another hop
        tiny_codec(**{**kw, "decoder_upsample": 1}).init_decoder_from(voc)
    with pytest.raises(ConfigError, match="needs CodecConfig.decoder='istft'"):
        tiny_codec().init_decoder_from(voc)


def test_decoder_only_keeps_the_tokens_and_trains_the_decoder():
    """``decoder_only``: after steps of the whole codec (the optimizer has momentum for every layer), steps with the
    encoder and codebooks frozen move the decoder only; the codes of a clip stay the same, bit for bit."""
    from soundsmith.train.config import TrainConfig

    codec = tiny_codec().train()
    obj = CodecObjective(codec, mpd_channels=(4, 4), mrd_channels=4, quantizer_dropout=0.0)
    opt = obj.configure_optimizers(TrainConfig(lr=1e-2))[0].optimizer
    torch.manual_seed(1)
    y = torch.randn(4, 1024) * 0.1
    obj.decoder_only = True  # codebooks never drawn from data: frozen, they would stay random
    with pytest.raises(TrainingError, match="never been trained"):
        obj.losses({"audio": y}, 0)
    obj.decoder_only = False

    def step():
        opt.zero_grad(set_to_none=True)
        obj.losses({"audio": y}, 0)["loss"].backward()
        opt.step()
        codec.train()  # the engine's mode for the next step

    for _ in range(2):
        step()
    frozen = {k: v.clone() for k, v in codec.state_dict().items() if not k.startswith("decoder.")}
    decoder = {k: v.clone() for k, v in codec.state_dict().items() if k.startswith("decoder.")}
    codes = codec.eval().encode(y)
    codec.train()
    obj.decoder_only = True
    parts = obj.losses({"audio": y}, 0)
    assert float(parts["n_q"]) == codec.config.num_quantizers  # no quantizer dropout either
    for _ in range(2):
        step()
    after = codec.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())  # codebooks, EMA counts, encoder
    assert any(not torch.equal(after[k], v) for k, v in decoder.items())
    assert torch.equal(codec.eval().encode(y), codes)
    # the whole codec again: the encoder moves (the test above is not vacuous)
    obj.decoder_only = False
    codec.train()
    step()
    assert any(
        not torch.equal(codec.state_dict()[k], v) for k, v in frozen.items() if k.startswith("encoder.")
    )
