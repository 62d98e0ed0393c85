import pytest
import torch

from soundsmith.audio import mel_spectrogram
from soundsmith.errors import AudioError, ConfigError
from soundsmith.models.registry import load_model, save_model
from soundsmith.models.tagger import AudioTagger, TaggerConfig
from soundsmith.train.config import TrainConfig
from soundsmith.train.objectives.tagger import OBJECTIVE, TaggerObjective, multi_hot
from soundsmith.train.runconfig import load_run_config

LABELS = ["dog", "rain", "piano"]


def tiny(**kw) -> AudioTagger:
    torch.manual_seed(0)
    return AudioTagger(TaggerConfig(labels=LABELS, channels=[4, 8], embed_dim=16, dropout=0.0, **kw)).eval()


def test_shapes_and_posteriors():
    model = tiny()
    mel = torch.randn(3, 64, 51)
    assert model(mel).shape == (3, 3)
    assert model.embed(mel).shape == (3, 16)
    p = model.posteriors(mel, "softmax")
    torch.testing.assert_close(p.sum(-1), torch.ones(3))
    assert ((model.posteriors(mel) > 0) & (model.posteriors(mel) < 1)).all()
    emb, logits = model.embed_and_logits(mel)
    torch.testing.assert_close(logits, model(mel))
    assert model(torch.randn(1, 64, 3)).shape == (1, 3)  # very short clips still work


