"""WaveNet: autoregressive mu-law sample model with caption, category and mel conditioning."""

from soundsmith.families import Family

FAMILY = Family(
    name="wavenet",
    config="soundsmith.models.wavenet:WaveNetConfig",
    model="soundsmith.models.wavenet:WaveNet",
    objective="soundsmith.train.objectives.wavenet:WaveNetObjective",
    pipeline="soundsmith.pipelines.wavenet:WaveNetPipeline",
    kind="generator",
    description="autoregressive WaveNet over 8-bit mu-law samples (caption / category / mel conditioning)",
    contract_forward=lambda model, b: model(
        b["codes"], gc_ids=b.get("gc_ids"), text_emb=b.get("text_emb"), mel=b.get("wavenet_mel")
    ),
    contract_shape=lambda cfg, B, T: (B, cfg.quantization_channels, T),
    contract_overrides={
        "labels": ["bell", "rain"],
        "gc_cardinality": 2,
    },
)
