"""A vocoder with the accumulated-phase head (``head_phase: accumulated``), started from a trained absolute-phase
one: the backbone and the log-magnitude rows of the head are copied, the phase rows become the phase offsets,
and the advance rows start at zero (each bin advancing at its centre frequency). Then fine-tune it with
``configs/vocoder/accumulated.yaml`` (docs/autoencoders.md, "The frame-rate buzz").

    python scripts/vocoder_head_phase.py --from vocoder --out work/vocoder_acc_init
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from soundsmith.models.registry import load_model, save_model
from soundsmith.models.vocoder import Vocoder


def accumulated_copy(source: Vocoder) -> Vocoder:
    """``source`` (an absolute-phase Vocos vocoder) as an accumulated-phase one (see the module)."""
    c = source.config
    if c.generator != "vocos" or c.head_phase != "absolute":
        raise SystemExit(f"--from: a Vocos vocoder with the absolute-phase head is needed, got {c.generator} / {c.head_phase}")
    model = Vocoder(dataclasses.replace(c, head_phase="accumulated"))
    model.backbone.load_state_dict(source.backbone.state_dict())
    bins = c.istft_n_fft // 2 + 1
    with torch.no_grad():
        model.head.proj.weight.zero_()
        model.head.proj.bias.zero_()
        model.head.proj.weight[: 2 * bins] = source.head.proj.weight
        model.head.proj.bias[: 2 * bins] = source.head.proj.bias
    return model


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="source", default="vocoder", help="a shipped name or model directory")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    model = accumulated_copy(load_model(args.source).float())
    save_model(model, args.out)
    print(f"wrote {args.out}: {args.source} with the accumulated-phase head")


if __name__ == "__main__":
    main()
