"""Work that must finish even while its caller is being cancelled.

A remote cancel, a partial upload's abort, a claim given back: each protects
the user's money or the next run, so each must run to its end when the row
that needs it is cancelled.  ``asyncio.shield`` alone does not see to that
under anyio's cancel scopes (Prefect's task timeouts are one): a cancelled
anyio scope cancels its task again at every await, so the caller stops
waiting at once and the shielded work is left running with nobody to wait
for it (a client about to close its pools, a loop about to end).

:func:`shielded` keeps both promises: the work is never cancelled by its
caller's cancellation, and inside a cancelled anyio scope the caller waits
for it.  A plain asyncio cancellation of the caller still interrupts the
wait at once (the work goes on), as with ``asyncio.shield``.

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
from typing import TypeVar

import anyio

__all__ = ["shielded"]

T = TypeVar("T")


async def shielded(work: Awaitable[T]) -> T:
    """Run ``work`` to its end whatever cancels the caller, and return its result."""
    running = asyncio.ensure_future(work)
    with anyio.CancelScope(shield=True):
        await asyncio.wait([running])
    return running.result()
