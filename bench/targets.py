"""Targets of issue 7 as data: what was aimed for, what was measured, whether it was met.

Example:
    >>> at_most("throughput", "client", "makespan / ideal", 1.01, 1.05)["met"]
    True
    >>> at_least("transfer", "s3", "ours / httpx", None, 0.8)["met"] is None
    True
"""

from __future__ import annotations

from typing import Any


def _target(
    scenario: str, subject: str, metric: str, goal: str, value: Any, met: bool | None
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "subject": subject,
        "metric": metric,
        "target": goal,
        "value": value,
        "met": met,
    }


def at_most(
    scenario: str, subject: str, metric: str, value: float | None, limit: float
) -> dict[str, Any]:
    """A target met when ``value <= limit`` (unknown when nothing was measured)."""
    met = None if value is None else value <= limit
    return _target(scenario, subject, metric, f"<= {limit:g}", value, met)


def at_least(
    scenario: str, subject: str, metric: str, value: float | None, limit: float
) -> dict[str, Any]:
    """A target met when ``value >= limit`` (unknown when nothing was measured)."""
    met = None if value is None else value >= limit
    return _target(scenario, subject, metric, f">= {limit:g}", value, met)
