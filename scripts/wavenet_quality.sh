#!/usr/bin/env bash
# WaveNet quality runs (docs/wavenet.md, "Quality"): two small WaveNets trained on CPU, their clips generated and
# scored with `soundsmith evaluate` against held-out real clips.
#   digits:   spoken digits zero..nine (built-in speech corpus, filtered), the digit word as global condition (gc)
#   captions: built-in events corpus, the caption (hashed text encoder) as global condition
# Stages: (a) corpora, (b)+(c) training (both at once, one core each, when PARALLEL=1), (d) generation with a
# prompts JSONL per model, (e) evaluation against each test split, plus real valid clips vs the same test split
# (the ceiling the evaluator allows) and the caption model on valid-split prompts of all 22 event classes,
# (f) summary table (also written to $WORK/summary.md).
#
# Usage: bash scripts/wavenet_quality.sh            (~20 min on 2 free cores at the defaults)
#        SMOKE=1 bash scripts/wavenet_quality.sh    (every stage at toy size, ~1-2 min)
# Sizes (env vars): STEPS (training steps per model), DIGIT_CLIPS / EVENT_CLIPS (clips synthesized; about half
# of the speech clips are digits), CLIPS_PER_CLASS (clips per digit), CLIPS_PER_PROMPT (clips per test caption),
# CLIPS_PER_VALID_PROMPT (clips per valid caption),
# DIGIT_SECONDS / EVENT_SECONDS (clip length, corpus and generation alike), PARALLEL, SEED, WORK.
# REUSE=1 keeps finished runs and generated clips in $WORK and redoes only evaluation + summary (e.g. after the
# shipped evaluators change). Corpora are always reused when present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate

SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  WORK=${WORK:-work/wavenet_quality_smoke}
  STEPS=${STEPS:-4}
  DIGIT_CLIPS=${DIGIT_CLIPS:-160}
  EVENT_CLIPS=${EVENT_CLIPS:-120}
  CLIPS_PER_CLASS=${CLIPS_PER_CLASS:-1}
  CLIPS_PER_PROMPT=${CLIPS_PER_PROMPT:-1}
  CLIPS_PER_VALID_PROMPT=${CLIPS_PER_VALID_PROMPT:-1}
  DIGIT_SECONDS=${DIGIT_SECONDS:-0.5}
  EVENT_SECONDS=${EVENT_SECONDS:-0.5}
  GEN_SECONDS_DIGITS=${GEN_SECONDS_DIGITS:-0.1}
  GEN_SECONDS_EVENTS=${GEN_SECONDS_EVENTS:-0.1}
  smoke_sets=(--set train.valid_every=2 --set train.checkpoint_every=2 --set train.log_every=1
              --set train.warmup_steps=1 --set train.batch_size=4)
else
  WORK=${WORK:-work/wavenet_quality}
  STEPS=${STEPS:-600}
  DIGIT_CLIPS=${DIGIT_CLIPS:-1600}
  EVENT_CLIPS=${EVENT_CLIPS:-1500}
  CLIPS_PER_CLASS=${CLIPS_PER_CLASS:-8}
  CLIPS_PER_PROMPT=${CLIPS_PER_PROMPT:-4}
  CLIPS_PER_VALID_PROMPT=${CLIPS_PER_VALID_PROMPT:-2}
  DIGIT_SECONDS=${DIGIT_SECONDS:-1.0}
  EVENT_SECONDS=${EVENT_SECONDS:-2.0}
  GEN_SECONDS_DIGITS=${GEN_SECONDS_DIGITS:-$DIGIT_SECONDS}
  GEN_SECONDS_EVENTS=${GEN_SECONDS_EVENTS:-$EVENT_SECONDS}
  smoke_sets=()
