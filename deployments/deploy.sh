#!/usr/bin/env bash
# Deploy every flow in prefect.yaml with one environment's values:
#     bash deployments/deploy.sh local|production
# Needs PREFECT_API_URL (or a Prefect profile) pointing at your server. Creates
# the process work pool if it is missing.
set -euo pipefail
environment=${1:?usage: deploy.sh local|production}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PIKA_PROJECT_DIR=${PIKA_PROJECT_DIR:-$root}
set -a
# shellcheck source=/dev/null
source "deployments/${environment}.env"
set +a
prefect=${PREFECT:-prefect}
"$prefect" work-pool inspect "$PIKA_WORK_POOL" >/dev/null 2>&1 \
    || "$prefect" work-pool create "$PIKA_WORK_POOL" --type process
"$prefect" deploy --all --no-prompt
