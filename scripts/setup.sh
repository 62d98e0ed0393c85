#!/usr/bin/env bash
# Create ./.venv and install soundsmith with what it needs (CPU torch first: a bare `torch` pulls CUDA).
# Idempotent: re-runs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.soundsmith-installed
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
  # tinysoundfont declares pyaudio (live playback only, needs PortAudio headers); offline rendering needs none.
  .venv/bin/python -m pip install -q --no-deps tinysoundfont
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
