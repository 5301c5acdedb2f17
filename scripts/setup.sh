#!/usr/bin/env bash
# Creates or reuses .venv/ at the repo root and installs t9k-em with every extra,
# the pinned frameworks, Horovod (built once, then cached) and Chromium for the UI tests.
# Idempotent: a second run installs nothing new.
# Prints one line per step; the tools' own output goes to the log file (scripts/steps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/steps.sh
start_log setup
PY=${PYTHON:-python3.11}

pip_install() {
  local flags=(--disable-pip-version-check -q)
  [ -d /opt/wheels ] && flags+=(--find-links /opt/wheels)
  .venv/bin/python -m pip install "${flags[@]}" "$@"
}

if [ ! -x .venv/bin/python ]; then
  step "Python virtual environment .venv ($PY)" "$PY" -m venv .venv
fi
stamp=.venv/.t9k-em-installed
hash=$(cat pyproject.toml setup.py t9k_em_core/_speedups.c scripts/setup.sh scripts/build_horovod.sh 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
  step "pip, setuptools, wheel" pip_install --upgrade pip setuptools wheel
  # torch first and pinned: anything unpinned would pull a multi-GB CUDA build.
  step "torch 2.13.0 (CPU)" pip_install torch==2.13.0
  step "t9k-em and its extras (keras: tensorflow-cpu 2.21.0; lightning 2.6.6; server; dev)" \
    pip_install -e ".[keras,lightning,server,dev]" torch==2.13.0
  if [ -f scripts/build_horovod.sh ]; then
    step "Horovod 0.28.1 (takes minutes: built from source once, then installed from the cache)" \
      bash scripts/build_horovod.sh
  fi
  echo "$hash" > "$stamp"
else
  echo "Python packages in .venv: up to date"
fi
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    install_chromium() {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    }
    if ! (step "Chromium (for the browser tests)" install_chromium); then
      echo "setup: could not install chromium; the browser tests will be skipped" >&2
    fi
  fi
fi
