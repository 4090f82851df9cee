"""Helpers of the end-to-end tests: deploy the project as a user would, start workers, run
deployments and wait for their runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prefect_stack import ROOT, PrefectStack
from support import queue_env, wait_until

POOL = "pika-e2e"
LIMIT = 2
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def deploy(stack: PrefectStack, emu: Any, tmp_path: Path) -> None:
    """Create the limit and the pool, and deploy every flow with ``prefect deploy --all``.

    The test's environment is a second deployment file, as a user's other
    environments are (see deployments/production.yaml): prefect.yaml with this
    test's pool, emulator and inbox.
    """
    stack.cli("global-concurrency-limit", "create", "fal-pika", "--limit", str(LIMIT))
    stack.cli("work-pool", "create", POOL, "--type", "process")
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for deployment in config["deployments"]:
        deployment["work_pool"] = {
            "name": POOL,
            "job_variables": {"env": {"PIKA_QUEUE_URL": emu.url, "PIKA_STORAGE_URL": emu.url}},
        }
        if deployment["name"] == "inbox":
            deployment["parameters"].update(
                inbox=str(tmp_path / "inbox"), output=str(tmp_path / "videos")
            )
    environment = tmp_path / "e2e-deployments.yaml"
    environment.write_text(yaml.safe_dump(config, sort_keys=False))
    stack.cli("deploy", "--all", "--prefect-file", str(environment), timeout=180)
    names = {d["name"] for d in stack.api("POST", "/deployments/filter", json={})}
    assert names >= {"batch", "scale-out", "inbox"}


def start_workers(stack: PrefectStack, count: int) -> None:
    env = stack.env(**queue_env())
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
        return str(wait_until(final, f"flow run {run_id} to finish", timeout=limit, interval=0.5))
    except AssertionError:
        raise AssertionError(stack.tail()) from None
