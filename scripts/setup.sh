#!/usr/bin/env bash
# Creates or reuses .venv/ at the repo root and installs t9k-em with every extra,
# the pinned frameworks, Horovod (built once, then cached) and Chromium for the UI tests.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=(pip_install)
pip_install() {
  # Drops the machine-wide pip config's warnings about index folders it does not have.
  local flags=(--disable-pip-version-check -q)
  [ -d /opt/wheels ] && flags+=(--find-links /opt/wheels)
  .venv/bin/python -m pip install "${flags[@]}" "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}
stamp=.venv/.t9k-em-installed
hash=$(cat pyproject.toml setup.py t9k_em_core/_speedups.c scripts/setup.sh scripts/build_horovod.sh 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
  "${PIP[@]}" --upgrade pip setuptools wheel
  # torch first and pinned: anything unpinned would pull a multi-GB CUDA build.
  "${PIP[@]}" torch==2.13.0
  "${PIP[@]}" -e ".[keras,lightning,server,dev]" torch==2.13.0
  if [ -f scripts/build_horovod.sh ]; then bash scripts/build_horovod.sh; fi
  echo "$hash" > "$stamp"
fi
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; the browser tests will be skipped" >&2
  fi
fi
