"""How many of our requests may be in flight at fal at once, across every run.

fal limits concurrent running requests per account (2 for a new account, up
to 40 self-serve).  A Prefect **global concurrency limit** shared by every
flow run and worker using the same key keeps us within it::

    prefect gcl create fal-pika --limit 2

Each row holds one slot from just before its submit until fal reports its
job done; the video downloads after the slot is given back.  When the limit
does not exist on the Prefect server, runs are still bounded by their local
``max_concurrency`` and say so once in the log.  An optional rate limit (a
global limit with ``--slot-decay-per-second``) paces submits.

The Prefect API is a help here, never a condition.  fal queues requests beyond
the account's concurrency and never rejects them, so when a limit cannot be
reached (a 5xx, a timeout, a server that is down or restarting, after the
Prefect client's own retries: ``PREFECT_CLIENT_MAX_RETRIES`` and
``PREFECT_API_REQUEST_TIMEOUT``), rows go on under the run's local bound, the
run says so in one warning, and one row at a time tries the limit again every
``retry_seconds`` until it answers.  Nothing fails for it.

Slots are Prefect's leases (``increment-with-lease``), renewed while held and
given back when the row leaves fal.  A lease that the server lost while it was
still live (a Prefect server keeps leases in memory by default, so a restart
forgets them but keeps their slots counted) is given back by name instead, so
a restart never leaves the limit full of slots that nobody holds.

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
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from pika_tasks.pipeline import DEFAULT_LIMIT_NAME

__all__ = ["DEFAULT_LIMIT_NAME", "FalSlots", "limit_exists"]

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]

LEASE_SECONDS = 300.0
"""How long a slot's lease lasts unless renewed (Prefect's own default)."""
RETRY_SECONDS = 30.0
"""How long rows go on without a limit that could not be reached before one tries it again."""
RELEASE_WAIT_SECONDS = 5.0
"""How long a row waits for its slot to be given back before it goes on (the give-back goes on)."""
_LOCKED = 423  # the limit is full: the server says when to ask again


async def limit_exists(name: str) -> bool:
    """True when the Prefect API has a global concurrency limit called ``name``."""
    async with get_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return True


def _retry_after(answer: httpx.Response) -> float:
    try:
        seconds = float(answer.headers.get("Retry-After", 1.0))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.05), 30.0)


def _describe(error: BaseException) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"{error.response.status_code} on {error.request.url.path}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def _increment(
    name: str, mode: Literal["concurrency", "rate_limit"], lease: float
) -> dict[str, Any]:
    """One slot of ``name``, waiting while the limit is full; the server's answer."""
    while True:
        try:
            async with get_client() as client:
                if mode == "rate_limit":
                    answer = await client.increment_concurrency_slots([name], 1, mode)
                    return {"limits": answer.json()}
                answer = await client.increment_concurrency_slots_with_lease(
                    [name], 1, mode, lease_duration=lease
                )
                body: dict[str, Any] = answer.json()
                return body
        except httpx.HTTPStatusError as error:
            if error.response.status_code != _LOCKED:
                raise
            await asyncio.sleep(_retry_after(error.response))


class _Reach:
    """Whether a remote limit answers, and the one warning a run gives when it does not."""

    def __init__(self, kind: str, warning: str) -> None:
        self.kind = kind
        self.warning = warning
        self.down_since: float | None = None
        self.trying = False
        self.warned = False

    def usable(self, retry_seconds: float) -> bool:
        """Whether this row should ask the limit: always when it answers, else one row
        at a time once ``retry_seconds`` have passed."""
        if self.down_since is None:
            return True
        if self.trying or time.monotonic() - self.down_since < retry_seconds:
            return False
        self.trying = True
        return True

    def down(self, logger: Logger, name: str | None, reason: str, *more: object) -> None:
        """The limit did not answer: warn the first time, then only note it."""
        self.down_since = time.monotonic()
        self.trying = False
        if not self.warned:
            self.warned = True
            logger.warning(self.warning, name, reason, *more)
        else:
            logger.info("the %s %r is still out of reach: %s", self.kind, name, reason)

    def up(self, logger: Logger, name: str) -> None:
        """The limit answered."""
        if self.down_since is not None:
            logger.info("the %s %r answers again", self.kind, name)
        self.down_since = None
        self.trying = False


