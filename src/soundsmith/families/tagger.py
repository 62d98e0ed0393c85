"""Audio tagger: the evaluation suite's classifier over the corpus classes (log-mel CNN)."""

from soundsmith.families import Family

FAMILY = Family(
    name="tagger",
    config="soundsmith.models.tagger:TaggerConfig",
    model="soundsmith.models.tagger:AudioTagger",
    objective="soundsmith.train.objectives.tagger:TaggerObjective",
    kind="evaluator",
    description="multi-label audio tagger over log-mel (PANNs-style CNN); embeddings for FAD, KL, IS",
    contract_forward=lambda model, b: model(b["mel"]),
    contract_shape=lambda cfg, B, T: (B, len(cfg.labels)),
)
