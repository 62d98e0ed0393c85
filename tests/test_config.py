"""Run configs: YAML fills dataclasses; unknown keys, wrong types and bad overrides are errors naming the key."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from soundsmith.config import dataclass_from_dict
from soundsmith.errors import ConfigError
from soundsmith.train.runconfig import apply_overrides, load_run_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class Inner:
    a: int = 1
    b: float = 2.0
    c: list[int] = field(default_factory=list)
    d: str | None = None
    e: bool = False


def test_fills_and_coerces():
    cfg = dataclass_from_dict(Inner, {"a": 3, "b": 1, "c": [1, 2], "d": "x", "e": True})
    assert cfg == Inner(a=3, b=1.0, c=[1, 2], d="x", e=True)
    assert isinstance(cfg.b, float)
    # YAML 1.1 reads 1e-3 as a string: numbers in exponent form still become floats.
    assert dataclass_from_dict(Inner, {"b": "1e-3"}).b == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"zz": 1}, "unknown key(s) zz"),
        ({"a": "three"}, "cfg.a: expected an integer"),
        ({"a": 1.5}, "cfg.a: expected an integer"),
        ({"e": "yes"}, "cfg.e: expected true or false"),
        ({"c": 3}, "cfg.c: expected a list"),
        ({"c": [1, "x"]}, "cfg.c[1]"),
    ],
)
def test_errors_name_the_key(data, needle):
    with pytest.raises(ConfigError) as e:
        dataclass_from_dict(Inner, data, where="cfg")
    assert needle in str(e.value)


def test_overrides_parse_yaml_values():
    out = apply_overrides({"train": {"lr": 1.0}}, ["train.lr=0.5", "model.x=[1, 2]", "train.flag=true"])
    assert out == {"train": {"lr": 0.5, "flag": True}, "model": {"x": [1, 2]}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["train.lr"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": 3}, ["train.lr=1"])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_preset_validates(path):
    run = load_run_config(path)
    assert run.family == path.parent.name
    assert run.to_dict()["family"] == run.family


def test_unknown_keys_in_run_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "wavenet" / "tiny.yaml").read_text() + "extra_section: 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_run_config(bad)
    with pytest.raises(ConfigError, match="residual_chanels"):
        load_run_config(CONFIGS / "wavenet" / "tiny.yaml", ["model.residual_chanels=4"])
    with pytest.raises(ConfigError, match="train.lr"):
        load_run_config(CONFIGS / "wavenet" / "tiny.yaml", ["train.lr=-1"])
    with pytest.raises(ConfigError, match="unknown model family 'nope'"):
        load_run_config(CONFIGS / "wavenet" / "tiny.yaml", ["family=nope"])
