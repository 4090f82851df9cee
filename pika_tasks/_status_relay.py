"""Statuses read on the follower thread, reported on the caller's event loop, in order.

A client that follows status streams on a thread of its own (``follow_in_thread``)
reads each job's statuses there and hands them to :class:`StatusRelay`, which
runs the caller's reports one at a time on the caller's loop.  The stream is
never held up by a busy caller.  While the caller's loop is busy, a job's queue
position can change several times before its report runs: a queued status
whose report has not started yet is then replaced by the newer one, so only
the latest position is reported, and a busy loop is not handed one task per
position it would show for a moment.  Every other status (each IN_PROGRESS
with its logs, the back-to-the-queue IN_QUEUE after one, COMPLETED) is
reported, in the order it was read.

Example:
    >>> import asyncio, threading
    >>> from pika_tasks.models import QueueStatus
    >>> def queued(position: int) -> QueueStatus:
    ...     return QueueStatus(status="IN_QUEUE", request_id="r", queue_position=position)
    >>> async def busy_caller() -> list[str]:
    ...     seen: list[str] = []
    ...     async def report(status: QueueStatus) -> None:
    ...         seen.append(f"{status.status} {status.queue_position}")
    ...     relay = StatusRelay(report, asyncio.get_running_loop())
    ...     async def queue_moves() -> None:  # what the follower thread reads
    ...         for position in (2, 1, 0):
    ...             await relay.send(queued(position))
    ...     follower = threading.Thread(target=asyncio.run, args=(queue_moves(),))
    ...     follower.start()
    ...     follower.join()  # this loop is blocked meanwhile: nothing is reported yet
    ...     done = QueueStatus(status="COMPLETED", request_id="r")
    ...     await asyncio.to_thread(asyncio.run, relay.send(done))
    ...     return seen
    >>> asyncio.run(busy_caller())
    ['IN_QUEUE 0', 'COMPLETED None']
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import Awaitable, Callable

from pika_tasks.models import QueueStatus

__all__ = ["StatusRelay"]

Report = Callable[[QueueStatus], Awaitable[None]]


class StatusRelay:
    """Hands one job's statuses from the follower thread to reports on the caller's loop.

    Args:
        report: awaited on ``loop`` with each status to report.
        loop: the caller's event loop.
    """

    def __init__(self, report: Report, loop: asyncio.AbstractEventLoop) -> None:
        self._report = report
        self._loop = loop
        self._lock = threading.Lock()  # the follower thread and the caller's loop share the queue
        self._waiting: deque[QueueStatus] = deque()
        self._delivery: concurrent.futures.Future[None] | None = None

    async def send(self, status: QueueStatus) -> None:
        """Queue ``status`` for its report (on the follower thread).

        Returns at once, except for the final status: then it returns once
        every report ran.

        Raises:
            Exception: a report's error (it ends the wait).
        """
        failed = self._delivery
        if failed is not None and failed.done():
            failed.result()  # a running delivery is done only when a report raised
        with self._lock:
            last = self._waiting[-1] if self._waiting else None
            if last is not None and last.status == status.status == "IN_QUEUE":
                self._waiting[-1] = status  # its report has not started: show the newer position
            else:
                self._waiting.append(status)
            if self._delivery is None:
                self._delivery = asyncio.run_coroutine_threadsafe(self._deliver(), self._loop)
            delivery = self._delivery
        if status.done:
            await asyncio.wrap_future(delivery)

    async def _deliver(self) -> None:
        """Report waiting statuses one at a time until none is left (on the caller's loop)."""
        while True:
            with self._lock:
                if not self._waiting:
                    self._delivery = None
                    return
                status = self._waiting.popleft()
            await self._report(status)
