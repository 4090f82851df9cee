#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs pika-tasks into it with every extra
# the examples, tests and benchmarks use. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade uv
.venv/bin/uv pip install --python .venv/bin/python --quiet -e '.[dev]'