fi
PARALLEL=${PARALLEL:-1}
REUSE=${REUSE:-0}
SEED=${SEED:-0}
export HF_HUB_OFFLINE=1
mkdir -p "$WORK/logs"
echo "wavenet_quality: WORK=$WORK STEPS=$STEPS DIGIT_CLIPS=$DIGIT_CLIPS EVENT_CLIPS=$EVENT_CLIPS" \
  "CLIPS_PER_CLASS=$CLIPS_PER_CLASS CLIPS_PER_PROMPT=$CLIPS_PER_PROMPT PARALLEL=$PARALLEL SEED=$SEED"

# ---------------------------------------------------------------- (a) corpora
# Filter a synthesized manifest to some labels (keeping split fields) and write its valid and test splits apart.
filter_manifest() {  # SRC OUT_DIR KIND(digits|events)
  python - "$@" <<'EOF'
import sys
from pathlib import Path

from soundsmith.data import read_manifest, write_manifest
from soundsmith.errors import ManifestError

src, out_dir, kind = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
wanted = {f"speech_{w}" for w in DIGITS}
m = read_manifest(src)
if kind == "digits":
    rows = [r for r in m.rows if r.labels and set(r.labels) <= wanted]
else:
    rows = [r for r in m.rows if r.meta.get("family") == kind and r.labels]
if not rows:
    raise ManifestError(f"{src}: no {kind} rows; synthesize more clips (DIGIT_CLIPS / EVENT_CLIPS)")
write_manifest(out_dir / "manifest.jsonl", rows, root=m.root)
for split in ("valid", "test"):
    part = [r for r in rows if r.split == split]
    if len(part) < 2:
        raise ManifestError(f"{src}: only {len(part)} {kind} rows in split {split!r}; synthesize more clips")
    write_manifest(out_dir / f"{split}.jsonl", part, root=m.root)
counts = {s: sum(r.split == s for r in rows) for s in ("train", "valid", "test")}
print(f"{out_dir}/manifest.jsonl: {len(rows)} {kind} clips {counts}")
EOF
}

if [ ! -f "$WORK/digits/test.jsonl" ]; then
  soundsmith data synth --out "$WORK/speech" --clips "$DIGIT_CLIPS" --seed "$SEED" --families speech \
    --duration "$DIGIT_SECONDS" --workers 2 2> "$WORK/logs/synth_speech.log"
  filter_manifest "$WORK/speech/manifest.jsonl" "$WORK/digits" digits
fi
if [ ! -f "$WORK/events/test.jsonl" ]; then
  soundsmith data synth --out "$WORK/events_audio" --clips "$EVENT_CLIPS" --seed "$((SEED + 1))" \
    --families events --duration "$EVENT_SECONDS" --workers 2 2> "$WORK/logs/synth_events.log"
  filter_manifest "$WORK/events_audio/manifest.jsonl" "$WORK/events" events
fi

# ---------------------------------------------------------------- (b) + (c) training
train() {  # NAME CONFIG MANIFEST THREADS
  local name=$1 config=$2 data=$3 threads=$4 t0
  if [ "$REUSE" = 1 ] && [ -f "$WORK/runs/$name/model/config.json" ]; then
    echo "reusing $WORK/runs/$name (REUSE=1)"
    return 0
  fi
  rm -rf "$WORK/runs/$name"
  t0=$(date +%s)
  OMP_NUM_THREADS=$threads soundsmith train --config "$config" --data "$data" --out "$WORK/runs/$name" \
    --max-steps "$STEPS" --set train.seed="$SEED" "${smoke_sets[@]}" > "$WORK/logs/train_$name.log" 2>&1
  echo $(($(date +%s) - t0)) > "$WORK/logs/train_$name.seconds"
  echo "trained $name in $(cat "$WORK/logs/train_$name.seconds") s: $(grep '^finished' "$WORK/logs/train_$name.log")"
}
echo "training (logs: $WORK/logs/train_*.log)"
if [ "$PARALLEL" = 1 ]; then
  train digits configs/wavenet/digits.yaml "$WORK/digits/manifest.jsonl" 1 &
  pid_digits=$!
  train captions configs/wavenet/captions.yaml "$WORK/events/manifest.jsonl" 1 &
  pid_captions=$!
  status=0
  wait $pid_digits || status=$?
  wait $pid_captions || status=$?
  if [ $status != 0 ]; then
    echo "training failed; see $WORK/logs/train_digits.log and $WORK/logs/train_captions.log" >&2
    exit $status
  fi
