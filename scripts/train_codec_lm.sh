#!/usr/bin/env bash
# The codec + token LM runs of docs/codec_lm.md ("First real runs on the CPU"), on a 2-core CPU, on the latent
# diffusion default's corpus (work/corpus_ld). Wall times there (stop 27: the codec ~40 min, the LMs ~1 h).
# Every step resumes: re-run the script.
#   CODEC_STEPS  codec steps (codec-only: its GAN phase starts at 20,000)
#   LM_STEPS     steps of the delay-pattern LM (configs/token_lm/cpu.yaml); 0 = stop after the codec
#   CMP_STEPS    steps of each pattern in the equal-steps comparison (parallel, flat)
set -euo pipefail
cd "$(dirname "$0")/.."
CODEC_STEPS=${CODEC_STEPS:-5000}
LM_STEPS=${LM_STEPS:-1800}
CMP_STEPS=${CMP_STEPS:-300}
bash scripts/setup.sh
. .venv/bin/activate
export TQDM_DISABLE=1
[ -f work/corpus_ld/manifest.jsonl ] ||
  soundsmith data synth --out work/corpus_ld --hours 20 --duration 4 --workers 2 --seed 11
# the LM's manifest: the train split and the first 256 valid clips (a validation pass of minutes otherwise)
python - <<'PY'
import json
rows, valid = [], 0
for line in open("work/corpus_ld/manifest.jsonl"):
    row = json.loads(line)
    if row["split"] == "train" or (row["split"] == "valid" and valid < 256):
        valid += row["split"] == "valid"
        rows.append(line)
open("work/corpus_ld/manifest_lm.jsonl", "w").write("".join(rows))
PY
resume() { [ -d "$1/checkpoints" ] && echo --resume || true; }
# 1. the codec (2 threads), frozen into work/codec_model for the LMs
OMP_NUM_THREADS=2 soundsmith train --config configs/codec/base.yaml --data work/corpus_ld/manifest.jsonl \
  --out runs/codec_mel --max-steps "$CODEC_STEPS" --set train.checkpoint_every=200 --set train.valid_every=400 \
  $(resume runs/codec_mel)
[ "$LM_STEPS" = 0 ] && exit 0
# (kept once made, so that resumed LMs keep their codec: remove work/codec_model after changing CODEC_STEPS)
[ -d work/codec_model ] || cp -r runs/codec_mel/model work/codec_model
# 2. the LMs, one thread each: the delay pattern on one core; on the other, parallel then flat, to the same
#    number of steps (the equal-steps comparison of the patterns)
lm() {  # OUT STEPS [--set ...]
  local out=$1 steps=$2
  shift 2
  OMP_NUM_THREADS=1 soundsmith train --config configs/token_lm/cpu.yaml --data work/corpus_ld/manifest_lm.jsonl \
    --out "$out" --max-steps "$steps" --set model.codec=work/codec_model --set train.valid_every=300 "$@" \
    $(resume "$out")
}
lm runs/token_lm "$LM_STEPS" &
delay=$!
trap 'kill "$delay" 2>/dev/null || true' EXIT
lm runs/token_lm_parallel "$CMP_STEPS" --set model.pattern=parallel --set train.valid_every=150
lm runs/token_lm_flat "$CMP_STEPS" --set train.valid_every=150 --set model.pattern=flat --set model.context=1024 --set model.net.max_distance=1024
wait "$delay"
trap - EXIT
