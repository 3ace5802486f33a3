#!/usr/bin/env bash
# The GPU check in one command (scripts/gpu_check.py says what it runs); prints one table, exits 1 on a failure.
#   bash scripts/gpu_check.sh                      # on a CUDA machine: at most ~8 minutes on one H100
#   bash scripts/gpu_check.sh --device cpu --quick # what CI runs: checks that the check itself works
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/gpu_check.py "$@"