else
  train digits configs/wavenet/digits.yaml "$WORK/digits/manifest.jsonl" 2
  train captions configs/wavenet/captions.yaml "$WORK/events/manifest.jsonl" 2
fi

# ---------------------------------------------------------------- (d) generation
# digits: K clips per digit (gc_id = the label name); captions: K clips for one test-split caption per class.
# The corpus' test split is compositional (docs/corpus.md): events test clips are only 4 classes in registers never
# seen in training, speech test clips use a voice never heard saying that word. So the caption model is also
# prompted with one valid-split caption for each of the 22 event classes (scored against the valid split).
generate() {  # KIND RUN TEST_MANIFEST OUT_DIR K SECONDS
  python - "$@" "$REUSE" <<'EOF'
import json
import shutil
import sys
import time
from pathlib import Path

import soundsmith
from soundsmith.data import read_manifest

kind, run, test, out_dir, k, seconds, reuse = sys.argv[1:8]
k, seconds, out_dir = int(k), float(seconds), Path(out_dir)
if reuse == "1" and (out_dir / "prompts.jsonl").is_file():
    print(f"reusing {out_dir} (REUSE=1)")
    sys.exit(0)
shutil.rmtree(out_dir, ignore_errors=True)
out_dir.mkdir(parents=True)
pipe = soundsmith.load(run)
requests = []  # (name, prompt given to the model, prompt recorded, gc_id, labels, source annotations)
if kind == "digits":
    for label in pipe.model.config.labels:
        word = label.removeprefix("speech_")
        requests.append((label, "", f'someone says the word "{word}"', label, [label], None))
else:
    first: dict[str, object] = {}
    for row in read_manifest(test).rows:  # the first single-label test clip of each class, manifest order
        if len(row.labels) == 1 and row.captions and row.labels[0] not in first:
            first[row.labels[0]] = row
    for label in sorted(first):
        row = first[label]
        caption = row.captions[0]
        # the caption describes the source clip's events: the evaluation checks every attribute they annotate
        events = row.meta.get("events")
        meta = {"events": events, "family": row.meta.get("family")} if events else None
        requests.append((label, caption, caption, None, [label], meta))
rows, t0, n_samples = [], time.perf_counter(), 0
for i, (name, model_prompt, prompt, gc_id, labels, meta) in enumerate(requests):
    result = pipe(
        model_prompt, duration=seconds, seed=1000 * i, num_candidates=k, gc_id=gc_id, progress=False
    )
    n_samples += result.audio.size
    paths = [out_dir / f"{name}-{j}.wav" for j in range(k)]
    for j, path in enumerate(paths):
        result.save(path, index=j)
        rows.append({"audio": path.name, "prompt": prompt, "labels": labels, "id": f"gen-{kind}-{path.stem}"}
                    | ({"meta": meta} if meta else {}))
wall = time.perf_counter() - t0
with open(out_dir / "prompts.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
info = {"clips": len(rows), "seconds_each": seconds, "wall_s": wall, "samples_per_s": n_samples / wall}
(out_dir.parent / f"{out_dir.name}.json").write_text(json.dumps(info) + "\n")
print(f"generated {len(rows)} {kind} clips of {seconds} s in {wall:.0f} s ({n_samples / wall:.0f} samples/s)")
EOF
}
echo "generating"
if [ "$PARALLEL" = 1 ]; then
  OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 generate digits "$WORK/runs/digits" "$WORK/digits/test.jsonl" \
    "$WORK/gen/digits" "$CLIPS_PER_CLASS" "$GEN_SECONDS_DIGITS" > "$WORK/logs/gen_digits.log" 2>&1 &
  pid_digits=$!
  OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 generate captions "$WORK/runs/captions" "$WORK/events/test.jsonl" \
    "$WORK/gen/captions" "$CLIPS_PER_PROMPT" "$GEN_SECONDS_EVENTS" > "$WORK/logs/gen_captions.log" 2>&1 &
  pid_captions=$!
  OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 generate captions "$WORK/runs/captions" "$WORK/events/valid.jsonl" \
    "$WORK/gen/captions_valid" "$CLIPS_PER_VALID_PROMPT" "$GEN_SECONDS_EVENTS" > "$WORK/logs/gen_captions_valid.log" 2>&1 &
  pid_valid=$!
  status=0
  wait $pid_digits || status=$?
  wait $pid_captions || status=$?
  wait $pid_valid || status=$?
  tail -n 1 "$WORK/logs/gen_digits.log" "$WORK/logs/gen_captions.log" "$WORK/logs/gen_captions_valid.log"
  [ $status = 0 ] || { echo "generation failed; see $WORK/logs/gen_*.log" >&2; exit $status; }
else
  generate digits "$WORK/runs/digits" "$WORK/digits/test.jsonl" "$WORK/gen/digits" "$CLIPS_PER_CLASS" \
    "$GEN_SECONDS_DIGITS"
  generate captions "$WORK/runs/captions" "$WORK/events/test.jsonl" "$WORK/gen/captions" "$CLIPS_PER_PROMPT" \
    "$GEN_SECONDS_EVENTS"
  generate captions "$WORK/runs/captions" "$WORK/events/valid.jsonl" "$WORK/gen/captions_valid" \
    "$CLIPS_PER_VALID_PROMPT" "$GEN_SECONDS_EVENTS"
fi

# ---------------------------------------------------------------- (e) evaluation
# Generated clips vs the test split; real valid clips vs the same test split give the evaluator's ceiling.
evaluate() {  # NAME GENERATED REFERENCE [PROMPTS]
  local name=$1 generated=$2 reference=$3
  local prompts=()
  [ $# -ge 4 ] && prompts=(--prompts "$4")
  rm -rf "$WORK/eval/$name"
  soundsmith evaluate --generated "$generated" --reference "$reference" "${prompts[@]}" \
    --out "$WORK/eval/$name" > "$WORK/logs/eval_$name.log" 2>&1 \
    || { echo "evaluation $name failed; see $WORK/logs/eval_$name.log" >&2; exit 1; }
}
echo "evaluating (reports: $WORK/eval/*/report.html)"
evaluate digits "$WORK/gen/digits" "$WORK/digits/test.jsonl" "$WORK/gen/digits/prompts.jsonl"
evaluate digits_real "$WORK/digits/valid.jsonl" "$WORK/digits/test.jsonl"
evaluate captions "$WORK/gen/captions" "$WORK/events/test.jsonl" "$WORK/gen/captions/prompts.jsonl"
evaluate captions_real "$WORK/events/valid.jsonl" "$WORK/events/test.jsonl"
evaluate captions_valid "$WORK/gen/captions_valid" "$WORK/events/valid.jsonl" \
  "$WORK/gen/captions_valid/prompts.jsonl"

# ---------------------------------------------------------------- (f) summary
python - "$WORK" "$STEPS" <<'EOF' | tee "$WORK/summary.md"
import json
import math
import sys
from pathlib import Path

work, steps = Path(sys.argv[1]), sys.argv[2]


def history(run: Path, key: str) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["step"], r[key]) for r in rows if key in r]


