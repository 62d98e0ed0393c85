"""Spoken-word recognizer: the evaluation suite's keyword spotter over the corpus words plus "no word"."""

from soundsmith.families import Family

FAMILY = Family(
    name="keyword",
    config="soundsmith.models.keyword:KeywordConfig",
    model="soundsmith.models.keyword:KeywordSpotter",
    objective="soundsmith.train.objectives.keyword:KeywordObjective",
    kind="evaluator",
    description="spoken-word recognizer (1-D CNN over log-mel): the corpus words + 'no word'; word adherence",
    contract_forward=lambda model, b: model(b["audio"]),
    contract_shape=lambda cfg, B, T: (B, len(cfg.words) + 1),
)