def test_batch_equals_single_items():
    model = tiny()
    mel = torch.randn(4, 64, 40)
    full = model(mel)
    singles = torch.cat([model(mel[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(full, singles, rtol=1e-4, atol=1e-5)


def test_config_validation():
    with pytest.raises(ConfigError, match="labels"):
        TaggerConfig(labels=[])
    with pytest.raises(ConfigError, match="duplicates"):
        TaggerConfig(labels=["a", "a"])


def test_save_load_roundtrip(tmp_path):
    model = tiny()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, AudioTagger) and loaded.config == model.config
    mel = torch.randn(2, 64, 30)
    torch.testing.assert_close(loaded(mel), model(mel))


def test_presets_build():
    for name in ("tiny", "base"):
        rc = load_run_config(f"configs/tagger/{name}.yaml")
        assert rc.family == "tagger" and AudioTagger(rc.model).num_classes == len(rc.model.labels)


def test_objective_lowers_loss_on_fixed_batch():
    assert OBJECTIVE is TaggerObjective
    torch.manual_seed(0)
    model = AudioTagger(TaggerConfig(labels=LABELS, channels=[4, 8], embed_dim=16, dropout=0.0))
    obj = TaggerObjective(model)
    g = torch.Generator().manual_seed(0)
    batch = {
        "audio": 0.1 * torch.randn(4, 8000, generator=g),
        "labels": [["dog"], ["rain", "piano"], [], ["x"]],
    }
    batch = obj.prepare_batch(batch)
    assert batch["targets"].tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0], [0, 0, 0]]
    (opt,) = obj.configure_optimizers(TrainConfig(lr=1e-2))
    first = None
    for _ in range(15):
        loss = obj.losses(batch, 0)["loss"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(obj.losses(batch, 0)["loss"].detach()) < 0.7 * first
    metrics = obj.validate(batch)
    assert set(metrics) == {"loss", "top1_precision", "f1"}


def test_multi_hot_ignores_unknown():
    assert multi_hot([["b", "zzz"]], ["a", "b"]).tolist() == [[0.0, 1.0]]


def test_speed_augmentation_moves_the_pitch_replays_per_row_and_stays_out_of_validation():
    from soundsmith.audio import change_speed
    from soundsmith.eval.pitch import track_pitch

    model = AudioTagger(TaggerConfig(labels=LABELS, channels=[4, 8], embed_dim=16, dropout=0.0))
    sr = model.config.sample_rate
    t = torch.arange(sr) / sr
    tone = (0.3 * torch.sin(2 * torch.pi * 440.0 * t)).view(1, -1)
    # an octave up is 2x the speed: the tone reads one octave higher, and the clip keeps its length
    up = change_speed(tone, torch.tensor([2.0]))
    assert up.shape == tone.shape and float(up[0, sr // 2 + 100 :].abs().max()) == 0.0
    assert abs(track_pitch(up[0, : sr // 2].numpy(), sr).median_midi() - 81.0) < 0.3
    with pytest.raises(AudioError, match="positive"):
        change_speed(tone, torch.tensor([0.0]))
    with pytest.raises(ConfigError, match="speed_semitones"):
        TaggerObjective(model, speed_semitones=-1.0)

    def rows(*index: int) -> dict:  # a batch of silent clips with these dataset rows
        return {"audio": torch.zeros(len(index), 8), "index": torch.tensor(index)}

    obj = TaggerObjective(model, speed_semitones=6.0)
    speeds = obj.draw_speeds(rows(3, 7, 11, 12))
    assert torch.equal(speeds, obj.draw_speeds(rows(3, 7, 11, 12)))  # a resumed run replays it
    assert not torch.equal(speeds, obj.draw_speeds(rows(4, 7, 11, 12)))
    assert bool(((speeds >= 2**-0.5) & (speeds <= 2**0.5)).all()) and len(set(speeds.tolist())) == 4
    audio = tone.repeat(4, 1)
    batch = {"audio": audio, "labels": [["dog"]] * 4, "index": torch.tensor([3, 7, 11, 12])}
    obj.train()
    trained = obj.prepare_batch(dict(batch))["mel"]
    expected = mel_spectrogram(change_speed(audio, speeds), model.config.mel_config())
    assert torch.allclose(trained, expected)
    obj.eval()
    assert torch.allclose(
        obj.prepare_batch(dict(batch))["mel"], mel_spectrogram(audio, model.config.mel_config())
    )
    assert torch.equal(TaggerObjective(model).draw_speeds(rows(3, 7)), torch.ones(2))


def test_mixing_adds_a_partner_at_its_level_and_unites_the_labels():
    from soundsmith.train.objectives.tagger import mix_clips

    sr = 1000
    t = torch.arange(sr) / sr
    a, b = torch.sin(2 * torch.pi * 50 * t), 0.1 * torch.sin(2 * torch.pi * 130 * t)
    audio = torch.stack([a, b, torch.zeros(sr)])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mixed, union = mix_clips(audio, targets, torch.tensor([1, -1, 0]), torch.tensor([6.0, 0.0, 0.0]))
    added = mixed[0] - a
    ratio = float(added.pow(2).mean().sqrt() / a.pow(2).mean().sqrt())
    assert abs(ratio - 10 ** (-6 / 20)) < 1e-4  # the partner sits 6 dB below the clip
    assert torch.allclose(added / added.abs().max(), b / b.abs().max(), atol=1e-5)  # and is the partner
    assert torch.equal(mixed[1], b) and torch.equal(mixed[2], audio[2])  # none asked; a silent clip keeps silence
    assert union.tolist() == [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_a_clip_is_never_mixed_with_itself():
    from soundsmith.train.objectives.base import mix_partners

    audio = torch.stack([torch.linspace(-1, 1, 100), 0.5 * torch.ones(100)])
    mixed, keep = mix_partners(audio, torch.tensor([0, 0]), torch.tensor([0.0, 20.0]))
    assert keep.tolist() == [False, True] and torch.equal(mixed[0], audio[0])
    assert torch.allclose(mixed[1], audio[1] + 0.1 * audio[0] * (0.5 / float(audio[0].pow(2).mean().sqrt())))


def test_mix_draws_replay_and_respect_their_settings():
    model = AudioTagger(TaggerConfig(labels=LABELS, channels=[4, 8], embed_dim=16, dropout=0.0))
    obj = TaggerObjective(model, mix_rate=1.0, mix_db=(-3.0, 3.0))
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    partner, level = obj.draw_mixes(16, g())
    p2, l2 = obj.draw_mixes(16, g())
    assert torch.equal(partner, p2) and torch.equal(level, l2)
    assert bool((partner >= 0).all()) and bool((partner != torch.arange(16)).all())  # never itself
    assert float(level.min()) >= -3.0 and float(level.max()) <= 3.0 and float(level.std()) > 0
    assert bool((TaggerObjective(model, mix_rate=0.0).draw_mixes(16, g())[0] == -1).all())
    assert bool((obj.draw_mixes(1, g())[0] == -1).all())  # a batch of one has no partner
    half = TaggerObjective(model, mix_rate=0.5).draw_mixes(400, g())[0]
    assert 150 < int((half >= 0).sum()) < 250
    # in training the batch's labels are united; in evaluation nothing is mixed
    sr = model.config.sample_rate
    audio = 0.1 * torch.randn(2, sr, generator=torch.Generator().manual_seed(1))
    batch = {"audio": audio, "labels": [[LABELS[0]], [LABELS[1]]], "index": torch.tensor([5, 6])}
    obj.train()
    assert obj.prepare_batch(dict(batch))["targets"][:, :2].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    obj.eval()
    assert obj.prepare_batch(dict(batch))["targets"][:, :2].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    for bad in ({"mix_rate": -0.1}, {"mix_db": (5.0, 1.0)}, {"mix_db": (0.0, 70.0)}):
        with pytest.raises(ConfigError, match="objective.mix_"):
            TaggerObjective(model, **bad)


def test_beds_are_drawn_from_the_batchs_bed_clips_and_go_under_the_others():
    labels = ["rain", "wind", "piano", "flute"]
    model = AudioTagger(TaggerConfig(labels=labels, channels=[4, 8], embed_dim=16, dropout=0.0))
    obj = TaggerObjective(model, bed_rate=1.0, bed_db=(10.0, 10.0), bed_classes=["rain", "wind"])
    batch_labels = [["piano"], ["rain"], ["flute"], ["wind"], ["piano", "flute"], ["rain", "piano"]]
    partner, level = obj.draw_beds(batch_labels, torch.Generator().manual_seed(3))
    # every clip that is not a bed gets one of the two bed clips; a bed gets none; a scene with a bed is no bed
    assert partner[[1, 3]].tolist() == [-1, -1]
    assert set(partner[[0, 2, 4, 5]].tolist()) <= {1, 3} and bool((partner[[0, 2, 4, 5]] >= 0).all())
    assert torch.allclose(level, torch.full((6,), 10.0))
    p2, l2 = obj.draw_beds(batch_labels, torch.Generator().manual_seed(3))
    assert torch.equal(partner, p2) and torch.equal(level, l2)  # replayed
    # no bed clip in the batch: nothing is mixed; rate 0: nothing either
    assert bool((obj.draw_beds([["piano"], ["flute"]], torch.Generator())[0] == -1).all())
    off = TaggerObjective(model, bed_rate=0.0, bed_classes=["rain"])
    assert bool((off.draw_beds(batch_labels, torch.Generator().manual_seed(3))[0] == -1).all())
    half = TaggerObjective(model, bed_rate=0.5, bed_classes=["rain"])
    drawn = half.draw_beds([["piano"]] * 399 + [["rain"]], torch.Generator().manual_seed(0))[0]
    assert 150 < int((drawn >= 0).sum()) < 250
    # in training the bed is added under the clip with its label; evaluation mixes nothing
    sr = model.config.sample_rate
    gen = torch.Generator().manual_seed(1)
    audio = torch.stack([0.1 * torch.randn(sr, generator=gen), 0.05 * torch.randn(sr, generator=gen)])
    batch = {"audio": audio, "labels": [["piano"], ["rain"]], "index": torch.tensor([0, 1])}
    obj.train()
    out = obj.prepare_batch(dict(batch))
    assert out["targets"].tolist() == [[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    obj.eval()
    assert obj.prepare_batch(dict(batch))["targets"].tolist() == [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    for bad, match in (
        ({"bed_rate": 2.0}, "objective.bed_rate"),
        ({"bed_rate": 0.5, "bed_db": (9.0, 1.0)}, "objective.bed_db"),
        ({"bed_rate": 0.5, "bed_classes": ["thunder"]}, "objective.bed_classes"),
        ({"bed_rate": 0.5, "bed_classes": []}, "no label given"),
        ({"bed_rate": 0.5, "bed_classes": "rain"}, "give a list"),
    ):
        with pytest.raises(ConfigError, match=match):
            TaggerObjective(model, **bad)
