"""Work that must finish even while its caller is being cancelled.

A remote cancel, a partial upload's abort, a claim given back: each protects
the user's money or the next run, so each must run to its end when the row
that needs it is cancelled.  ``asyncio.shield`` alone does not see to that:
its caller stops waiting at the first cancellation, and under anyio's cancel
scopes (Prefect's task timeouts are one) at once, since a cancelled scope
cancels its task again at every await.  The work is then left with nobody to
wait for it: a client about to close its pools, a task group about to end,
a loop about to close and cancel whatever is still pending.

:func:`shielded` waits for the work through every cancellation, anyio's and
asyncio's, and then raises the first asyncio cancellation it swallowed (an
anyio scope raises its own once the work is done).  Each piece of work it is
given is bounded by its own timeouts: a cancelled row waits for it, not for
ever.

Example:
    >>> import asyncio
    >>> async def give_back() -> str:
    ...     await asyncio.sleep(0)
    ...     return "released"
    >>> asyncio.run(shielded(give_back()))
    'released'
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import anyio

__all__ = ["settled", "shielded"]

T = TypeVar("T")


async def shielded(work: Awaitable[T]) -> T:
    """Run ``work`` to its end whatever cancels the caller, and return its result.

    Raises:
        asyncio.CancelledError: the caller was cancelled meanwhile (once the work is done).
        Exception: what the work raised, when the caller was not cancelled.
    """
    running = asyncio.ensure_future(work)
    swallowed: asyncio.CancelledError | None = None
    with anyio.CancelScope(shield=True):
        while not running.done():
            try:
                await asyncio.wait([running])
            except asyncio.CancelledError as cancel:
                swallowed = swallowed or cancel
    if swallowed is None:
        return running.result()
    if not running.cancelled():
        running.exception()  # retrieved: the cancellation is what the caller gets
    # Without its old traceback, whose frames (asyncio.wait's) would keep the finished
    # work, and its error, alive for as long as the cancellation is.
    del running
    raise swallowed.with_traceback(None)


async def settled(running: asyncio.Future[Any]) -> None:
    """Wait, whatever cancels the caller, until ``running`` is done, and raise nothing.

    For work already under way that cannot be stopped (a write in a thread) and
    whose error, if any, the caller has already had, or is raising beside it:
    the error is retrieved, so it is never reported as unseen.
    """
    await shielded(asyncio.wait([running]))
    if not running.cancelled():
        running.exception()
