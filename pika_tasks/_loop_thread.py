"""An asyncio event loop on a thread of its own, for work that must not wait its turn.

A flow running hundreds of task runs keeps its event loop busy: when 25 of
fal's jobs complete at once, each completion's status event waits behind the
Prefect bookkeeping of every other row before it is even read.  Work that
must react in milliseconds (noticing that a job completed, asking for its
result) runs on a :class:`LoopThread` instead.  That loop has nothing else
to do, so it waits only for the interpreter's lock: a few milliseconds.

Example:
    >>> import asyncio, threading
    >>> async def where() -> str:
    ...     return threading.current_thread().name
    >>> async def main() -> str:
    ...     thread = LoopThread("example-loop")
    ...     try:
    ...         return await thread.run(where())
    ...     finally:
    ...         await thread.aclose()
    >>> asyncio.run(main())
    'example-loop'
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An event loop running on a daemon thread until :meth:`aclose`.

    Args:
        name: the thread's name (shown by debuggers and profilers).
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the thread's loop and return its result to the caller's loop.

        Cancelling the caller cancels ``work`` too (on its own loop, without
        waiting for it to unwind).
        """
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    async def aclose(self, last: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run ``last`` on the thread's loop, cancel what is left there, stop the thread."""

        async def wind_down() -> None:
            try:
                if last is not None:
                    await last()
            finally:
                current = asyncio.current_task()
                left = [task for task in asyncio.all_tasks() if task is not current]
                for task in left:
                    task.cancel()
                await asyncio.gather(*left, return_exceptions=True)
                await self._loop.shutdown_asyncgens()

        try:
            await self.run(wind_down())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join)
            self._loop.close()
