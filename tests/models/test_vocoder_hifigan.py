"""The vocoder's HiFi-GAN generator (``VocoderConfig(generator="hifigan")``): output length, alignment, config
checks, save/load through config.json + model.safetensors, and old (Vocos) configs loading as before.

The generic checks (shape, batch == singles, save/load, loss going down, reference loss, EMA export) also run on
``configs/vocoder/hifigan_tiny.yaml`` in tests/contract/test_contract_vocoder_hifigan.py.
"""

import copy
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from soundsmith.audio import mel_spectrogram
from soundsmith.config import dataclass_from_dict
from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.registry import SHIPPED_DIR, build_model, load_model, read_model_config, save_model
from soundsmith.models.vocoder import Vocoder, VocoderConfig
from soundsmith.nn.hifigan import frame_centre, transposed_padding
from soundsmith.train.objectives.vocoder import VocoderObjective

TINY = dict(generator="hifigan", upsample_initial_channel=16)


def _vocoder(seed: int = 0, **kw) -> Vocoder:
    torch.manual_seed(seed)
    return Vocoder(VocoderConfig(**{**TINY, **kw})).eval()


@pytest.mark.parametrize("frames", [1, 7, 100])
def test_output_length_is_frames_times_hop(frames):
    voc = _vocoder()
    with torch.no_grad():
        out = voc(torch.randn(2, 64, frames))
    assert out.shape == (2, frames * 160) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and float(out.abs().max()) <= 1.0  # tanh


@pytest.mark.parametrize("rates, hop", [((8, 8, 4), 256), ((3, 5), 15), ((2, 7), 14)])
def test_odd_and_even_rates_give_exactly_frames_times_hop(rates, hop):
    voc = _vocoder(upsample_rates=rates, hop_length=hop, n_fft=64, win_length=64, n_mels=8, fmax=4000.0)
    with torch.no_grad():
        assert voc(torch.randn(1, 8, 5)).shape == (1, 5 * hop)


def test_transposed_padding_keeps_every_rate_exact():
    for rate in range(2, 12):
        padding, output_padding = transposed_padding(rate)
        conv = torch.nn.ConvTranspose1d(1, 1, 2 * rate, rate, padding=padding, output_padding=output_padding)
        assert conv(torch.zeros(1, 1, 9)).shape[-1] == 9 * rate, rate


