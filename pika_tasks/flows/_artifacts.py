"""What a batch run shows in the Prefect UI: a progress bar, a table of rows, a summary.

Every artifact write is a Prefect API call that a user pays for in rate
limits, so the progress bar moves at whole percents only (about 100 updates a
run, whatever its size) and the table lists a bounded sample of rows, failures
first; the run report has every row.

None of them is needed to make a video: the bar is created and moved in the
background (a row never waits for it), and an artifact the API cannot take is
given up with one warning (see :mod:`pika_tasks.flows._faults`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from pika_tasks.flows._faults import best_effort
from pika_tasks.pipeline import BatchResult, RowOutcome

__all__ = ["ProgressBar", "RowTable", "publish_summary"]

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

TABLE_ROWS = 500
"""Rows listed in the run's table artifact at most (failed rows first)."""
_LOGGER = logging.getLogger("pika_tasks.flows")


class ProgressBar:
    """The run's progress artifact, moved at whole percents once the row count is known.

    One background task creates the artifact and pushes the latest count;
    :meth:`set_total` and :meth:`advance` only note the count and wake it, so
    a Prefect API that is slow or down never holds a row up.
    """

    def __init__(self, description: str, logger: Logger = _LOGGER) -> None:
        self.description = description
        self._logger = logger
        self._id: UUID | None = None
        self._total: int | None = None
        self._done = 0
        self._shown = 0
        self._warned = False
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def create(cls, description: str, logger: Logger = _LOGGER) -> ProgressBar:
        """The bar at 0%; its artifact is created in the background."""
        bar = cls(description, logger)
        bar._task = asyncio.create_task(bar._push())
        bar._changed.set()
        return bar

    async def set_total(self, total: int) -> None:
        """The manifest's row count, once the first pass has counted it."""
        self._total = max(1, total)
        self._changed.set()

    async def advance(self) -> None:
        """One more row finished."""
        self._done += 1
        self._changed.set()

    async def close(self, seconds: float = 10.0) -> None:
        """Give the last update a moment to land (unless the API failed it already), then stop."""
        task = self._task
        if task is None:
            return
        self._changed.set()
        if not self._warned:
            await asyncio.wait({task}, timeout=seconds)
        task.cancel()

    def _due(self) -> float | None:
        """The percentage to show now, or None when the bar shows it already."""
        total = self._total
        if total is None:
            return None
        # The bar moves at whole percents, and never goes back.
        done = min(self._done, total)
        if int(100 * done / total) > int(100 * self._shown / total) or (
            done == total and self._shown < total
        ):
            self._shown = done
            return 100.0 * done / total
        return None

    async def _call(self, call: Any, what: str) -> Any:
        result = await best_effort(call, what, self._logger, quiet=self._warned)
        if result is None:
            self._warned = True
        return result

    async def _push(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._id is None:
                self._id = await self._call(
                    acreate_progress_artifact(0.0, description=self.description),
                    "the run's progress bar",
                )
                if self._id is None:
                    continue  # tried again at the next change
            value = self._due()
            if value is not None:
                await self._call(
                    aupdate_progress_artifact(self._id, value), "an update of the progress bar"
                )
            if self._total is not None and self._shown >= self._total:
                return


class RowTable:
    """A bounded sample of the run's rows for the table artifact: failures first."""

    def __init__(self, limit: int = TABLE_ROWS) -> None:
        self.limit = limit
        self._failed: list[RowOutcome] = []
        self._others: list[RowOutcome] = []

    def add(self, outcome: RowOutcome) -> None:
        """Keep the row if the sample has room for its kind."""
        if outcome.status == "failed" and len(self._failed) < self.limit:
            self._failed.append(outcome)
        elif outcome.status != "failed" and len(self._others) < self.limit:
            self._others.append(outcome)

    def rows(self) -> list[dict[str, Any]]:
        """The table's rows, in manifest order within the sample."""
        kept = self._failed[: self.limit]
        kept += self._others[: self.limit - len(kept)]
        return [
            {
                "row": o.row_number,
                "id": o.id,
                "status": o.status,
                "output": o.output,
                "seconds": o.seconds,
                "error": o.error,
            }
            for o in sorted(kept, key=lambda o: o.row_number)
        ]


def summary_markdown(result: BatchResult, manifest: str, output: str) -> str:
    """The summary artifact's text."""
    return "\n".join(
        [
            "# Image-to-video batch",
            "",
            f"Manifest `{manifest}` → output `{output}`",
            "",
            "| succeeded | failed | skipped | cancelled | submitted | spend (list price) |",
            "|---|---|---|---|---|---|",
            f"| {result.succeeded} | {result.failed} | {result.skipped} | {result.cancelled} "
            f"| {result.submitted} | ${result.spend_usd:.2f} |",
            "",
            f"Run report: `{result.report_url}`",
        ]
    )


async def publish_summary(
    result: BatchResult, table: RowTable, manifest: str, output: str, logger: Logger = _LOGGER
) -> None:
    """Create the run's table and summary artifacts, each on a best-effort basis."""
    rows = table.rows()
    description = "Rows of this run"
    if len(rows) < result.total:
        description += f" (a sample of {len(rows)} of {result.total}, failed rows first)"
    await asyncio.gather(
        best_effort(
            acreate_table_artifact(rows, description=description), "the table of rows", logger
        ),
        best_effort(
            acreate_markdown_artifact(
                summary_markdown(result, manifest, output), description="Summary"
            ),
            "the run's summary",
            logger,
        ),
    )
