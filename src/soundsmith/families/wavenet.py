"""WaveNet: autoregressive mu-law sample model with caption, category and mel conditioning."""

from __future__ import annotations

from typing import Any

from soundsmith.families import ConditioningProbe, Family


def _forward(model: Any, b: dict[str, Any]) -> Any:
    return model(b["codes"], gc_ids=b.get("gc_ids"), text_emb=b.get("text_emb"), mel=b.get("wavenet_mel"))


def _reference_loss(model: Any, b: dict[str, Any]) -> float:
    """-log p(x[t+1] | x[0..t]), averaged over clips and positions, read off by hand one position at a time.

    One forward over the whole clip (causality makes ``logits[:, :, t]`` the prediction after reading x[0..t]);
    each position's log-softmax is then read at the NEXT code.
    """
    import torch

    codes = b["codes"]  # [B, T]
    logp = torch.log_softmax(_forward(model, b).double(), dim=1).tolist()  # [B][Q][T]
    total, n = 0.0, 0
    for i, row in enumerate(codes.tolist()):
        for t in range(len(row) - 1):
            total -= logp[i][row[t + 1]][t]
            n += 1
    return total / n


def _bump_mel_frame_2(b: dict[str, Any]) -> dict[str, Any]:
    b = dict(b)
    b["wavenet_mel"] = b["wavenet_mel"].clone()
    b["wavenet_mel"][..., 2] += 3.0
    return b


FAMILY = Family(
    name="wavenet",
    config="soundsmith.models.wavenet:WaveNetConfig",
    model="soundsmith.models.wavenet:WaveNet",
    objective="soundsmith.train.objectives.wavenet:WaveNetObjective",
    pipeline="soundsmith.pipelines.wavenet:WaveNetPipeline",
    kind="generator",
    description="autoregressive WaveNet over 8-bit mu-law samples (caption / category / mel conditioning)",
    contract_forward=_forward,
    contract_shape=lambda cfg, B, T: (B, cfg.quantization_channels, T),
    contract_overrides={
        "labels": ["bell", "rain"],
        "gc_cardinality": 2,
    },
    contract_reference_loss=_reference_loss,
    contract_conditioning=(
        # mel frame k drives input samples [k*hop, (k+1)*hop); causal, so everything after may change too
        ConditioningProbe(
            "mel",
            vary=_bump_mel_frame_2,
            expect=lambda c, T: (2 * c.hop_length, None),
            overrides={"lc_channels": 4, "lc_upsample": "transposed"},
        ),
        ConditioningProbe(
            "gc_ids", vary=lambda b: {**b, "gc_ids": (b["gc_ids"] + 1) % 2}, expect=lambda c, T: (0, None)
        ),
    ),
)
