"""What a run wrote to the Prefect server: its flow runs, events and log lines.

:func:`read_back` asks the benchmark's own ``prefect server start`` about the
flow runs expected to start at or after a given time (a run's subflows
included):

- ``flow_runs``: each run's id, name, parent task run, state, start and end
  (``POST /flow_runs/filter``, what ``PrefectClient.read_flow_runs`` calls);
- ``events``: the events whose resource or related resources name one of
  those flow runs (a task run's state events name their flow run as a
  related resource; events emitted inside a run do too): the ``total`` of
  ``POST /events/filter`` (what ``PrefectClient.read_events`` calls) with an
  ``any_resource`` filter, and the counts per event name from
  ``POST /events/count-by/event``;
- ``logs``: the log lines of those flow runs (a task run's lines carry its
  flow run's id), counted in the server's SQLite database, per level: the
  API has no count of logs, and paging through 200 at a time would take
  minutes at 20,000 rows;
- ``sqlite``: the same events counted in the database, a cross-check of the
  API's figure.

The routes are called with httpx rather than through ``PrefectClient`` so
that the benchmark's process never imports Prefect (a second or more of
start-up per run) nor changes its settings.

Events reach the database through the server's event persister, which
writes every 20 events or every few seconds after the client sent them on
its websocket: the counts are read again until they have not changed for
``settle`` seconds.

Example:
    >>> as_resource_ids(["0b5c"])
    ['prefect.flow-run.0b5c']
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

FLOW_RUN_RESOURCE = "prefect.flow-run."
"""Prefix of a flow run's resource id in events."""

_PAGE = 200
_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


def as_resource_ids(run_ids: Sequence[str]) -> list[str]:
    """Flow run ids as the resource ids events name them by."""
    return [FLOW_RUN_RESOURCE + run_id for run_id in run_ids]


def sqlite_counts(database: Path, run_ids: Sequence[str]) -> dict[str, Any]:
    """Log lines (total, per level) and related events of ``run_ids``, straight from SQLite."""
    if not run_ids:
        return {"logs": 0, "logs_by_level": {}, "events": 0}
    if not database.exists():
        return {"logs": None, "logs_by_level": {}, "events": None}
    marks = ",".join("?" * len(run_ids))
    # Read-only: the server keeps writing; WAL mode lets a reader in meanwhile.
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30.0) as db:
        levels = dict(
            db.execute(
                f"SELECT level, COUNT(*) FROM log WHERE flow_run_id IN ({marks}) GROUP BY level",
                list(run_ids),
            ).fetchall()
        )
        (events,) = db.execute(
            f"SELECT COUNT(DISTINCT event_id) FROM event_resources WHERE resource_id IN ({marks})",
            as_resource_ids(run_ids),
        ).fetchone()
    return {
        "logs": sum(levels.values()),
        "logs_by_level": {_LEVELS.get(level, str(level)): n for level, n in levels.items()},
        "events": events,
    }


def flow_runs(api: httpx.Client, since: datetime) -> list[dict[str, Any]]:
    """Flow runs expected to start at or after ``since``."""
    found: list[dict[str, Any]] = []
    body: dict[str, Any] = {
        "flow_runs": {"expected_start_time": {"after_": since.isoformat()}},
        "sort": "EXPECTED_START_TIME_ASC",
        "limit": _PAGE,
    }
    while True:
        response = api.post("/flow_runs/filter", json={**body, "offset": len(found)})
        response.raise_for_status()
        page = response.json()
        found += [
            {
                "id": run["id"],
                "name": run["name"],
                "parent_task_run_id": run.get("parent_task_run_id"),
                "state": run.get("state_type"),
                "start_time": run.get("start_time"),
                "end_time": run.get("end_time"),
                "total_run_time_s": run.get("total_run_time"),
            }
            for run in page
        ]
        if len(page) < _PAGE:
            return found


def events(api: httpx.Client, run_ids: Sequence[str]) -> dict[str, Any]:
    """Events naming one of ``run_ids``: their total and their counts per event name."""
    if not run_ids:
        return {"total": 0, "by_name": {}}
    event_filter = {"any_resource": {"id": as_resource_ids(run_ids)}}
    page = api.post("/events/filter", json={"filter": event_filter, "limit": 1})
    page.raise_for_status()
    counts = api.post("/events/count-by/event", json={"filter": event_filter, "time_unit": "day"})
    counts.raise_for_status()
    by_name = {item["value"]: item["count"] for item in counts.json()}
    return {"total": int(page.json()["total"]), "by_name": dict(sorted(by_name.items()))}


def read_back(
    api_url: str, database: Path, since: datetime, settle: float, limit: float = 300.0
) -> dict[str, Any]:
    """Flow runs since ``since``, their events and log lines, once the counts are steady.

    Args:
        api_url: the server's API (``http://127.0.0.1:PORT/api``).
        database: its SQLite file (``PREFECT_HOME/prefect.db``).
        since: when the run was started (UTC).
        settle: seconds the counts must stay unchanged (0: read once the
            flow runs' times are known, events and logs may be incomplete).
        limit: give up waiting for steady counts after this many seconds.
    """
    started = time.monotonic()
    with httpx.Client(base_url=api_url, timeout=120.0) as api:
        previous: tuple[Any, ...] | None = None
        steady_since = started
        while True:
            runs = flow_runs(api, since)
            run_ids = [run["id"] for run in runs]
            counted = events(api, run_ids)
            sqlite = sqlite_counts(database, run_ids)
            current = (len(runs), counted["total"], sqlite["logs"], sqlite["events"])
            now = time.monotonic()
            if current != previous:
                previous, steady_since = current, now
                if settle <= 0:
                    break
            elif now - steady_since >= settle or now - started >= limit:
                break
            time.sleep(0.5)
    return {
        "flow_runs": runs,
        "events": counted,
        "logs": {"total": sqlite["logs"], "by_level": sqlite["logs_by_level"]},
        "sqlite": {"events": sqlite["events"]},
        "settle_s": round(time.monotonic() - started, 1),
    }
