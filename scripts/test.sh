#!/usr/bin/env bash
# The test command: sets up $VENV (default .venv) if needed, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/setup.sh
exec "$VENV/bin/python" -m pytest -q "$@"
