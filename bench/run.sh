#!/usr/bin/env bash
# Installs pika-tasks with its dev and bench extras into ./.venv, then runs every
# benchmark scenario against the emulator on loopback and writes
# bench/results/latest.json and bench/results/latest.md.
# Extra arguments go to `python -m bench` (e.g. --quick, --scale-rows 1000,2000).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade uv
.venv/bin/uv pip install --python .venv/bin/python --quiet -e '.[dev,bench]'
exec .venv/bin/python -m bench "$@"
