"""The run's progress artifact: a bar that moves as rows finish.

Every artifact write is a Prefect API call that a user pays for in rate
limits, so the bar moves at whole percents only (about 100 updates a run,
whatever its size).  It is created and moved in the background: a row never
waits for it, and an API that cannot take it is given up with one warning
(see :mod:`pika_tasks.flows._faults`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

from pika_tasks.flows._faults import best_effort

__all__ = ["ProgressBar"]

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

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
