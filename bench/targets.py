"""Targets as data: what was aimed for, what was measured, whether it was met.

The limits of issue 7 (the first benchmark) and of issue 12 (the batch as a
streaming row pipeline) are named here, once; scenarios judge their figures
against them.  Where issue 12 tightened a figure of issue 7 for the batch
flow, the flow is judged by issue 12's limit and our client alone keeps
issue 7's.

Example:
    >>> at_most("throughput", "client", "makespan / ideal", 1.01, CLIENT_MAKESPAN_RATIO)["met"]
    True
    >>> at_least("transfer", "s3", "ours / httpx", None, S3_FETCH_RATIO)["met"] is None
    True
    >>> at_most("rows", "x", "y", 2.0, FIRST_SUBMIT_GROWTH, issue=12)["issue"]
    12
"""

from __future__ import annotations

from typing import Any

# Issue 7: the first benchmark.
CLIENT_MAKESPAN_RATIO = 1.05
"""Our client alone: makespan / ideal."""
QUEUE_REQUESTS_PER_JOB = 4
"""Queue requests (submit, status, stream, result, cancel) per job, flow and client."""
CLIENT_CPU_VS_FAL = 1.0
"""Our client alone: CPU per row / fal-client's."""
MEMORY_DELTA_MB = 64
"""Peak RSS with ~50 MB videos minus with tiny ones."""
S3_FETCH_RATIO = 0.8
"""Fetch to S3: ours / a plain httpx copy (MB/s)."""
SCALE_RSS_GROWTH = 1.25
"""The flow's peak RSS, largest / smallest scale run (the flow called from Python)."""

# Issue 12: the streaming row pipeline.
FIRST_SUBMIT_GROWTH = 1.5
"""Time to first submit, 20,000 rows / 20 rows (``pika-tasks run``)."""
CLI_RSS_GROWTH = 1.15
"""Peak RSS of ``pika-tasks run``, 20,000 rows / 1,000 rows."""
FLOW_MAKESPAN_RATIO = 1.02
"""The batch flow: makespan / ideal, 500 rows, 25 runners, 2 s jobs."""
DETECTION_P95_MS = 100
"""Completion-detection latency p95, flow and client (issue 7's limit too)."""
FLOW_CPU_VS_FAL = 0.6
"""The batch flow: CPU per row / fal-client's."""
PREFECT_WRITES_PER_ROW = 15
"""Prefect events plus log lines written per row."""
LOCAL_FETCH_RATIO = 0.9
"""Fetch to a local folder: ours / a plain httpx copy (MB/s)."""

ISSUE_12_METRICS = (
    ("first_submit", "first submit, largest / smallest manifest (x)"),
    ("cli_scale", "peak RSS, largest / smallest run (x)"),
    ("throughput", "makespan / ideal"),
    ("throughput", "detection p95 (ms)"),
    ("throughput", "CPU per row / fal-client's"),
    ("cli_scale", "Prefect writes per row (events + log lines)"),
    ("transfer", "fetch MB/s, ours / httpx"),
)
"""(scenario, metric) of issue 12's target table, in its order (see :mod:`bench.report`)."""


def _target(
    scenario: str,
    subject: str,
    metric: str,
    goal: str,
    value: Any,
    met: bool | None,
    issue: int,
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "subject": subject,
        "metric": metric,
        "target": goal,
        "value": value,
        "met": met,
        "issue": issue,
    }


def at_most(
    scenario: str,
    subject: str,
    metric: str,
    value: float | None,
    limit: float,
    issue: int = 7,
) -> dict[str, Any]:
    """A target met when ``value <= limit`` (unknown when nothing was measured)."""
    met = None if value is None else value <= limit
    return _target(scenario, subject, metric, f"<= {limit:g}", value, met, issue)


def at_least(
    scenario: str,
    subject: str,
    metric: str,
    value: float | None,
    limit: float,
    issue: int = 7,
) -> dict[str, Any]:
    """A target met when ``value >= limit`` (unknown when nothing was measured)."""
    met = None if value is None else value >= limit
    return _target(scenario, subject, metric, f">= {limit:g}", value, met, issue)
