#!/usr/bin/env bash
# Sets up .venv/ (scripts/setup.sh), then runs the main job: `em server` on the embedded default
# (SQLite + local folder in .em-server/), the example trainings, and their uploads.
# Extra arguments go to examples/main_job.py, e.g. `bash scripts/main.sh --no-serve --port 8100`.
# The terminal shows one line per set-up step, the examples' training output and the upload
# summary; pip, the Horovod build and the server's own log go to the file named at the start.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/steps.sh
start_log main
bash scripts/setup.sh
exec .venv/bin/python examples/main_job.py "$@"
