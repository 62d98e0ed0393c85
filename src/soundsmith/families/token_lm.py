"""Token LM: text -> codec tokens (decoder-only transformer, relative attention, delay pattern) -> codec decoder."""

from soundsmith.families import ConditioningProbe, Family


def _forward(model, b):
    """The network on the batch's pattern-shifted tokens; the greedy next tokens decoded to audio: ``[B, T]``."""
    from soundsmith.models.token_lm import revert_pattern

    logits = model(model.inputs_for(b["seq"]), b["text_tokens"], b["text_mask"])  # [B, K, S, V]
    codes = revert_pattern(logits.argmax(-1), model.config.pattern, b["codes"].shape[-1])
    return model.codes_to_audio(codes, b["audio"].shape[-1])


def reference_loss(model, batch) -> float:
    """The training cross-entropy recomputed by hand, one step at a time (for ``contract_reference_loss``).

    The codes come from the batch's audio through the model's codec (first ``K`` codebooks). The pattern is laid
    out here: codebook ``k`` of frame ``t`` sits at step ``t + k`` (delay), ``t`` (parallel) or ``t K + k``
    (flat); every other slot holds the special token ``V``. Step ``s`` is predicted from a forward over the prefix
    alone (a start column of ``V``, then steps ``0 .. s - 1``), read at its last column: a network that peeked
    at later steps would score differently here than in the objective's one full pass. The caption-dropout mask
    is the objective's draw for ``(seed 0, step 0, rank 0, "drop")``. Loss = mean over the slots that hold a code
    of ``logsumexp(logits) - logits[code]``, in float64; padding slots are not scored.
    """
    import zlib

    import numpy as np
    import torch

    cfg = model.config
    V = cfg.special
    with torch.no_grad():
        codes = model.audio_to_codes(batch["audio"]).numpy()  # [B, K, T]
    B, K, T = codes.shape
    step_of = {"delay": lambda k, t: t + k, "parallel": lambda k, t: t, "flat": lambda k, t: t * K + k}
    where = step_of[cfg.pattern]
    S = max(where(k, T - 1) for k in range(K)) + 1
    seq = np.full((B, K, S), V, dtype=np.int64)
    for k in range(K):
        for t in range(T):
            seq[:, k, where(k, t)] = codes[:, k, t]
    inputs = np.concatenate([np.full((B, K, 1), V, dtype=np.int64), seq[..., :-1]], axis=-1)
    gen = torch.Generator().manual_seed(zlib.crc32(b"0:0:0:drop"))
    drop = torch.rand(B, generator=gen) < cfg.cond_drop_prob
    holds_code = {(k, where(k, t)) for k in range(K) for t in range(T)}
    total, count = 0.0, 0
    for s in range(S):
        with torch.no_grad():
            prefix = torch.from_numpy(inputs[..., : s + 1])
            logits = model(prefix, batch["text_tokens"], batch["text_mask"], drop)[:, :, -1].double().numpy()
        for b in range(B):
            for k in range(K):
                if (k, s) in holds_code:
                    row = logits[b, k]
                    top = row.max()
                    total += top + np.log(np.exp(row - top).sum()) - row[seq[b, k, s]]
                    count += 1
    return total / count


def _build(config):
    """The tiny preset with the tiny codec preset as a (frozen) module component."""
    from soundsmith import families
    from soundsmith.models.token_lm import TokenLM
    from soundsmith.train.runconfig import load_run_config

    family = families.get("codec")
    codec = family.model_class()(load_run_config(family.tiny_config_path()).model)
    return TokenLM(config, components={"codec": codec})


def _bump_text(b):
    """Add 1 to the first clip's first text token (a real token: the caption has at least one word)."""
    b["text_tokens"][0, 0] += 1.0
    return b


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
    contract_reference_loss=reference_loss,
    # every step cross-attends to the text: a change in it may change the first sample on (the greedy codes are
    # discrete, so "every step's logits change" is checked on the logits in tests/contract/test_causality.py)
    contract_conditioning=(ConditioningProbe("text_tokens", vary=_bump_text, expect=lambda c, T: (0, None)),),
)
