#!/usr/bin/env bash
# Installs everything, then runs the batch flow on the bundled example manifest
# against the built-in emulator (no key, no network) and writes real MP4s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/pika-tasks run examples/manifest.csv --out "${1:-out/example}" --local