@dataclass
class _Lease:
    """A slot of the global limit held by one row (times by this process's clock)."""

    id: UUID
    taken: float
    expires: float
    lost: bool = False  # the server forgot it while it was live
    done: bool = False  # given back


class FalSlots:
    """Slots for requests in flight: a global limit when there is one, and a local bound.

    Args:
        limit_name: the global concurrency limit to hold a slot of; None for none.
        local_limit: rows in flight at once in this run, whatever the global limit.
        rate_limit_name: a global limit with slot decay that paces submits, or None.
        lease_seconds: how long a slot's lease lasts unless renewed (renewed at 3/4).
        retry_seconds: how long rows go on without a limit that could not be
            reached before one of them tries it again.
    """

    def __init__(
        self,
        limit_name: str | None,
        local_limit: int,
        rate_limit_name: str | None = None,
        *,
        lease_seconds: float = LEASE_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.limit_name = limit_name
        self.local_limit = max(1, local_limit)
        self.rate_limit_name = rate_limit_name
        self.lease_seconds = max(60.0, lease_seconds)  # the server's minimum
        self.retry_seconds = retry_seconds
        self._local = asyncio.Semaphore(self.local_limit)
        self._use_global = False
        self._logger: Logger = logging.getLogger("pika_tasks.concurrency")
        self._limit = _Reach(
            "global concurrency limit",
            "the global concurrency limit %r could not be reached (%s): rows go on under "
            "max_concurrency=%d in this run (fal queues what is beyond the account's "
            "concurrency; it never rejects it), and the limit is tried again every %gs",
        )
        self._rate = _Reach(
            "rate limit",
            "the rate limit %r could not be reached (%s): submits go on unpaced, and the "
            "limit is tried again every %gs",
        )
        self._giving_back: set[asyncio.Task[None]] = set()

    async def check(self, logger: Logger) -> None:
        """Look the limits up once, and say once what bounds this run."""
        self._logger = logger
        if self.limit_name:
            try:
                exists = await limit_exists(self.limit_name)
            except Exception as error:  # cannot tell now: rows try it, and go on without it
                self._use_global = True
                self._global_down(error)
            else:
                self._use_global = exists
                self._say_bound(exists)
        if self.rate_limit_name:
            try:
                exists = await limit_exists(self.rate_limit_name)
            except Exception as error:
                self._rate_down(error)
            else:
                if not exists:
                    logger.warning(
                        "no rate limit %r on this Prefect server: submits are not paced",
                        self.rate_limit_name,
                    )
                    self.rate_limit_name = None

    def _say_bound(self, exists: bool) -> None:
        if exists:
            self._logger.info(
                "requests in flight are bounded by the global concurrency limit %r "
                "and by max_concurrency=%d in this run",
                self.limit_name,
                self.local_limit,
            )
        else:
            self._logger.warning(
                "no global concurrency limit %r on this Prefect server: only this run's "
                "max_concurrency=%d bounds requests in flight. To share fal's account "
                "limit across runs and workers: prefect gcl create %s --limit N",
                self.limit_name,
                self.local_limit,
                self.limit_name,
            )

    def _global_down(self, error: BaseException) -> None:
        self._limit.down(
            self._logger, self.limit_name, _describe(error), self.local_limit, self.retry_seconds
        )

    def _rate_down(self, error: BaseException) -> None:
        self._rate.down(self._logger, self.rate_limit_name, _describe(error), self.retry_seconds)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one local slot, and one global slot when the limit exists and answers."""
        async with self._local:
            lease = await self._acquire()
            if lease is None:
                yield
                return
            keeping = asyncio.create_task(self._keep(lease))
            try:
                yield
            finally:
                keeping.cancel()
                await self._give_back(lease)

    async def pace_submit(self) -> None:
        """Wait for the submit rate limit, when one is configured and answers."""
        name = self.rate_limit_name
        if not name or not self._rate.usable(self.retry_seconds):
            return
        try:
            await _increment(name, "rate_limit", self.lease_seconds)
        except Exception as error:  # an unpaced submit is queued by fal all the same
            self._rate_down(error)
        except BaseException:
            self._rate.trying = False
            raise
        else:
            self._rate.up(self._logger, name)

    # ------------------------------------------------------------------ leases

    async def _acquire(self) -> _Lease | None:
        name = self.limit_name
        if not (self._use_global and name) or not self._limit.usable(self.retry_seconds):
            return None
        try:
            body = await _increment(name, "concurrency", self.lease_seconds)
        except Exception as error:  # the row goes on under the local bound
            self._global_down(error)
            return None
        except BaseException:  # cancelled: another row may try the limit
            self._limit.trying = False
            raise
        self._limit.up(self._logger, name)
        if not body.get("limits"):  # the limit was deleted while the run went on
            self._use_global = False
            self._say_bound(False)
            return None
        now = time.monotonic()
        return _Lease(UUID(str(body["lease_id"])), now, now + self.lease_seconds)

    async def _renew(self, lease: _Lease) -> bool:
        """Renew the lease; False when the server no longer has it (lost, or expired)."""
        try:
            async with get_client() as client:
                await client.renew_concurrency_lease(lease.id, self.lease_seconds)
        except httpx.HTTPStatusError as error:
            if error.response.status_code not in (404, 410):
                raise
            # Live by our clock, gone at the server: a restart forgot it while its slot
            # is still counted. Unless given back by name, the limit stays that much full.
            lease.lost = lease.lost or time.monotonic() < lease.expires - 1.0
            return False
        lease.expires = time.monotonic() + self.lease_seconds
        return True

    async def _return_by_name(self, lease: _Lease) -> None:
        """Give back the slot of a lease the server lost (raises when the API fails)."""
        if lease.done or self.limit_name is None:
            return
        held = max(0.001, time.monotonic() - lease.taken)
        async with get_client() as client:
            await client.release_concurrency_slots([self.limit_name], 1, held)
        lease.done = True
        self._logger.info(
            "a slot of %r outlived its lease at the Prefect server (restarted?): given back",
            self.limit_name,
        )

    async def _keep(self, lease: _Lease) -> None:
        """Renew the lease while the row holds it; failures are retried until it expires."""
        pause = 0.75 * self.lease_seconds
        while True:
            await asyncio.sleep(pause)
            try:
                if not await self._renew(lease):
                    if lease.lost:
                        await self._return_by_name(lease)
                    return
                pause = 0.75 * self.lease_seconds
            except Exception as error:
                self._logger.debug("could not renew a slot's lease: %s", _describe(error))
                left = lease.expires - time.monotonic()
                if left <= 0 and not lease.lost:
                    return  # the server takes the slot back on its own
                pause = min(10.0, max(left / 2, 1.0))

    async def _give_back(self, lease: _Lease) -> None:
        """Give the slot back; wait for it a moment only (the row has work to do)."""
        task = asyncio.create_task(self._release(lease))
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)
        await asyncio.wait({task}, timeout=RELEASE_WAIT_SECONDS)

    async def _release(self, lease: _Lease) -> None:
        """Give the slot back, trying again for as long as a lease lasts."""
        deadline = time.monotonic() + self.lease_seconds
        pause = 1.0
        while not lease.done:
            try:
                # A renewal first: it tells a live lease from one a restarted server lost.
                # (Should an earlier give-back have landed unanswered, the slot is given
                # back twice: the limit then admits one more for a while, which fal
                # queues; a slot never given back would shrink the limit for good.)
                if lease.lost or not await self._renew(lease):
                    if lease.lost:
                        await self._return_by_name(lease)
                    return  # else it expired: the server has taken it back
                async with get_client() as client:
                    await client.release_concurrency_slots_with_lease(lease.id)
                lease.done = True
            except Exception as error:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._logger.warning(
                        "a slot of %r could not be given back (%s); %s",
                        self.limit_name,
                        _describe(error),
                        "the limit counts it until its active slots are set again "
                        "(prefect gcl update NAME --active-slots N)"
                        if lease.lost
                        else "the Prefect server takes it back when its lease expires",
                    )
                    return
                await asyncio.sleep(min(pause, left))
                pause = min(2 * pause, 30.0)

    async def aclose(self, seconds: float = 30.0) -> None:
        """Wait (a bounded time) for slots still being given back, at the end of a run."""
        if self._giving_back:
            await asyncio.wait(set(self._giving_back), timeout=seconds)
