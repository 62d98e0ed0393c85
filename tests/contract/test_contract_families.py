"""Contract tests, written once and run on every declared family's tiny preset (no per-family code here).

Each family must: build from its preset in well under a second; give outputs of the documented shape;
round-trip through save -> load with identical outputs; give a batch of N equal to N single runs; lower its
loss on a fixed batch within a few optimizer steps; load with ``soundsmith.load``; and (families that
generate) give the same audio for the same seed. The checks live in contract_checks.py and take the family's
declaration, so a family declared inside a test runs through the same functions.
"""

import pytest
from contract_checks import (
    check_few_steps_lower_the_loss,
    check_loads_with_soundsmith_load,
    check_same_seed_same_audio,
    check_save_load_identical,
    check_shape_and_batch_equals_singles,
)

from soundsmith import families

DECLARED = sorted(families.all_families().values(), key=lambda f: f.name)
FAMILIES = [pytest.param(f, id=f.name) for f in DECLARED]
GENERATORS = [pytest.param(f, id=f.name) for f in DECLARED if f.pipeline is not None]


@pytest.mark.parametrize("family", FAMILIES)
def test_declaration_is_complete(family):
    assert family.tiny_config_path().is_file(), f"family {family.name!r}: no tiny preset"
    assert family.objective is not None and family.objective_class() is not None
    assert family.contract_forward is not None and family.contract_shape is not None
    assert family.model_class() is not None and family.config_class() is not None


@pytest.mark.parametrize("family", FAMILIES)
def test_shape_and_batch_equals_singles(family):
    check_shape_and_batch_equals_singles(family)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_identical(family, tmp_path):
    check_save_load_identical(family, tmp_path / "m")


@pytest.mark.parametrize("family", FAMILIES)
def test_few_steps_lower_the_loss(family):
    check_few_steps_lower_the_loss(family)


@pytest.mark.parametrize("family", GENERATORS)
def test_same_seed_same_audio(family):
    check_same_seed_same_audio(family)


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_with_soundsmith_load(family, tmp_path):
    check_loads_with_soundsmith_load(family, tmp_path / "m")
