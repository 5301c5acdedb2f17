#!/usr/bin/env bash
# Sets up .venv/ (scripts/setup.sh) and runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k keras`.
# The set-up prints one line per step (pip's output goes to the log file named at the start);
# then pytest's own output follows.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/steps.sh
start_log test
bash scripts/setup.sh
# PostgreSQL-backed tests use the local server (127.0.0.1:5432, trust auth); start it if it is down.
if command -v pg_lsclusters >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! (step "PostgreSQL on 127.0.0.1:5432" \
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start); then
    echo "test: PostgreSQL did not start; its tests will be skipped" >&2
  fi
fi
echo "Running the test suite (pytest)"
exec .venv/bin/python -m pytest -p no:cacheprovider -q -ra "$@"
