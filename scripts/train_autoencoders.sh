#!/usr/bin/env bash
# Train the shipped autoencoders (docs/autoencoders.md): corpus, vocoder, VAE, then export into models/.
# Every step is resumable: rerun the script after an interruption and it continues where it stopped.
# Usage: bash scripts/train_autoencoders.sh [vocoder|vocoder_acc|vae|export|all]   (default: all)
# vocoder_acc: the vocoder with the accumulated-phase head, started from runs/vocoder (docs/autoencoders.md,
# "The frame-rate buzz"); export takes runs/vocoder_acc when it has checkpoints.
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
if [ "$STAGE" = vocoder_acc ] || [ "$STAGE" = all ]; then  # the accumulated-phase head (models/vocoder since stop 41)
  [ -f work/vocoder_acc_init/config.json ] || $PY scripts/vocoder_head_phase.py --from runs/vocoder/model --out work/vocoder_acc_init
  nice -n 2 .venv/bin/soundsmith train --config configs/vocoder/accumulated.yaml --data "$CORPUS/manifest.jsonl" \
    --out runs/vocoder_acc $(resume runs/vocoder_acc) ${VOCODER_ACC_STEPS:+--max-steps "$VOCODER_ACC_STEPS"}
fi
if [ "$STAGE" = vae ] || [ "$STAGE" = all ]; then
  nice -n 2 .venv/bin/soundsmith train --config configs/vae/base.yaml --data "$CORPUS/manifest.jsonl" \
    --out runs/vae $(resume runs/vae) ${VAE_STEPS:+--max-steps "$VAE_STEPS"}
fi
if [ "$STAGE" = export ] || [ "$STAGE" = all ]; then
  VOCODER_RUN=runs/vocoder; [ -d runs/vocoder_acc/checkpoints ] && VOCODER_RUN=runs/vocoder_acc
  $PY scripts/export_autoencoders.py --vocoder "$VOCODER_RUN" --vae runs/vae --data "$CORPUS/manifest.jsonl"
fi
