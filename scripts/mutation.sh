#!/usr/bin/env bash
# Mutation testing of soundsmith modules with mutmut 3 (not in CI: minutes to hours per module).
#
#   scripts/mutation.sh MODULE...        e.g. scripts/mutation.sh audio/dsp eval/frechet
#
# MODULE is a path under src/soundsmith without .py (audio/dsp) or a package folder (train).
# For each module, in turn: copy src/, tests/, configs/ and pyproject.toml to a scratch folder
# (the working tree, its .git and pyproject.toml are never touched), write a setup.cfg [mutmut] section there,
# run `mutmut run` with only the tests that cover the module, then print the score and the surviving mutants.
#
# Which tests: $TESTS if set (space-separated paths), else the table CORE_TESTS below, else the test files under
# tests/ that name the module (`soundsmith.audio.dsp`, `soundsmith/audio/dsp`) plus its mirror file
# tests/<package>/test_<package>_<name>*.py and tests/<package>/test_<name>*.py.
#
# Environment: MUTATION_TIMEOUT seconds per module (default 900; a module cut short reports what it reached),
# MUTATION_JOBS parallel mutants (default 1), MUTATION_DIR scratch root (default /tmp/soundsmith-mutation),
# MUTATION_NICE (default 15). Results stay in $MUTATION_DIR/<module>/ (`mutmut show NAME` there shows a diff).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
MUTMUT="$(dirname "$PY")/mutmut"
SCRATCH="${MUTATION_DIR:-/tmp/soundsmith-mutation}"
LIMIT="${MUTATION_TIMEOUT:-900}"
JOBS="${MUTATION_JOBS:-1}"
NICE="${MUTATION_NICE:-15}"

