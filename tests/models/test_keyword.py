"""Spoken-word recognizer: config checks, gain invariance, save/load, targets and augmentation."""

from __future__ import annotations

import pytest
import torch

from soundsmith.errors import ConfigError
from soundsmith.models.keyword import NO_WORD, KeywordConfig, KeywordSpotter
from soundsmith.train.objectives.keyword import (
    IGNORE,
    KeywordObjective,
    augment_audio,
    draw_augment,
    keyword_targets,
)


def tiny() -> KeywordSpotter:
    torch.manual_seed(0)
    return KeywordSpotter(
        KeywordConfig(words=["yes", "no"], stem_channels=8, channels=[8, 8], strides=[2, 2])
    )


def test_config_rejects_bad_vocabularies():
    with pytest.raises(ConfigError, match="each word once"):
        KeywordConfig(words=["yes", "yes"])
    with pytest.raises(ConfigError, match="extra class"):
        KeywordConfig(words=["yes", NO_WORD])
    with pytest.raises(ConfigError, match="same length"):
        KeywordConfig(channels=[8, 8], strides=[1])


def test_logits_shape_and_gain_invariance():
    model = tiny().eval()
    audio = 0.1 * torch.randn(3, 16000, generator=torch.Generator().manual_seed(1))
    logits = model(audio)
    assert logits.shape == (3, 3) and model.classes == ["yes", "no", NO_WORD]
    # the log-mel is normalised to the clip's maximum: a 4x louder clip gives the same logits
    assert torch.allclose(model(4.0 * audio), logits, atol=1e-4)
    assert model.recognize(audio)[0][0] in model.classes


def test_save_load_round_trip(tmp_path):
    from soundsmith.models.registry import load_model, save_model

    model = tiny().eval()
    audio = 0.1 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(2))
    save_model(model, tmp_path / "kw")
    loaded = load_model(tmp_path / "kw")
    assert loaded.config == model.config
    assert torch.equal(loaded(audio), model(audio))


def test_targets_from_labels():
    t = keyword_targets(
        [["speech_no"], ["bell"], [], ["speech_yes", "speech_no"], ["speech_seven"]], ["yes", "no"]
    )
    assert t.tolist() == [1, 2, 2, IGNORE, IGNORE]


def test_augmentation_is_a_function_of_the_generator_and_mixes_only_no_word_clips():
    targets = torch.tensor([0, 2, 1, 2])
    draws = [draw_augment(torch.Generator().manual_seed(5), targets, 2, 16000, 40, 101) for _ in range(2)]
    assert torch.equal(draws[0].speed, draws[1].speed) and torch.equal(draws[0].mix_with, draws[1].mix_with)
    assert set(draws[0].mix_with.tolist()) <= {-1, 1, 3}
    audio = torch.zeros(4, 16000)
    audio[:, 4000:6000] = 0.5
    out = [augment_audio(audio, draws[0], torch.Generator().manual_seed(6)) for _ in range(2)]
    assert out[0].shape == audio.shape and torch.equal(out[0], out[1])
    assert not torch.equal(out[0], audio)


def test_mix_rate_and_level_range():
    targets = torch.tensor([0, 2, 1, 2, 0, 2, 1, 2] * 8)
    args = (targets, 2, 16000, 40, 101)
    never = draw_augment(torch.Generator().manual_seed(5), *args, mix_rate=0.0)
    always = draw_augment(torch.Generator().manual_seed(5), *args, mix_rate=1.0, mix_db=(-6.0, -2.0))
    assert (never.mix_with == -1).all()
    assert (always.mix_with >= 0).all() and set(always.mix_with.tolist()) <= set(range(1, 64, 2))
    assert always.mix_db.min() >= -6.0 and always.mix_db.max() <= -2.0 and always.mix_db.std() > 0
    default = draw_augment(torch.Generator().manual_seed(5), *args)
    assert default.mix_db.min() >= 0.0 and default.mix_db.max() <= 20.0
    assert 0 < int((default.mix_with >= 0).sum()) < 64
    # 6 dB louder: the no-word clip's RMS is twice the word's (a silent no-word clip would add nothing)
    audio = torch.zeros(2, 16000)
    audio[0, 4000:6000] = 0.1
    audio[1] = 0.3 * torch.sin(torch.arange(16000) / 5.0)
    d = draw_augment(
        torch.Generator().manual_seed(1), torch.tensor([0, 2]), 2, 16000, 40, 101, 1.0, (-6.0, -6.0)
    )
    d.speed[:] = 1.0
    d.shift[:] = 0
    d.noise_kind[:] = 0
    d.gain_db[:] = 0.0
    out = augment_audio(audio, d, torch.Generator().manual_seed(2))
    added = out[0] - audio[0]
    ratio = float(added.pow(2).mean().sqrt() / audio[0].pow(2).mean().sqrt())
    assert abs(ratio - 10 ** (6 / 20)) < 1e-3
    for bad in ({"mix_rate": 1.5}, {"mix_db": (10.0, 0.0)}, {"mix_db": (-30.0, 0.0)}):
        with pytest.raises(ConfigError, match="objective.mix_"):
            KeywordObjective(tiny(), **bad)


def test_objective_trains_and_validates():
    model = tiny()
    objective = KeywordObjective(model)
    g = torch.Generator().manual_seed(3)
    batch = {
        "audio": 0.1 * torch.randn(4, 8000, generator=g),
        "labels": [["speech_yes"], ["speech_no"], [], []],
    }
    batch["index"] = torch.arange(4)
    objective.train()
    loss = objective.losses(objective.prepare_batch(dict(batch)))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.head.weight.grad is not None
    objective.eval()
    figures = objective.validate(dict(batch))
    assert 0.0 <= figures["accuracy"] <= 1.0 and figures["loss"] > 0
