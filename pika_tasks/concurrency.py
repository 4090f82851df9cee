"""How many of our requests may be in flight at fal at once, across every run.

fal limits concurrent running requests per account (2 for a new account, up
to 40 self-serve).  A Prefect **global concurrency limit** shared by every
flow run and worker using the same key keeps us within it::

    prefect gcl create fal-pika --limit 2

Each row holds one slot from just before its submit until fal reports its
job done; the video downloads after the slot is given back.  When the limit
does not exist on the Prefect server, runs are still bounded by their local
``max_concurrency`` and say so once in the log.  An
optional rate limit (a global limit with ``--slot-decay-per-second``) paces
submits.

Example:
    >>> import asyncio
    >>> from pika_tasks.concurrency import FalSlots
    >>> async def demo() -> int:
    ...     slots = FalSlots(limit_name=None, local_limit=2)
    ...     async with slots.slot():
    ...         return slots.local_limit
    >>> asyncio.run(demo())
    2
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import concurrency, rate_limit
from prefect.exceptions import ObjectNotFound

from pika_tasks.pipeline import DEFAULT_LIMIT_NAME

__all__ = ["DEFAULT_LIMIT_NAME", "FalSlots", "limit_exists"]


async def limit_exists(name: str) -> bool:
    """True when the Prefect API has a global concurrency limit called ``name``."""
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return True


class FalSlots:
    """Slots for requests in flight: a global limit when there is one, and a local bound.

    Args:
        limit_name: the global concurrency limit to hold a slot of; None for none.
        local_limit: rows in flight at once in this run, whatever the global limit.
        rate_limit_name: a global limit with slot decay that paces submits, or None.
    """

    def __init__(
        self,
        limit_name: str | None,
        local_limit: int,
        rate_limit_name: str | None = None,
    ) -> None:
        self.limit_name = limit_name
        self.local_limit = max(1, local_limit)
        self.rate_limit_name = rate_limit_name
        self._local = asyncio.Semaphore(self.local_limit)
        self._use_global = False

    async def check(self, logger: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
        """Look the limits up once, and say once what bounds this run."""
        if self.limit_name and await limit_exists(self.limit_name):
            self._use_global = True
            logger.info(
                "requests in flight are bounded by the global concurrency limit %r "
                "and by max_concurrency=%d in this run",
                self.limit_name,
                self.local_limit,
            )
        elif self.limit_name:
            logger.warning(
                "no global concurrency limit %r on this Prefect server: only this run's "
                "max_concurrency=%d bounds requests in flight. To share fal's account "
                "limit across runs and workers: prefect gcl create %s --limit N",
                self.limit_name,
                self.local_limit,
                self.limit_name,
            )
        if self.rate_limit_name and not await limit_exists(self.rate_limit_name):
            logger.warning(
                "no rate limit %r on this Prefect server: submits are not paced",
                self.rate_limit_name,
            )
            self.rate_limit_name = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one local slot, and one global slot when the limit exists."""
        async with self._local:
            if self._use_global and self.limit_name:
                async with concurrency(self.limit_name, occupy=1, strict=True):
                    yield
            else:
                yield

    async def pace_submit(self) -> None:
        """Wait for the submit rate limit, when one is configured."""
        if self.rate_limit_name:
            await rate_limit(self.rate_limit_name, occupy=1, strict=True)
