"""What a batch run shows in the Prefect UI besides its progress bar: a table of rows, a summary.

Every artifact write is a Prefect API call that a user pays for in rate
limits, so the table lists a bounded sample of rows, failures first; the run report
has every row.  An artifact the API cannot take is given up with one warning
(see :mod:`pika_tasks.flows._faults`): none of them is needed to make a video.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_table_artifact,
)

from pika_tasks.flows._faults import best_effort
from pika_tasks.pipeline import BatchResult, RowOutcome

__all__ = ["RowTable", "publish_summary"]

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

TABLE_ROWS = 500
"""Rows listed in the run's table artifact at most (failed rows first)."""
_LOGGER = logging.getLogger("pika_tasks.flows")


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