def fmt(x: object) -> str:
    return "-" if not isinstance(x, (int, float)) or math.isnan(x) else f"{x:.3g}"


print(f"WaveNet quality runs in {work} ({steps} training steps each)\n")
print("| model | train s | train loss (last window) | valid loss | gen samples/s | valid loss by step |")
print("|---|---|---|---|---|---|")
for name in ("digits", "captions"):
    run = work / "runs" / name
    secs = (work / "logs" / f"train_{name}.seconds").read_text().strip()
    gen = json.loads((work / "gen" / f"{name}.json").read_text())
    train, valid = history(run, "train/loss"), history(run, "valid/loss")
    curve = ", ".join(f"{s}: {v:.3f}" for s, v in valid)
    last_train = train[-1][1] if train else math.nan
    last_valid = valid[-1][1] if valid else math.nan
    cells = [name, secs, fmt(last_train), fmt(last_valid), f"{gen['samples_per_s']:.0f}", curve]
    print("| " + " | ".join(cells) + " |")
keys = [
    ("adherence_topk", "adherence top-1"),
    ("fad", "FAD"),
    ("fad_baseline", "FAD real-vs-real"),
    ("kl_softmax", "KL (softmax)"),
    ("kl_softmax_baseline", "KL real-vs-real"),
    ("inception_score", "IS"),
    ("inception_score_baseline", "IS of the reference"),
    ("silence_rate", "silence rate"),
    ("clap_score", "CLAP score"),
]
names = ["digits", "digits_real", "captions", "captions_real", "captions_valid"]
evals = {}
for n in names:
    f = work / "eval" / n / "metrics.json"
    evals[n] = json.loads(f.read_text()) if f.is_file() else {}
