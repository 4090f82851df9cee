#!/usr/bin/env bash
# Installs everything, then runs the linters, the type checker and the tests.
# Extra arguments go to pytest. The tests run in one process per core
# (pytest-xdist), a module on one process, so that a module's fixtures (a
# Prefect server, the benchmark's quick run) are made once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_browser.sh
.venv/bin/ruff check pika_tasks flows tests bench
.venv/bin/ruff format --check pika_tasks flows tests bench
.venv/bin/mypy
.venv/bin/pytest --numprocesses auto --dist loadscope "$@"
