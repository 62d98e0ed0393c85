#!/usr/bin/env bash
# Main job: install (if needed), synthesize a small captioned corpus, train a small caption-conditioned
# WaveNet for about a minute on CPU, generate a WAV for the prompt, and print where it is.
# Usage: bash scripts/demo.sh ["prompt"]   (work files go under ./work/demo)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PROMPT=${1:-"three beeps"}
WORK=work/demo
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
. .venv/bin/activate
if [ ! -f "$WORK/corpus/manifest.jsonl" ]; then
  soundsmith data synth --out "$WORK/corpus" --clips 120 --seed 0 --families events --workers 2
fi
rm -rf "$WORK/run"
soundsmith train --config configs/wavenet/tiny.yaml --data "$WORK/corpus/manifest.jsonl" --out "$WORK/run" \
  --set model.text_encoder=hashed --set model.text_dim=128 \
  --set train.max_steps=150 --set train.sample_every=0 --set train.checkpoint_every=50
soundsmith generate "$PROMPT" --model "$WORK/run" --out "$WORK/demo.wav" --duration 1.0 --seed 0
echo "wrote $(pwd)/$WORK/demo.wav for the prompt: $PROMPT"
