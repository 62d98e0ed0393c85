"""Run configs (soundsmith.train.runconfig): typed overrides, moved and removed keys, the family lookup."""

import subprocess
import sys
from pathlib import Path

import pytest

from soundsmith.errors import ConfigError
from soundsmith.train.runconfig import (
    apply_overrides,
    apply_typed_overrides,
    load_run_config,
    parse_overrides,
    read_yaml,
    run_config_from_dict,
)

TINY = Path(__file__).resolve().parents[2] / "configs" / "wavenet" / "tiny.yaml"


def test_typed_overrides_are_not_reparsed():
    data = {"train": {"lr": 1.0}, "model": {"text_encoder": "x"}}
    out = apply_typed_overrides(data, {"train.lr": 1e-3, "model.text_encoder": "1e-3", "data.seed": 3})
    # a string stays a string (YAML would have read "1e-3" as a number) and the input is not modified
    assert out == {"train": {"lr": 1e-3}, "model": {"text_encoder": "1e-3"}, "data": {"seed": 3}}
    assert data == {"train": {"lr": 1.0}, "model": {"text_encoder": "x"}}
    assert apply_overrides(data, {"train.lr": 0.5}) == apply_overrides(data, ["train.lr=0.5"])
    with pytest.raises(ConfigError, match="'train' is not a section"):
        apply_typed_overrides({"train": 3}, {"train.lr": 1})
    with pytest.raises(ConfigError, match="list of KEY=VALUE"):
        apply_overrides(data, "train.lr=1")


def test_cli_strings_parse_as_yaml():
    assert parse_overrides(["train.lr=0.001", "model.channels=[8, 16]", "train.x=true", "a.b="]) == {
        "train.lr": 1e-3,
        "model.channels": [8, 16],
        "train.x": True,
        "a.b": "",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["train.lr"])


def test_load_run_config_with_typed_values():
    run = load_run_config(TINY, {"train.lr": 0.25, "data.num_workers": 2})
    assert run.train.lr == 0.25 and run.data.num_workers == 2


def test_train_num_workers_moved_to_data():
    with pytest.raises(ConfigError, match=r"train.num_workers moved to data.num_workers"):
        load_run_config(TINY, {"train.num_workers": 2})
    # run configs saved before the move hold train.num_workers: 0 and train.extra: {} (their defaults): accepted
    data = read_yaml(TINY)
    data["train"] = {**data["train"], "num_workers": 0, "extra": {}}
    run = run_config_from_dict(data)
    assert run.data.num_workers == 0
    assert "extra" not in run.to_dict()["train"]


def test_family_comes_from_the_declarations():
    from soundsmith import families
    from soundsmith.models.wavenet import WaveNetConfig

    run = load_run_config(TINY)
    assert type(run.model) is families.get("wavenet").config_class() is WaveNetConfig
    with pytest.raises(ConfigError, match="unknown model family 'nope'.*valid families"):
        load_run_config(TINY, {"family": "nope"})


def test_generic_config_imports_no_model_code():
    code = (
        "import sys, soundsmith.config, soundsmith\n"
        "bad = [m for m in sys.modules if m.startswith(('soundsmith.models', 'soundsmith.train', 'torch'))]\n"
        "assert not bad, bad\n"
        "assert soundsmith.__version__ == soundsmith._version.__version__\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
