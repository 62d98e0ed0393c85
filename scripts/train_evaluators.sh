#!/usr/bin/env bash
# Reproduce the shipped evaluators (models/tagger, models/clap) on the built-in corpus, on a 2-core CPU.
# Figures they reach: docs/evaluation.md. Took 51 minutes on the (loaded) 2-core machine: tagger 1,974 s, CLAP 1,058 s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
CORPUS=work/corpus4k
[ -f $CORPUS/manifest.jsonl ] || soundsmith data synth --out $CORPUS --clips 4000 --seed 0 --workers 2
common=(--set train.valid_every=200 --set train.checkpoint_every=200 --set train.log_every=50
        --set train.warmup_steps=50 --set data.num_workers=1)
rm -rf work/runs/tagger work/runs/clap
soundsmith train --config configs/tagger/base.yaml --data $CORPUS/manifest.jsonl --out work/runs/tagger \
  --max-steps 700 --set train.lr=2e-3 "${common[@]}"
soundsmith train --config configs/clap/base.yaml --data $CORPUS/manifest.jsonl --out work/runs/clap \
  --max-steps 400 --set train.batch_size=48 --set train.lr=1e-3 "${common[@]}"
rm -rf models/tagger models/clap
mkdir -p models
cp -r work/runs/tagger/model models/tagger
cp -r work/runs/clap/model models/clap
echo "shipped models/tagger and models/clap"
