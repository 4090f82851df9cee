"""What a batch run shows in the Prefect UI besides its progress bar: a table of rows, a summary.

Every artifact write is a Prefect API call that a user pays for in rate
limits, so the table lists a bounded sample of rows, failures first; the run report
has every row.  An artifact the API cannot take is given up with one warning
(see :mod:`pika_tasks.flows._faults`): none of them is needed to make a video.

Both carry a key derived from the output location
(:func:`~pika_tasks.keys.artifact_key`: ``pika-summary-…`` and ``pika-rows-…``),
so Prefect's Artifacts page shows the runs of one pipeline together.  The
summary shows a contact sheet of the run's first videos
(:mod:`pika_tasks.contact_sheet`), which :class:`SheetCollector` decodes as
their rows finish.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_table_artifact,
)

from pika_tasks.contact_sheet import (
    SHEET_ROWS,
    PosterFrames,
    contact_sheet,
    markdown_image,
    poster_frames_at,
    sheet_label,
)
from pika_tasks.flows._faults import best_effort
from pika_tasks.keys import artifact_key
from pika_tasks.pipeline import BatchResult, RowOutcome

__all__ = ["RowTable", "SheetCollector", "publish_summary"]

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

TABLE_ROWS = 500
"""Rows listed in the run's table artifact at most (failed rows first)."""
_LOGGER = logging.getLogger("pika_tasks.flows")
SHEET_WAIT_SECONDS = 60.0
"""How long the summary waits for videos still being decoded for the sheet."""


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


class _Worker:
    """One daemon thread that runs jobs in turn: a run that ends early never waits for it."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def run(self, job: Callable[[], Any]) -> asyncio.Future[Any]:
        """``job()`` on the thread, as a future of the running loop (cancel: never started)."""
        future: Future[Any] = Future()
        self._jobs.put((future, job))
        return asyncio.wrap_future(future)

    def stop(self) -> None:
        """End the thread once the jobs started are done (those waiting are dropped)."""
        self._jobs.put(None)

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as error:
                future.set_exception(error)


class SheetCollector:
    """The contact sheet of a run: its first videos, decoded as their rows finish.

    The sheet shows the :data:`~pika_tasks.contact_sheet.SHEET_ROWS` videos
    written by the rows with the lowest row numbers, the same that
    ``pika-tasks report --contact-sheet`` picks from the run's report.  A
    video is decoded once its row has finished, on a thread of the
    collector's own (one video at a time, so neither the rows' threads nor
    their event loop ever wait for it); a row with a lower number that
    finishes later takes the place of the highest one, whose decoding is then
    dropped (or never starts).

    The video is read back from the output, bounded by the sheet's size:
    decoding it while it downloads would have to reach into the fetch task
    (a Prefect task with its own retries and resumes, whose writer is the
    storage's) and hold each sheet video whole in memory until its index is
    known, while a read of the few videos a sheet shows is a local read (from
    the page cache, just written) or one request each on an object store.

    Args:
        storage_options: fsspec options for the videos.
        limit: the most videos on the sheet.
        logger: where a video that cannot be decoded is reported.
    """

    def __init__(
        self,
        storage_options: dict[str, Any] | None = None,
        limit: int = SHEET_ROWS,
        logger: Logger = _LOGGER,
    ) -> None:
        self.limit = limit
        self._storage_options = storage_options or {}
        self._logger = logger
        self._worker: _Worker | None = None
        self._held: dict[int, asyncio.Future[PosterFrames]] = {}

    def add(self, outcome: RowOutcome) -> None:
        """Start decoding the row's video if it is among the first ``limit`` so far."""
        if outcome.status != "succeeded" or not outcome.output or self.limit <= 0:
            return
        if len(self._held) >= self.limit:
            last = max(self._held)
            if outcome.row_number >= last:
                return
            self._held.pop(last).cancel()
        if self._worker is None:
            self._worker = _Worker("pika-contact-sheet")
        url, label = outcome.output, sheet_label(outcome.row_number, outcome.id)
        self._held[outcome.row_number] = self._worker.run(
            lambda: poster_frames_at(url, label, self._storage_options)
        )

    async def sheet(self, seconds: float = SHEET_WAIT_SECONDS) -> bytes | None:
        """The sheet's JPEG once the videos are decoded (within ``seconds``), or None.

        A video that cannot be decoded in time, or at all, is left out with a
        warning; None when no video is left.
        """
        worker = self._worker
        if worker is None:
            return None
        try:
            pending = list(self._held.values())
            if pending:
                await asyncio.wait(pending, timeout=seconds)
            lines: list[PosterFrames] = []
            for number in sorted(self._held):
                future = self._held[number]
                if not future.done():
                    future.cancel()
                    self._logger.warning("row %d: left off the contact sheet (too slow)", number)
                elif future.exception() is not None:
                    self._logger.warning(
                        "row %d: left off the contact sheet: %s", number, future.exception()
                    )
                else:
                    lines.append(future.result())
            if not lines:
                return None
            jpeg: bytes = await worker.run(lambda: contact_sheet(lines))
            return jpeg
        finally:
            worker.stop()
            self._worker = None


def summary_markdown(
    result: BatchResult,
    manifest: str,
    output: str,
    sheet: bytes | None = None,
    title: str = "Image-to-video batch",
) -> str:
    """The summary artifact's text; with ``sheet``, the contact sheet as a markdown image."""
    lines = [
        f"# {title}",
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
    if sheet is not None:
        lines += [
            "",
            "## Contact sheet",
            "",
            "First, middle and last frame of the videos written in this run "
            f"(the first {SHEET_ROWS} by row number).",
            "",
            markdown_image(sheet),
        ]
    return "\n".join(lines)


async def publish_summary(
    result: BatchResult,
    table: RowTable,
    manifest: str,
    output: str,
    logger: Logger = _LOGGER,
    sheet: SheetCollector | None = None,
    *,
    keyed: bool = True,
    title: str = "Image-to-video batch",
) -> None:
    """Create the run's table and summary artifacts, each on a best-effort basis.

    Args:
        result: the run's counts.
        table: the rows to list.
        manifest: the run's manifest.
        output: the run's output location (the artifacts' keys derive from it).
        logger: where an API that cannot take an artifact is reported.
        sheet: the run's contact sheet, shown in the summary when it has a video.
        keyed: give both the output's keys, so that the Artifacts page follows
            the output from run to run; else they show on the run's page only.
        title: the summary's heading.
    """
    rows = table.rows()
    description = "Rows of this run"
    if len(rows) < result.total:
        description += f" (a sample of {len(rows)} of {result.total}, failed rows first)"

    async def summary() -> None:
        jpeg = None
        try:
            jpeg = await sheet.sheet() if sheet is not None else None
        except Exception as error:  # the summary goes out without its picture
            logger.warning("the contact sheet was left out of the summary: %s", error)
        await best_effort(
            acreate_markdown_artifact(
                summary_markdown(result, manifest, output, jpeg, title),
                key=artifact_key("summary", output) if keyed else None,
                description="Summary",
            ),
            "the run's summary",
            logger,
        )

    await asyncio.gather(
        best_effort(
            acreate_table_artifact(
                rows,
                key=artifact_key("rows", output) if keyed else None,
                description=description,
            ),
            "the table of rows",
            logger,
        ),
        summary(),
    )
