"""Latent diffusion configs at their exact boundaries: the smallest and largest accepted values pass, the next ones
are refused with the whole message (the value named, and what to set instead)."""

from __future__ import annotations

import pytest

from soundsmith.errors import ConfigError
from soundsmith.models.latent_diffusion import LatentDenoiserConfig, LatentDiffusionConfig

ACCEPTED = [
    {"level_floor_db": -80.0},
    {"level_floor_db": -10.0},
    {"level_floor_db": None},
    {"guidance_rescale": 0.0},
    {"guidance_rescale": 1.0},
    {"cond_drop_prob": 0.0},
    {"cond_drop_prob": 0.999},
    {"steps": 1},
    {"guidance": 0.0},
    {"guidance": 0.5},
    {"duration": 30.0, "max_duration": 30.0},
    {"duration": 0.01},
    {"sample_rate": 1},
    {"context_seconds": 30.0, "max_duration": 30.0},
    {"guidance_interval": [0.0, 1.0]},
    {"guidance_interval": [0.3, 0.3]},
    {"sample_shift": 0.5},
]

REFUSED = [
    (
        {"level_floor_db": -80.5},
        r"^LatentDiffusionConfig.level_floor_db=-80.5 must be from -80 to -10 dBFS \(or null: off\)$",
    ),
    (
        {"level_floor_db": -9.5},
        r"^LatentDiffusionConfig.level_floor_db=-9.5 must be from -80 to -10 dBFS \(or null: off\)$",
    ),
    (
        {"guidance_rescale": 1.01},
        r"^LatentDiffusionConfig.guidance_rescale=1.01 must be in \[0, 1\] \(0 = off\)$",
    ),
    ({"cond_drop_prob": 1.0}, r"^LatentDiffusionConfig.cond_drop_prob=1.0 must be in \[0, 1\)$"),
    ({"cond_drop_prob": -0.01}, r"^LatentDiffusionConfig.cond_drop_prob=-0.01 must be in \[0, 1\)$"),
    ({"steps": 0}, r"^LatentDiffusionConfig.steps=0 must be an integer >= 1$"),
    ({"guidance": -0.5}, r"^LatentDiffusionConfig.guidance=-0.5 must be a number >= 0$"),
    ({"guidance": float("nan")}, r"^LatentDiffusionConfig.guidance=nan must be a number >= 0$"),
    ({"guidance": float("inf")}, r"^LatentDiffusionConfig.guidance=inf must be a number >= 0$"),
    ({"duration": 0.0}, r"^LatentDiffusionConfig: need 0 < duration \(0.0\) <= max_duration \(30.0\)$"),
    ({"duration": 30.5}, r"^LatentDiffusionConfig: need 0 < duration \(30.5\) <= max_duration \(30.0\)$"),
    ({"sample_rate": 0}, r"^LatentDiffusionConfig.sample_rate=0 must be positive$"),
    (
        {"context_seconds": 30.5},
        r"^LatentDiffusionConfig.context_seconds=30.5 must be in \(0, max_duration\] \(or null: generate any length "
        r"in one pass\)$",
    ),
    (
        {"guidance_interval": [0.2, float("inf")]},
        r"^LatentDiffusionConfig.guidance_interval=\[0.2, inf\] must be \[lo, hi\] with 0 <= lo <= hi <= 1 \(or "
        r"null: guidance at every step\)$",
    ),
    (
        {"sample_shift": 0.0},
        r"^LatentDiffusionConfig.sample_shift=0.0 must be a positive number \(or null: the training shift\)$",
    ),
    (
        {"denoiser": {"bogus": 1}},
        r"^LatentDiffusionConfig.denoiser: unknown key\(s\) bogus for LatentDenoiserConfig; valid keys",
    ),
]


@pytest.mark.parametrize("kw", ACCEPTED, ids=[str(k) for k in ACCEPTED])
def test_latent_diffusion_config_accepts_its_boundaries(kw):
    LatentDiffusionConfig(**kw)


@pytest.mark.parametrize(("kw", "match"), REFUSED, ids=[str(k) for k, _ in REFUSED])
def test_latent_diffusion_config_refuses_past_its_boundaries_with_the_whole_message(kw, match):
    with pytest.raises(ConfigError, match=match):
        LatentDiffusionConfig(**kw)


def test_denoiser_config_boundaries_and_messages():
    LatentDenoiserConfig(
        d_model=2, heads=1, mlp_ratio=0.5, latent_channels=1, latent_bins=1, layers=1, text_dim=1
    )
    for name in ("latent_channels", "latent_bins", "d_model", "layers", "heads", "text_dim"):
        with pytest.raises(ConfigError, match=rf"^LatentDenoiserConfig.{name}=0 must be >= 1$"):
            LatentDenoiserConfig(**{name: 0})
    # 30 / 4 heads does not divide; 30 / 3 = 10 is even and fine; 30 / 5 = 6 even; 30 / 2 = 15 is odd
    LatentDenoiserConfig(d_model=30, heads=3)
    for heads in (4, 2):
        with pytest.raises(
            ConfigError,
            match=rf"^LatentDenoiserConfig.d_model=30 must split into {heads} heads of an even size$",
        ):
            LatentDenoiserConfig(d_model=30, heads=heads)
    for ratio in (0.0, -1.0):
        with pytest.raises(ConfigError, match=rf"^LatentDenoiserConfig.mlp_ratio={ratio} must be > 0$"):
            LatentDenoiserConfig(mlp_ratio=ratio)
