"""The four scenarios of issue 7; each takes the run's context and returns its results.

Every result is a JSON-ready dict with the scenario's figures and a
``targets`` list (see :mod:`bench.targets`).
"""

from collections.abc import Callable
from typing import Any

from bench.runner import Context
from bench.scenarios.memory import run_memory
from bench.scenarios.scale import run_scale
from bench.scenarios.throughput import run_throughput
from bench.scenarios.transfer import run_transfer_scenario

SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "throughput": run_throughput,
    "memory": run_memory,
    "transfer": run_transfer_scenario,
    "scale": run_scale,
}

__all__ = ["SCENARIOS"]
