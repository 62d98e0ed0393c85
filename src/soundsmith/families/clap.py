"""CLAP-style audio-text model: the evaluation suite's text-audio similarity and re-ranker."""

from soundsmith.families import Family


def _forward(model, b):
    import torch

    audio, text, _ = model(b["mel"], b["text_pooled"])
    return torch.cat([audio, text], dim=-1)


FAMILY = Family(
    name="clap",
    config="soundsmith.models.clap:ClapConfig",
    model="soundsmith.models.clap:AudioTextContrastive",
    objective="soundsmith.train.objectives.clap:ClapObjective",
    kind="evaluator",
    description="contrastive audio-text embedding (CNN audio tower + frozen MiniLM); CLAP score, re-ranking",
    contract_forward=_forward,
    contract_shape=lambda cfg, B, T: (B, 2 * cfg.proj_dim),
    contract_overrides={"text_encoder": "hashed:32", "text_dim": 32},
)
