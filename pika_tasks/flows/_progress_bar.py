"""The run's progress artifact: a bar that moves as rows finish, and a line on fal's queue.

The bar is fed :class:`~pika_tasks.progress.BatchProgress` reports (it is one
of the run's progress callbacks).  Its description says how many rows are
queued at fal, running and downloading, the oldest waiting row's queue
position, the rows done and failed and the spend so far
(:meth:`BatchProgress.describe`).

Every artifact write is a Prefect API call that a user pays for in rate
limits, and the description changes with every status fal sends, so writes
are bounded:

* the bar moves at whole percents only, each move carrying the latest
  description: at most 100 writes a run, whatever its size;
* between moves, a changed description is written at most once every
  :data:`DESCRIPTION_SECONDS` (the latest one then; those in between are
  never sent);
* one write at the end when the last description was not written yet.

So a run makes at most 1 (create) + 101 + its length in seconds / 5 writes
to the artifact.  It is created and moved in the background: a row never
waits for it, and an API that cannot take it is given up with one warning
(see :mod:`pika_tasks.flows._faults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

from pika_tasks.flows._faults import best_effort
from pika_tasks.progress import BatchProgress

__all__ = ["DESCRIPTION_SECONDS", "ProgressBar"]

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

_LOGGER = logging.getLogger("pika_tasks.flows")

DESCRIPTION_SECONDS = 5.0
"""Least time between two writes of the description alone (the bar's moves are not held)."""


class ProgressBar:
    """The run's progress artifact, moved at whole percents once the row count is known.

    One background task creates the artifact and pushes the latest state;
    :meth:`show` only notes the state and wakes it, so a Prefect API that is
    slow or down never holds a row up.

    Args:
        title: the description's start, e.g. ``"Rows of s3://bucket/manifest.csv"``.
        logger: where a failing API is reported (once).
        key: the artifact's key, if any (Prefect's key rules apply).
        description_seconds: see :data:`DESCRIPTION_SECONDS`.
    """

    def __init__(
        self,
        title: str,
        logger: Logger = _LOGGER,
        *,
        key: str | None = None,
        description_seconds: float = DESCRIPTION_SECONDS,
    ) -> None:
        self.title = title
        self.key = key
        self.description_seconds = description_seconds
        self._logger = logger
        self._id: UUID | None = None
        self._total: int | None = None
        self._done = 0
        self._shown = 0
        self._text = self._describe(BatchProgress(total=None))
        self._written: str | None = None
        self._written_at = float("-inf")
        self._warned = False
        self._closing = False
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        """Artifact writes made so far (create included)."""

    @classmethod
    async def create(
        cls, title: str, logger: Logger = _LOGGER, *, key: str | None = None
    ) -> ProgressBar:
        """The bar at 0%; its artifact is created in the background."""
        bar = cls(title, logger, key=key)
        bar._task = asyncio.create_task(bar._push())
        bar._changed.set()
        return bar

    @property
    def description(self) -> str:
        """The latest description (written to the API within the bounds above)."""
        return self._text

    def show(self, progress: BatchProgress) -> None:
        """Note the batch's latest state (a progress callback: quick, never blocks)."""
        if progress.total is not None:
            self._total = max(1, progress.total)
        self._done = progress.done
        self._text = self._describe(progress)
        self._changed.set()

    async def close(self, seconds: float = 10.0) -> None:
        """Write the last state (unless the API failed already) within ``seconds``, then stop."""
        task = self._task
        if task is None:
            return
        self._closing = True
        self._changed.set()
        if not self._warned:
            await asyncio.wait({task}, timeout=seconds)
        task.cancel()

    def _describe(self, progress: BatchProgress) -> str:
        return f"{self.title}: {progress.describe()}"

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

    def _percent(self) -> float:
        return 0.0 if self._total is None else 100.0 * self._shown / self._total

    async def _call(self, call: Any, what: str) -> Any:
        self.writes += 1
        result = await best_effort(call, what, self._logger, quiet=self._warned)
        if result is None:
            self._warned = True
        return result

    async def _hold(self) -> bool:
        """Wait out the least time between description writes; False when woken by a change."""
        delay = self._written_at + self.description_seconds - asyncio.get_running_loop().time()
        if delay <= 0 or self._closing:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), delay)
            return False  # a change came first: look again (the bar may move at once)
        return True

    async def _push(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._id is None:
                text = self._text
                self._id = await self._call(
                    acreate_progress_artifact(0.0, key=self.key, description=text),
                    "the run's progress bar",
                )
                if self._id is None:
                    if self._closing:
                        return
                    continue  # tried again at the next change
                self._written, self._written_at = text, loop.time()
            value = self._due()
            text = self._text
            if value is None and text == self._written:
                if self._closing:
                    return
                continue
            if value is None and not await self._hold():
                self._changed.set()
                continue
            text = self._text  # the latest, after the hold
            await self._call(
                aupdate_progress_artifact(self._id, self._percent(), description=text),
                "an update of the progress bar",
            )
            self._written, self._written_at = text, loop.time()
            if self._closing and text == self._text:
                return
            if self._text != text:
                self._changed.set()  # changed while writing: its turn comes within the bounds
