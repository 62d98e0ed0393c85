#!/usr/bin/env bash
# Train the shipped autoencoders (docs/autoencoders.md): corpus, vocoder, VAE, then export into models/.
# Every step is resumable: rerun the script after an interruption and it continues where it stopped.
# Usage: bash scripts/train_autoencoders.sh [vocoder|vae|export|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
CORPUS=work/corpus_ae
STAGE=${1:-all}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # 1: on a shared 2-core machine 2 threads ran 10x slower

if [ ! -f "$CORPUS/manifest.jsonl" ]; then  # 5 h, all four families, 16 kHz (~35 s)
  .venv/bin/soundsmith data synth --out "$CORPUS" --hours 5 --seed 0 --workers 1 --sample-rate 16000
fi
resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }

if [ "$STAGE" = vocoder ] || [ "$STAGE" = all ]; then
  nice -n 2 .venv/bin/soundsmith train --config configs/vocoder/base.yaml --data "$CORPUS/manifest.jsonl" \
    --out runs/vocoder $(resume runs/vocoder) ${VOCODER_STEPS:+--max-steps "$VOCODER_STEPS"}
fi
if [ "$STAGE" = vae ] || [ "$STAGE" = all ]; then
  nice -n 2 .venv/bin/soundsmith train --config configs/vae/base.yaml --data "$CORPUS/manifest.jsonl" \
    --out runs/vae $(resume runs/vae) ${VAE_STEPS:+--max-steps "$VAE_STEPS"}
fi
if [ "$STAGE" = export ] || [ "$STAGE" = all ]; then
  $PY scripts/export_autoencoders.py --vocoder runs/vocoder --vae runs/vae --data "$CORPUS/manifest.jsonl"
fi
