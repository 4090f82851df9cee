"""The scenarios of issues 7 and 12; each takes the run's context and returns its results.

Issue 7's (throughput, memory, transfer, scale) call the batch flow from
Python in a worker; issue 12's (workload, first_submit, cli_scale,
large_videos) run ``pika-tasks run`` in a subprocess (:mod:`bench.cli_run`).

Every result is a JSON-ready dict with the scenario's figures and a
``targets`` list (see :mod:`bench.targets`).
"""

from collections.abc import Callable
from typing import Any

from bench.runner import Context
from bench.scenarios.cli_scale import run_cli_scale
from bench.scenarios.first_submit import run_first_submit
from bench.scenarios.large_videos import run_large_videos
from bench.scenarios.memory import run_memory
from bench.scenarios.scale import run_scale
from bench.scenarios.throughput import run_throughput
from bench.scenarios.transfer import run_transfer_scenario
from bench.scenarios.workload import run_workload

SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "throughput": run_throughput,
    "memory": run_memory,
    "transfer": run_transfer_scenario,
    "scale": run_scale,
    "workload": run_workload,
    "first_submit": run_first_submit,
    "cli_scale": run_cli_scale,
    "large_videos": run_large_videos,
}

__all__ = ["SCENARIOS"]
