"""Everything a run leaves behind that a person could read, gathered to search for the key.

:func:`prefect_trail` reads back from the Prefect API what a flow run left there:
the run and its parameters, its task runs and their states, every log line,
every artifact and every event.  :func:`leaks` then names each text that shows
the key.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.events.filters import EventAnyResourceFilter, EventFilter
from prefect.logging.handlers import APILogHandler
from reliability_support import exception_texts, files_under
from support import KEY, settled_task_runs, wait_until_async


@dataclass
class Trail:
    """Texts a run left behind, each with where it came from."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, where: str, text: Any) -> None:
        """Add one text (anything: it is searched as its ``str``)."""
        self.texts.append((where, text if isinstance(text, str) else str(text)))
        kind = where.split(":", 1)[0]
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def add_error(self, where: str, error: BaseException) -> None:
        """An exception: str, repr, attributes and traceback, with every chained cause."""
        for text in exception_texts(error):
            self.add(f"error:{where}", text)
        self.add(f"error:{where}", "".join(traceback.format_exception(error)))

    def add_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        """Every record captured in the process: message, arguments and all attributes."""
        for record in caplog.records:
            self.add(f"log:{record.name}", f"{record.getMessage()} {record.__dict__!r}")
            if record.exc_info and record.exc_info[1] is not None:
                self.add_error(f"log:{record.name}", record.exc_info[1])

    def add_files(self, root: Path) -> None:
        """Every file under ``root`` (videos, sidecars, reports)."""
        for path in files_under(root):
            self.add(f"file:{path.name}", path.read_bytes().decode("utf-8", "replace"))

    def leaks(self, key: str = KEY) -> list[str]:
        """Where the key shows, one entry per text that holds it."""
        return [where for where, text in self.texts if key in text]


async def _all_logs(flow_run_id: UUID) -> list[Any]:
    """Every log line the API holds for the flow run (all pages)."""
    found: list[Any] = []
    async with get_client() as client:
        while True:
            page = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                limit=200,
                offset=len(found),
            )
            found.extend(page)
            if len(page) < 200:
                return found


async def _all_events(client: Any, wanted: EventFilter) -> list[Any]:
    """Every event matching ``wanted`` (all pages)."""
    page = await client.read_events(wanted, limit=50)
    events = list(page.events)
    while page.next_page is not None:
        page = await client.read_events_page(str(page.next_page))
        events.extend(page.events)
    return events


async def prefect_trail(
    flow_run_id: UUID, trail: Trail, *, min_row_events: int = 0, min_task_runs: int = 0
) -> None:
    """Add what the Prefect API holds about a flow run to ``trail``.

    Logs are flushed to the API first; events are stored in batches, so they
    are read until some are there, and at least ``min_row_events`` of the
    batch flow's ``pika.video.*`` events (bounded wait).  The server records
    task runs from their events too: they are read until at least
    ``min_task_runs`` of them have a final state.
    """
    await APILogHandler.aflush()
    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)
        trail.add("flow-run:json", flow_run.model_dump_json())
        task_runs = await settled_task_runs(
            flow_run_id,
            lambda runs: sum(bool(r.state and r.state.is_final()) for r in runs) >= min_task_runs,
        )
        for task_run in task_runs:
            trail.add("task-run:json", task_run.model_dump_json())
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        for artifact in artifacts:
            trail.add("artifact:json", artifact.model_dump_json())
        wanted = EventFilter(
            any_resource=EventAnyResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"])
        )

        async def stored() -> list[Any]:
            events = await _all_events(client, wanted)
            rows = sum(event.event.startswith("pika.video.") for event in events)
            return events if events and rows >= min_row_events else []

        # The server stores events in batches.
        events = await wait_until_async(stored, "the run's events", 20, interval=0.2)
        for event in events:
            trail.add("event:json", event.model_dump_json())
    for log in await _all_logs(flow_run_id):
        trail.add("api-log:message", log.model_dump_json())


def flow_run_id_of(state: Any) -> UUID:
    """The id of the flow run a final state belongs to."""
    flow_run_id: UUID | None = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def texts_of(objects: Iterable[Any]) -> list[str]:
    """repr and str of each object."""
    return [text for item in objects for text in (repr(item), str(item))]
