#!/usr/bin/env bash
# Sets up .venv/ (scripts/setup.sh), then runs the main job: `em server` on the embedded default
# (SQLite + local folder in .em-server/), the example trainings, and their uploads.
# Extra arguments go to examples/main_job.py, e.g. `bash scripts/main.sh --no-serve --port 8100`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/main_job.py "$@"
