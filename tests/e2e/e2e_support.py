"""Helpers of the end-to-end tests: deploy the project as a user would, start workers, run
deployments and wait for their runs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from prefect_stack import ROOT, PrefectStack, wait_until

KEY = "fal-test-KEY-e2e-77aa"
POOL = "pika-e2e"
LIMIT = 2
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def deploy(stack: PrefectStack, emu: Any, tmp_path: Path) -> None:
    """Create the limit and deploy every flow with deployments/deploy.sh, as a user would."""
    stack.cli("global-concurrency-limit", "create", "fal-pika", "--limit", str(LIMIT))
    env = stack.env(
        PIKA_PROJECT_DIR=str(ROOT),
        PIKA_WORK_POOL=POOL,
        PIKA_QUEUE_URL=emu.url,
        PIKA_STORAGE_URL=emu.url,
        PIKA_INBOX=str(tmp_path / "inbox"),
        PIKA_OUTPUT=str(tmp_path / "videos"),
        PREFECT=str(Path(__import__("sys").executable).with_name("prefect")),
    )
    done = subprocess.run(
        ["bash", "deployments/deploy.sh", "local"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    names = {d["name"] for d in stack.api("POST", "/deployments/filter", json={})}
    assert names >= {"batch", "scale-out", "inbox"}


def start_workers(stack: PrefectStack, count: int) -> None:
    env = stack.env(FAL_KEY=KEY, PIKA_POLL_INTERVAL="0.05", PIKA_MAX_POLL_INTERVAL="0.2")
    for number in range(count):
        stack.start_worker(POOL, f"worker-{number}", env)


def run_deployment(stack: PrefectStack, name: str, **parameters: Any) -> str:
    args = ["deployment", "run", name]
    for key, value in parameters.items():
        args += ["--param", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    output = stack.cli(*args)
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    assert match, output
    return match.group(1)


def wait_for_state(stack: PrefectStack, run_id: str, limit: float = 300) -> str:
    def final() -> str | None:
        state = stack.flow_run(run_id)["state"]["type"]
        return state if state in FINAL else None

    try:
        return str(wait_until(final, f"flow run {run_id} to finish", limit=limit, every=0.5))
    except AssertionError:
        raise AssertionError(stack.tail()) from None
