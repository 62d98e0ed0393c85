"""Spoken-word recognizer: the evaluation suite's keyword spotter over the corpus words plus "no word"."""

from soundsmith.families import Family

LABEL_SMOOTHING = 0.05  # the objective's default (KeywordObjective(label_smoothing=0.05))


def reference_loss(model, batch) -> float:
    """Label-smoothed cross-entropy written out in float64 over the clips with a target:
    (1 - e) * -log p[target] + e * mean_k -log p[k]."""
    import math

    import torch

    with torch.no_grad():
        logits = model.forward_mel(batch["kw_mel"]).double().tolist()
    total, n = 0.0, 0
    for row, target in zip(logits, batch["kw_targets"].tolist(), strict=True):
        if target < 0:  # ignored (no annotation)
            continue
        top = max(row)
        log_z = top + math.log(sum(math.exp(v - top) for v in row))
        logp = [v - log_z for v in row]
        total += (1 - LABEL_SMOOTHING) * -logp[target] + LABEL_SMOOTHING * -sum(logp) / len(logp)
        n += 1
    return total / n if n else 0.0


FAMILY = Family(
    name="keyword",
    config="soundsmith.models.keyword:KeywordConfig",
    model="soundsmith.models.keyword:KeywordSpotter",
    objective="soundsmith.train.objectives.keyword:KeywordObjective",
    kind="evaluator",
    description="spoken-word recognizer (1-D CNN over log-mel): the corpus words + 'no word'; word adherence",
    contract_forward=lambda model, b: model(b["audio"]),
    contract_shape=lambda cfg, B, T: (B, len(cfg.words) + 1),
    contract_reference_loss=reference_loss,
)
