"""Audio tagger: the evaluation suite's classifier over the corpus classes (log-mel CNN)."""

from soundsmith.families import Family


def reference_loss(model, batch) -> float:
    """Multi-label binary cross-entropy written out in float64: -mean(y log s(z) + (1 - y) log(1 - s(z)))."""
    import math

    import torch

    with torch.no_grad():
        logits = model(batch["mel"]).double().tolist()
    targets = batch["targets"].double().tolist()
    total, n = 0.0, 0
    for row, ys in zip(logits, targets, strict=True):
        for z, y in zip(row, ys, strict=True):
            p = 1.0 / (1.0 + math.exp(-z))
            total -= y * math.log(p) + (1.0 - y) * math.log(1.0 - p)
            n += 1
    return total / n


FAMILY = Family(
    name="tagger",
    config="soundsmith.models.tagger:TaggerConfig",
    model="soundsmith.models.tagger:AudioTagger",
    objective="soundsmith.train.objectives.tagger:TaggerObjective",
    kind="evaluator",
    description="multi-label audio tagger over log-mel (PANNs-style CNN); embeddings for FAD, KL, IS",
    contract_forward=lambda model, b: model(b["mel"]),
    contract_shape=lambda cfg, B, T: (B, len(cfg.labels)),
    contract_reference_loss=reference_loss,
)
