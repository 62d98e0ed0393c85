"""WaveNet details pinned for the survivors of a full `scripts/mutation.sh models/wavenet` run: every
`WaveNetConfig` message whole, which projections exist and carry no bias, the global conditioning vector by hand
(category embedding + caption projection, a 1-D caption too), and the short-mel message."""

import pytest
import torch
import torch.nn.functional as F

from soundsmith.errors import ConfigError, ModelError
from soundsmith.models.wavenet import WaveNet, WaveNetConfig


def small(**kw) -> WaveNetConfig:
    base = dict(quantization_channels=16, residual_channels=4, dilation_channels=4, skip_channels=4)
    return WaveNetConfig(**{**base, "stacks": 1, "layers_per_stack": 2, **kw})


POSITIVE = (
    "quantization_channels",
    "residual_channels",
    "dilation_channels",
    "skip_channels",
    "stacks",
    "layers_per_stack",
    "sample_rate",
    "hop_length",
)


@pytest.mark.parametrize("name", POSITIVE)
def test_a_size_below_one_is_refused_in_full(name):
    with pytest.raises(ConfigError) as e:
        small(**{name: 0})
    assert str(e.value) == f"WaveNetConfig.{name}=0 must be >= 1"


@pytest.mark.parametrize("name", ["gc_cardinality", "gc_channels", "text_dim", "lc_channels"])
def test_a_negative_switch_is_refused_in_full(name):
    with pytest.raises(ConfigError) as e:
        small(**{name: -1})
    assert str(e.value) == f"WaveNetConfig.{name}=-1 must be >= 0 (0 turns it off)"


@pytest.mark.parametrize(
    "kw, cardinality, text_dim",
    [({"gc_cardinality": 3}, 3, 0), ({"text_dim": 5}, 0, 5), ({"gc_cardinality": 2, "text_dim": 5}, 2, 5)],
)
def test_global_conditioning_without_channels_is_refused(kw, cardinality, text_dim):
    with pytest.raises(ConfigError) as e:
        small(gc_channels=0, **kw)
    assert str(e.value) == (
        f"WaveNetConfig.gc_channels=0 turns global conditioning off, but gc_cardinality={cardinality} / "
        f"text_dim={text_dim} need it; set gc_channels >= 1"
    )
    small(gc_channels=0)  # nothing asks for it: fine


def test_label_count_and_text_encoder_messages():
    with pytest.raises(ConfigError) as e:
        small(gc_cardinality=2, labels=["a"])
    assert str(e.value) == "WaveNetConfig.labels has 1 names but gc_cardinality=2; give one name per category"
    with pytest.raises(ConfigError) as e:
        small(text_encoder="hashed:8")
    assert str(e.value) == "WaveNetConfig.text_encoder='hashed:8' needs text_dim (the encoder's .dim), got 0"
    small(text_encoder="hashed:8", text_dim=1)  # the smallest text_dim is accepted


def test_projections_exist_only_when_asked_and_have_no_bias():
    plain = set(WaveNet(small()).state_dict())
    assert not any("gc_proj" in k or "lc_proj" in k for k in plain)
    full = WaveNet(small(gc_cardinality=2, gc_channels=3, lc_channels=5, hop_length=4)).state_dict()
    for i in range(2):
        assert full[f"layers.{i}.gc_proj.weight"].shape == (8, 3)
        assert full[f"layers.{i}.lc_proj.weight"].shape == (8, 5, 1)
        assert f"layers.{i}.gc_proj.bias" not in full and f"layers.{i}.lc_proj.bias" not in full


def test_the_global_vector_is_the_category_embedding_plus_the_caption_projection():
    torch.manual_seed(0)
    m = WaveNet(small(gc_cardinality=3, gc_channels=4, text_dim=5))
    ids, emb = torch.tensor([0, 2]), torch.randn(2, 5)
    expected = m.gc_embed.weight[ids] + F.linear(emb, m.text_proj.weight, m.text_proj.bias)
    torch.testing.assert_close(m.global_condition(2, ids, emb), expected)
    # one caption for the whole batch, given as a 1-D vector
    one = m.global_condition(2, None, emb[0])
    torch.testing.assert_close(one, F.linear(emb[0], m.text_proj.weight, m.text_proj.bias).expand(2, -1))
    with pytest.raises(ModelError) as e:
        m.global_condition(2, None, torch.randn(6))
    assert str(e.value) == "text_emb has dim 6, the model expects text_dim=5"


def test_a_short_mel_is_refused_with_its_frame_count():
    m = WaveNet(small(lc_channels=3, hop_length=4))
    with pytest.raises(ModelError) as e:
        m.upsample_mel(torch.zeros(1, 3, 2), 10)
    assert str(e.value) == "mel has 2 frames x hop 4 < 10 samples; give a longer mel"
