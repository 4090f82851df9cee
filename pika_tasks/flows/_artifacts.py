"""What a batch run shows in the Prefect UI: a progress bar, a table of rows, a summary.

Every artifact write is a Prefect API call that a user pays for in rate
limits, so the progress bar moves at whole percents only (about 100 updates a
run, whatever its size) and the table lists a bounded sample of rows, failures
first; the run report has every row.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from pika_tasks.pipeline import BatchResult, RowOutcome

__all__ = ["ProgressBar", "RowTable", "publish_summary"]

TABLE_ROWS = 500
"""Rows listed in the run's table artifact at most (failed rows first)."""


class ProgressBar:
    """The run's progress artifact, moved at whole percents once the row count is known."""

    def __init__(self, artifact_id: UUID) -> None:
        self._id = artifact_id
        self._total: int | None = None
        self._done = 0
        self._shown = 0
        self._lock = asyncio.Lock()

    @classmethod
    async def create(cls, description: str) -> ProgressBar:
        """Create the artifact at 0%."""
        artifact_id = await acreate_progress_artifact(0.0, description=description)
        return cls(artifact_id)

    async def set_total(self, total: int) -> None:
        """The manifest's row count, once the first pass has counted it."""
        self._total = max(1, total)
        await self._update()

    async def advance(self) -> None:
        """One more row finished."""
        self._done += 1
        await self._update()

    async def _update(self) -> None:
        total = self._total
        if total is None:
            return
        async with self._lock:
            # One update at a time, each with the latest count: the bar never goes back.
            done = min(self._done, total)
            if int(100 * done / total) > int(100 * self._shown / total) or (
                done == total and self._shown < total
            ):
                self._shown = done
                await aupdate_progress_artifact(self._id, 100.0 * done / total)


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


async def publish_summary(result: BatchResult, table: RowTable, manifest: str, output: str) -> None:
    """Create the run's table and summary artifacts."""
    rows = table.rows()
    description = "Rows of this run"
    if len(rows) < result.total:
        description += f" (a sample of {len(rows)} of {result.total}, failed rows first)"
    await acreate_table_artifact(rows, description=description)
    await acreate_markdown_artifact(
        summary_markdown(result, manifest, output), description="Summary"
    )
