#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs pika-tasks into it, editable, with
# every extra the examples, tests and benchmarks use, at the versions pinned in
# uv.lock. Safe to run again. When pyproject.toml has changed and uv.lock no
# longer matches it, this fails: run `.venv/bin/uv lock` and commit uv.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
UV_VERSION=0.13.9
# A .venv left half made (setup stopped while creating it) has no pip: made again.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    "$PYTHON" -m venv --clear .venv
fi
if [ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
# --inexact: leave alone what else is in .venv (uv itself, pip, tools you added).
if ! .venv/bin/uv sync --locked --inexact --extra dev --python .venv/bin/python --quiet; then
    echo "setup: could not install from uv.lock (if it says the lockfile needs to be" \
        "updated: run .venv/bin/uv lock and commit uv.lock)" >&2
    exit 1
fi
