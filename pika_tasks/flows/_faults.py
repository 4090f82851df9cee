"""What the orchestrator's trouble may do to a batch run: cost a warning, never a row.

A run talks to the Prefect API for its progress bar, tables, events and
concurrency slots.  None of these is needed to make a video, so a call that
fails (a 5xx, a timeout, a server that is down or restarting, after the
Prefect client's own retries) is given up with a warning and the run goes on;
:func:`best_effort` does this, with a bound on how long one call may take.

Rows, too, fail alone: :func:`alone` turns any error that escapes a row's
work into that row's failed outcome, so one row's trouble never stops the
others, and the run always writes its report.

Example:
    >>> import asyncio, logging
    >>> async def down() -> int:
    ...     raise ConnectionError("the API is down")
    >>> asyncio.run(best_effort(down(), "a progress update", logging.getLogger("doc")))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from pika_tasks.manifest import ManifestRow
from pika_tasks.pipeline import RowOutcome

__all__ = ["API_CALL_SECONDS", "alone", "best_effort"]

T = TypeVar("T")
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

API_CALL_SECONDS = 60.0
"""The longest a best-effort call to the Prefect API may take, retries included."""


async def best_effort(
    call: Awaitable[T],
    what: str,
    logger: Logger,
    *,
    seconds: float = API_CALL_SECONDS,
    quiet: bool = False,
) -> T | None:
    """``call``'s result, or None when it failed or took longer than ``seconds``.

    Args:
        call: the call to the Prefect API.
        what: what it does, for the warning (``"the run's progress bar"``).
        logger: where the warning goes.
        seconds: the bound on the call, the Prefect client's retries included.
        quiet: say it at debug level only (the caller warned once already).
    """
    try:
        return await asyncio.wait_for(call, seconds)
    except Exception as error:
        reason = str(error) or type(error).__name__
        if isinstance(error, TimeoutError):
            reason = f"no answer within {seconds:g}s"
        logger.log(
            logging.DEBUG if quiet else logging.WARNING,
            "the Prefect API could not take %s (%s); the run goes on without it",
            what,
            reason,
        )
        return None


async def alone(work: Awaitable[T], row: ManifestRow, logger: Logger) -> T | RowOutcome:
    """``work``'s result; any error it raises becomes the row's failed outcome.

    The row's record at the output location stays as the row left it, so a
    later run takes the row up from there (a submitted row is re-attached,
    never paid again).
    """
    try:
        return await work
    except Exception as error:
        logger.error("%s (row %d) failed: %s", row.id, row.row_number, error, exc_info=error)
        return RowOutcome(
            id=row.id,
            row_number=row.row_number,
            status="failed",
            error=f"{row.id}: {type(error).__name__}: {error}",
        )