print("\n| metric | " + " | ".join(names) + " |")
print("|---" * (len(names) + 1) + "|")
for key, label in keys:
    print(f"| {label} | " + " | ".join(fmt(evals[n].get("summary", {}).get(key)) for n in names) + " |")
counts = [evals[n].get("info", {}) for n in names]
print(
    "| clips (evaluated / reference) | "
    + " | ".join(f"{c.get('n_generated')} / {c.get('n_reference')}" for c in counts)
    + " |"
)
tops = [[c["top_labels"][0][0] for c in evals[n].get("per_clip", []) if c.get("top_labels")] for n in names]
print(
    "| top-1 tag is a speech word | "
    + " | ".join(fmt(sum(t.startswith("speech_") for t in top) / max(1, len(top))) for top in tops)
    + " |"
)
print("| distinct top-1 tags | " + " | ".join(str(len(set(top))) for top in tops) + " |")
print("| evaluator | " + " | ".join(str(c.get("tagger", "-")) for c in counts) + " |")

# per-attribute adherence (soundsmith.eval.adherence): generated clips against their prompts' asks
def cell(row, kind):
    value, n = row.get(kind), row.get(f"n_{kind}", 0)
    if value is None or n == 0 or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f} ({n})"


for name in ("digits", "captions", "captions_valid"):
    f = work / "eval" / name / "metrics.json"
    adherence = json.loads(f.read_text()).get("adherence") if f.is_file() else None
    if not adherence:
        print(f"\n{name}: no prompt asks for an attribute")
        continue
    print(f"\nPer-attribute adherence, {name} (accuracy (clips); real and shuffled: annotated reference clips)\n")
    print("| attribute | generated | real | shuffled | chance |")
    print("|---|---|---|---|---|")
    for attr, row in adherence["table"].items():
        chance = row.get("chance")
        print(f"| {attr} | {cell(row, 'generated')} | {cell(row, 'real')} | {cell(row, 'shuffled')} | "
              f"{'-' if chance is None else f'{chance:.3f}'} |")
    overall = adherence["overall"]
    print("| overall | " + " | ".join(
        "-" if not isinstance(overall.get(k), (int, float)) else f"{overall[k]:.3f}"
        for k in ("generated", "real", "shuffled")) + " | |")
EOF
