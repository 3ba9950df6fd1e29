#!/usr/bin/env bash
# The main job: sets up $VENV (default .venv) if needed, then runs the demo on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/setup.sh
exec "$VENV/bin/fpverify" demo "$@"
