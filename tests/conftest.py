"""Fixtures shared by the whole test suite."""

import pytest

# The weight-free text encoder every test that needs one uses: deterministic, no download, 32-d.
TINY_TEXT_ENCODER = "hashed:32"


@pytest.fixture(scope="session")
def tiny_text_encoder():
    """``build_text_encoder("hashed:32")``, built once per session (pure: encoding does not change it)."""
    from soundsmith.text import build_text_encoder

    return build_text_encoder(TINY_TEXT_ENCODER)