@pytest.mark.parametrize("samples", [1, 160, 4001])
def test_vocode_crops_or_pads_to_the_clip(samples):
    voc = _vocoder()
    mel = mel_spectrogram(0.1 * torch.randn(samples), voc.mel_config())
    assert voc.vocode(mel).shape == ((samples // 160 + 1) * 160,)
    assert voc.vocode(mel, length=samples).shape == (samples,)
    assert voc.vocode(mel[None, None], length=samples).shape == (1, 1, samples)


def test_same_seed_same_network_and_output():
    mel = torch.randn(1, 64, 9)
    a, b, c = _vocoder(seed=1), _vocoder(seed=1), _vocoder(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(a(mel), b(mel), rtol=0, atol=0)
        torch.testing.assert_close(a(mel), a(mel), rtol=0, atol=0)
        assert not torch.equal(a(mel), c(mel))


def test_save_load_identity_through_safetensors(tmp_path):
    voc = _vocoder(seed=3)
    mel = torch.randn(2, 64, 20)
    save_model(voc, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["config"]["generator"] == "hifigan" and meta["config"]["upsample_rates"] == [5, 4, 4, 2]
    stored = load_file(str(tmp_path / "m" / "model.safetensors"))
    # weight norm: magnitude (original0) and direction (original1) are both stored, nothing else of the weight
    assert "generator.conv_post.parametrizations.weight.original0" in stored
    assert "generator.conv_post.parametrizations.weight.original1" in stored
    assert set(stored) == set(voc.state_dict())
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, Vocoder) and loaded.config == voc.config
    assert isinstance(loaded.config.resblock_dilations[0], tuple)  # JSON lists came back as tuples
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), voc(mel), rtol=0, atol=0)
    save_model(voc.half(), tmp_path / "fp16")  # stored fp16 (as the shipped models), loaded back as float32
    half = load_model(tmp_path / "fp16")
    assert next(half.parameters()).dtype == torch.float32
    with torch.no_grad():
        ref = _vocoder(seed=3)(mel)
        assert float((half(mel) - ref).abs().max()) < 0.02 * float(ref.abs().max()) + 1e-4


def test_weights_of_the_other_generator_are_refused(tmp_path):
    save_model(_vocoder(), tmp_path / "m")
    meta = read_model_config(tmp_path / "m")
    meta["config"]["generator"] = "vocos"
    with pytest.raises(ModelError, match="weights do not match the vocoder config"):
        build_model(tmp_path / "m", meta)


def test_a_deep_copy_is_the_same_network():  # the EMA export deep-copies the model
    voc = _vocoder()
    twin = copy.deepcopy(voc)
    mel = torch.randn(1, 64, 6)
    with torch.no_grad():
        torch.testing.assert_close(twin(mel), voc(mel), rtol=0, atol=0)
        next(twin.parameters()).add_(1.0)
        assert not torch.equal(twin(mel), voc(mel))


def test_frame_centre_is_where_an_impulse_lands():
    """With every kernel a positive box and no biases the network is linear and symmetric about each frame's
    centre (on positive inputs the leaky ReLUs pass everything): an impulse in frame 10 comes out centred on
    ``10 * hop + frame_centre(rates)``, as the module docstrings say (63.5 samples for (5, 4, 4, 2))."""
    for rates in ((5, 4, 4, 2), (8, 5, 4)):
        voc = _vocoder(upsample_rates=rates).double()
        with torch.no_grad():
            for name, p in voc.named_parameters():
                p.fill_(0.0 if name.endswith("bias") else 1e-3 if name.endswith("original0") else 1.0)
            mel = torch.zeros(1, 64, 41, dtype=torch.float64)
            mel[0, :, 20] = 1.0
            y = voc.generator(mel)[0]
        assert float(y.min()) >= 0.0 and float(y.max()) > 0.0
        centroid = float((y * torch.arange(len(y), dtype=torch.float64)).sum() / y.sum()) - 20 * 160
        assert centroid == pytest.approx(frame_centre(rates), abs=1e-6)
    assert frame_centre((5, 4, 4, 2)) == 63.5  # the shipped hop's rates: 16 samples before the block's middle
    assert frame_centre((2, 4, 4, 5)) == 79.0 and frame_centre((4, 4, 2, 5)) == 79.0
    assert frame_centre((8, 8, 2, 2)) == (256 - 1) / 2  # even rates: the middle of the frame's block


def test_bad_generator_and_bad_upsampling_are_refused_naming_the_values():
    with pytest.raises(ConfigError) as err:
        VocoderConfig(generator="melgan")
    assert str(err.value) == (
        "VocoderConfig.generator='melgan' is not a vocoder generator; valid: vocos, hifigan"
    )
    with pytest.raises(ConfigError) as err:
        VocoderConfig(generator="hifigan", upsample_rates=(8, 8, 2))
    assert str(err.value) == (
        "VocoderConfig.upsample_rates=[8, 8, 2] multiply to 128, but their product must equal hop_length=160"
    )
    with pytest.raises(ConfigError, match=r"upsample_rates=\[5, 4, 4, 2\] multiply to 160.*hop_length=256"):
        VocoderConfig(generator="hifigan", hop_length=256)
    with pytest.raises(ConfigError, match=r"upsample_initial_channel=8 must be >= 2\*\*4 = 16"):
        VocoderConfig(generator="hifigan", upsample_initial_channel=8)
    with pytest.raises(ConfigError, match=r"resblock_kernel_sizes=\[3, 6\] must be one or more odd"):
        VocoderConfig(generator="hifigan", resblock_kernel_sizes=(3, 6), resblock_dilations=((1,), (1,)))
    with pytest.raises(
        ConfigError, match=r"resblock_dilations=\[\[1, 3\]\] must hold one .* per kernel size \(3\)"
    ):
        VocoderConfig(generator="hifigan", resblock_dilations=((1, 3),))
    with pytest.raises(ConfigError, match=r"upsample_rates=\[160, 1\] must be one or more strides >= 2"):
        VocoderConfig(generator="hifigan", upsample_rates=(160, 1))
    # each generator ignores the other's fields
    VocoderConfig(generator="hifigan", dim=0, kernel_size=4, head_n_fft=3)
    VocoderConfig(hop_length=256, upsample_rates=(1,), upsample_initial_channel=0)
    # from a config dict (JSON, YAML) the message names where the value came from
    with pytest.raises(ConfigError, match=r"^cfg: VocoderConfig.generator='HiFiGAN' is not"):
        dataclass_from_dict(VocoderConfig, {"generator": "HiFiGAN"}, where="cfg")


def test_config_lists_become_tuples_and_compare_equal():
    from_json = dataclass_from_dict(
        VocoderConfig,
        {"generator": "hifigan", "upsample_rates": [5, 4, 4, 2], "resblock_dilations": [[1, 3, 5]] * 3},
    )
    given_lists = VocoderConfig(
        generator="hifigan", upsample_rates=[5, 4, 4, 2], resblock_kernel_sizes=[3, 7, 11]
    )
    assert from_json == given_lists == VocoderConfig(generator="hifigan")
    assert from_json.upsample_rates == (5, 4, 4, 2) and from_json.resblock_dilations == ((1, 3, 5),) * 3


def test_a_vocos_config_without_generator_key_still_loads_as_vocos(tmp_path):
    old = {
        "dim": 32, "intermediate_dim": 64, "depth": 2, "kernel_size": 7, "head_n_fft": 0,
        "max_log_magnitude": math.log(1000.0), "sample_rate": 16000, "n_fft": 1024, "hop_length": 160,
        "win_length": 1024, "n_mels": 64, "fmin": 0.0, "fmax": 8000.0,
    }  # fmt: skip
    cfg = dataclass_from_dict(VocoderConfig, old)
    assert cfg.generator == "vocos"
    torch.manual_seed(0)
    voc = Vocoder(cfg).eval()
    assert hasattr(voc, "backbone") and hasattr(voc, "head") and not hasattr(voc, "generator")
    save_model(voc, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["config"] = old  # as written before the generator fields existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    loaded = load_model(tmp_path / "m")
    mel = torch.randn(1, 64, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), voc(mel), rtol=0, atol=0)


@pytest.mark.skipif(
    not (SHIPPED_DIR / "vocoder_default" / "model.safetensors").is_file(), reason="no vocoder_default in this tree"
)
def test_a_vocoder_saved_before_the_generator_and_head_phase_fields_loads_as_it_was():
    meta = read_model_config(SHIPPED_DIR / "vocoder_default")  # exported before either field existed
    assert "generator" not in meta["config"] and "head_phase" not in meta["config"]
    voc = load_model(SHIPPED_DIR / "vocoder_default")
    assert voc.config.generator == "vocos" and voc.config.head_phase == "absolute" and hasattr(voc, "backbone")
    stored = set(load_file(str(SHIPPED_DIR / "vocoder_default" / "model.safetensors")))
    assert stored == set(voc.state_dict())


def test_a_few_objective_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    obj = VocoderObjective(Vocoder(VocoderConfig(**TINY)), mpd_channels=(4,), mrd_channels=4)
    obj.active_optimizers = (0,)  # the generator-only phase: mel L1 + MR-STFT
    t = np.arange(3200) / 16000
    audio = torch.tensor(np.stack([0.3 * np.sin(2 * np.pi * 330 * t), 0.3 * np.sin(2 * np.pi * 550 * t)]))
    batch = obj.prepare_batch({"audio": audio.float()})
    opt = torch.optim.Adam(obj.model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float(obj.losses(batch, 0)["loss"])
    for _ in range(
        12
    ):  # from near silence (HiFi-GAN's N(0, 0.01) init) the first steps move little: 0.73x here
        opt.zero_grad()
        obj.losses(batch, 0)["loss"].backward()
        opt.step()
    with torch.no_grad():
        after = float(obj.losses(batch, 0)["loss"])
    assert after < 0.85 * before, (before, after)
