"""The JSON a client sends: one generation request, checked field by field before any work is queued."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Sampling options that only some families take; the server forwards one only when the model's pipeline names
# it in its ``generate`` signature, and otherwise answers 422 naming the field. File-system arguments of a
# pipeline (save_path, prime, ...) are never reachable over HTTP.
FAMILY_OPTIONS = ("negative_prompt", "temperature", "top_k", "top_p", "compose", "tune")
SEED_MAX = 2**31 - 1


class GenerateRequest(BaseModel):
    """``POST /v1/generate``: what to generate. Unknown fields and wrongly typed values are refused (422)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(description='what to generate, e.g. "a bell rings twice over rain"')
    model: str | None = Field(default=None, description="one of GET /v1/models (default: the server's first)")
    duration: float | None = Field(default=None, description="seconds (default: the model's own)")
    seed: int | None = Field(default=None, description="candidate i uses seed + i (default: a random seed)")
    steps: int | None = Field(default=None, description="sampler steps (diffusion families)")
    guidance: float | None = Field(default=None, description="classifier-free guidance scale (diffusion)")
    num_candidates: int = Field(default=1, description="clips to generate for the prompt")
    negative_prompt: str | None = Field(default=None, description="what to steer away from (diffusion)")
    temperature: float | None = Field(default=None, description="sampling temperature (autoregressive)")
    top_k: int | None = Field(default=None, description="top-k sampling (autoregressive)")
    top_p: float | None = Field(default=None, description="nucleus sampling (autoregressive)")
    compose: bool | None = Field(
        default=None,
        description="a layered prompt generated part by part and mixed, a counted sound once and repeated "
        "(latent diffusion)",
    )
    tune: bool | None = Field(
        default=None,
        description="a held note the prompt names (or a sound event's register): the clip shifted to it when "
        "off; a phrase asked to rise or fall drawn again when it does not move that way (latent diffusion)",
    )


class RatingRequest(BaseModel):
    """``POST /v1/ratings``: one listener's OVL and REL ratings (1-100, as in AudioLDM 2) of one clip."""

    model_config = ConfigDict(extra="forbid", strict=True)

    clip: str = Field(pattern=r"^[0-9a-f]{32}-\d{1,2}$", description="a clip id from GET /v1/listening/next")
    ovl: int = Field(ge=1, le=100, description="overall quality, 1 (bad) to 100 (excellent)")
    rel: int = Field(ge=1, le=100, description="relevance to the prompt, 1 (unrelated) to 100 (exact)")
    rater: str = Field(min_length=1, max_length=64, description="who is listening (any name)")
