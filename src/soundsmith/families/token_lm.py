"""Token LM: text -> codec tokens (decoder-only transformer, relative attention, delay pattern) -> codec decoder."""

from soundsmith.families import Family


def _forward(model, b):
    """The network on the batch's pattern-shifted tokens; the greedy next tokens decoded to audio: ``[B, T]``."""
    from soundsmith.models.token_lm import revert_pattern

    logits = model(model.inputs_for(b["seq"]), b["text_tokens"], b["text_mask"])  # [B, K, S, V]
    codes = revert_pattern(logits.argmax(-1), model.config.pattern, b["codes"].shape[-1])
    return model.codes_to_audio(codes, b["audio"].shape[-1])


def _build(config):
    """The tiny preset with the tiny codec preset as a (frozen) module component."""
    from soundsmith import families
    from soundsmith.models.token_lm import TokenLM
    from soundsmith.train.runconfig import load_run_config

    family = families.get("codec")
    codec = family.model_class()(load_run_config(family.tiny_config_path()).model)
    return TokenLM(config, components={"codec": codec})


FAMILY = Family(
    name="token_lm",
    config="soundsmith.models.token_lm:TokenLMConfig",
    model="soundsmith.models.token_lm:TokenLM",
    objective="soundsmith.train.objectives.token_lm:TokenLMObjective",
    pipeline="soundsmith.pipelines.token_lm:TokenLMPipeline",
    kind="generator",
    description="text-to-audio token LM over codec codes (MusicGen-style delay pattern, relative attention)",
    contract_forward=_forward,
    contract_shape=lambda cfg, B, T: (B, T),
    contract_build=_build,
)
