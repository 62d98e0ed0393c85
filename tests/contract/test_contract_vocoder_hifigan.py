"""The vocoder family's second generator (HiFi-GAN, ``generator: hifigan``) through every contract check.

The declared family runs its one tiny preset (``configs/vocoder/tiny.yaml``, the Vocos generator) through
test_contract_families.py and test_contract_growth.py. The same declaration with the HiFi-GAN tiny preset
(``configs/vocoder/hifigan_tiny.yaml``) runs through the same check functions here: shape, batch == singles,
save -> load identity, a few steps lower the loss, ``soundsmith.load``, the loss against the family's librosa
reference, and the exported EMA weights.
"""

from __future__ import annotations

import dataclasses

import test_contract_growth as growth
from contract_checks import build, check_all

from soundsmith import families

HIFIGAN = dataclasses.replace(families.get("vocoder"), tiny_config="vocoder/hifigan_tiny.yaml")


def test_the_preset_builds_the_hifigan_generator():
    _, model = build(HIFIGAN)
    assert model.config.generator == "hifigan"
    assert hasattr(model, "generator") and not hasattr(model, "backbone")


def test_every_contract_check(tmp_path):
    check_all(HIFIGAN, tmp_path)


def test_loss_equals_the_reference_by_hand():
    growth.test_loss_equals_the_reference_by_hand(HIFIGAN)


def test_exported_weights_are_the_ema_weights(tmp_path):
    growth.test_exported_weights_are_the_ema_weights(HIFIGAN, tmp_path)