if [[ $# -eq 0 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
[[ -x "$MUTMUT" ]] || { echo "mutmut not found at $MUTMUT: install the dev extras (pip install -e .[dev])" >&2; exit 2; }

# The tests that cover the core modules (checked by hand); other modules fall back to the search below.
declare -A CORE_TESTS=(
    [audio/dsp]="tests/audio/test_audio_dsp.py tests/audio/test_audio_dsp_mutants.py tests/test_properties.py"
    [eval/base]="tests/eval/test_eval_metrics.py tests/eval/test_eval_sync_uneven.py"
    [eval/frechet]="tests/eval/test_eval_frechet.py tests/eval/test_eval_frechet_exact.py tests/eval/test_eval_metrics.py tests/eval/test_eval_sync_uneven.py"
    [eval/metrics]="tests/eval/test_eval_metrics.py tests/eval/test_eval_metrics_exact.py tests/eval/test_eval_sync_uneven.py"
    [data/dataset]="tests/data/test_data_dataset.py tests/data/test_data_crops_seed.py"
    [data/manifest]="tests/data/test_data_manifest.py tests/test_properties.py"
    [sampling/wavenet_fast]="tests/sampling/test_sampling_wavenet.py tests/sampling/test_wavenet_fast_numeric.py"
    [models/wavenet]="tests/models/test_wavenet.py tests/models/test_wavenet_mutants.py tests/models/test_wavenet_loss.py tests/models/test_wavenet_errors.py tests/sampling/test_sampling_wavenet.py"
    [train/objectives/wavenet]="tests/models/test_wavenet.py tests/models/test_wavenet_loss.py"
    [train/ema]="tests/train/test_train_units.py tests/train/test_train_ema_export.py"
    [train]="tests/train/test_train_units.py tests/train/test_train_engine.py tests/train/test_train_ema_export.py"
    [models/latent_diffusion]="tests/models/test_latent_diffusion.py tests/models/test_latent_diffusion_reference.py tests/train/test_objective_latent_diffusion.py tests/pipelines/test_latent_diffusion_pipeline.py tests/contract/test_contract_growth.py"
    [train/objectives/latent_diffusion]="tests/train/test_objective_latent_diffusion.py tests/pipelines/test_latent_diffusion_pipeline.py tests/contract/test_contract_growth.py"
    [sampling/diffusion]="tests/sampling/test_sampling_diffusion.py tests/pipelines/test_latent_diffusion_pipeline.py"
    [models/vae]="tests/models/test_vae.py tests/models/test_autoencoders_shipped.py tests/models/test_latent_diffusion.py tests/contract/test_contract_growth.py"
    [train/objectives/vae]="tests/models/test_vae.py tests/contract/test_contract_growth.py"
    [models/vocoder]="tests/models/test_vocoder.py tests/models/test_autoencoders_shipped.py tests/contract/test_contract_growth.py"
    [train/objectives/vocoder]="tests/models/test_vocoder.py tests/contract/test_contract_growth.py"
    [nn/rvq]="tests/models/test_codec.py tests/contract/test_contract_growth.py tests/contract/test_reference_mutations.py"
    [models/codec]="tests/models/test_codec.py tests/models/test_codec_reference.py tests/cli/test_codec_cli.py tests/contract/test_contract_growth.py tests/contract/test_reference_mutations.py"
    [models/ganmix]="tests/models/test_ganmix.py tests/models/test_ganmix_reference.py tests/train/test_objective_ganmix.py tests/contract/test_contract_growth.py tests/contract/test_reference_mutations.py"
    [train/objectives/ganmix]="tests/train/test_objective_ganmix.py tests/models/test_ganmix.py tests/models/test_ganmix_reference.py tests/contract/test_contract_growth.py tests/contract/test_reference_mutations.py"
    [models/token_lm]="tests/models/test_token_lm.py tests/models/test_token_lm_reference.py tests/pipelines/test_token_lm_pipeline.py tests/contract/test_contract_growth.py tests/contract/test_reference_mutations.py"
    [nn/relative_attention]="tests/nn/test_relative_attention.py tests/models/test_token_lm.py"
    [pipelines/compose]="tests/pipelines/test_compose.py"
    [text/bert]="tests/text/test_text_hf.py"
    [train/engine]="tests/train/test_train_engine.py tests/train/test_train_engine_guards.py tests/train/test_train_engine_bookkeeping.py tests/train/test_train_engine_step.py tests/train/test_train_units.py tests/train/test_train_ema_export.py tests/train/test_train_optimizers.py tests/train/test_train_run.py"
)

tests_for() {  # tests covering module $1 (audio/dsp): the table above, else files naming it + mirror file(s)
    local mod="$1" dotted pkg name f
    if [[ -n "${CORE_TESTS[$mod]:-}" ]]; then
        for f in ${CORE_TESTS[$mod]}; do [[ -f "$ROOT/$f" ]] && echo "$f"; done
        return
    fi
    dotted="soundsmith.${mod//\//.}"
    pkg="${mod%%/*}"
    name="${mod##*/}"
    {
        grep -rlE --include='test_*.py' "${dotted}([^a-zA-Z_]|$)|soundsmith/${mod}([^a-zA-Z_]|$)" "$ROOT/tests" || true
        if [[ "$pkg" != "$name" ]]; then
            ls "$ROOT"/tests/"$pkg"/test_"${pkg}"_"${name}"*.py "$ROOT"/tests/"$pkg"/test_"${name}"*.py 2>/dev/null || true
        else
            ls "$ROOT"/tests/"$pkg"/test_*.py 2>/dev/null || true
        fi
    } | sed "s|^$ROOT/||" | grep -v '^tests/contract/' | sort -u
}

for mod in "$@"; do
    mod="${mod#src/}"; mod="${mod#soundsmith/}"; mod="${mod%.py}"; mod="${mod%/}"
    if [[ -f "$ROOT/src/soundsmith/$mod.py" ]]; then
        target="src/soundsmith/$mod.py"
    elif [[ -d "$ROOT/src/soundsmith/$mod" ]]; then
        target="src/soundsmith/$mod/*"
    else
        echo "no module src/soundsmith/$mod(.py); give a path under src/soundsmith, e.g. audio/dsp" >&2
        exit 2
    fi
    if [[ -n "${TESTS:-}" ]]; then
        read -r -a tests <<<"$TESTS"
    else
        mapfile -t tests < <(tests_for "$mod")
    fi
    if [[ ${#tests[@]} -eq 0 ]]; then
        echo "no tests found for $mod; set TESTS='tests/...py ...'" >&2
        exit 2
    fi

    work="$SCRATCH/${mod//\//_}"
    rm -rf "$work"
    mkdir -p "$work"
    cp -r "$ROOT/src" "$ROOT/tests" "$ROOT/pyproject.toml" "$work/"
    for extra in configs models; do [[ -d "$ROOT/$extra" ]] && cp -r "$ROOT/$extra" "$work/"; done
    find "$work" -name __pycache__ -prune -exec rm -rf {} +
    find "$work/src" -type l -delete  # src/soundsmith/shipped -> ../../models: mutmut copies files, not links
    # mutmut reads [tool.mutmut] from pyproject.toml first; the copy's pyproject has none, so setup.cfg is used
    {
        echo "[mutmut]"
        echo "source_paths=src"
        echo "only_mutate=$target"
        printf 'also_copy=\n    configs\n    models\n'
        echo "pytest_add_cli_args_test_selection="
        printf '    %s\n' "${tests[@]}"
        echo "pytest_add_cli_args=-p no:cacheprovider -q -x"
        echo "process_isolation=forkserver"
        echo "use_git_change_detection=false"
        echo "timeout_multiplier=5"
    } >"$work/setup.cfg"

    echo "== $mod: mutating $target, ${#tests[@]} test file(s): ${tests[*]}"
    start=$(date +%s)
    rc=0
    (cd "$work" && OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 timeout "$LIMIT" nice -n "$NICE" \
        "$MUTMUT" run --max-children "$JOBS" >"$work/run.log" 2>&1) || rc=$?
    elapsed=$(( $(date +%s) - start ))
    [[ $rc -eq 124 ]] && echo "   stopped after ${LIMIT}s (MUTATION_TIMEOUT): the score covers the mutants reached"
    [[ $rc -ne 0 && $rc -ne 124 ]] && { echo "   mutmut exited $rc; last lines of $work/run.log:"; tail -n 15 "$work/run.log"; }
    (cd "$work" && "$MUTMUT" results --all true >"$work/results.txt" 2>&1) || true
    "$PY" - "$work/results.txt" "$mod" "$elapsed" <<'PY'
import re
import sys

path, mod, elapsed = sys.argv[1], sys.argv[2], sys.argv[3]
status: dict[str, str] = {}
for line in open(path, encoding="utf-8", errors="replace"):
    m = re.match(r"\s*(\S+__mutmut_\d+):\s*(.+?)\s*$", line)
    if m:
        status[m.group(1)] = m.group(2)
counts: dict[str, int] = {}
for s in status.values():
    counts[s] = counts.get(s, 0) + 1
killed = counts.get("killed", 0) + counts.get("timeout", 0) + counts.get("segfault", 0)
# a mutant that no selected test runs ("no tests") survives as surely as one the tests miss
survived = [(n, s) for n, s in status.items() if s in ("survived", "no tests", "suspicious")]
tested = killed + len(survived)
score = 100.0 * killed / tested if tested else float("nan")
unchecked = counts.get("not checked", 0)
print(
    f"   {mod}: {killed}/{tested} killed = {score:.1f}%  ({elapsed} s; {unchecked} not reached in time; "
    f"all states: {dict(sorted(counts.items()))})"
)
for name, s in survived:
    print(f"   {s}: {name}")
PY
    echo "   details: cd $work && $MUTMUT show <name>"
done
