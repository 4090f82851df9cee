"""Taking a row's claim before paying for it, waiting on other runs, keeping the lease alive.

See :mod:`pika_tasks.claims` for what a claim is.  :class:`RowClaims` is how a
run uses them: :meth:`RowClaims.hold` takes the row's claim (taking over a
stale one), or waits while a live run holds it; while the row is in flight a
background task renews the lease; when the row ends the claim is released.
Whoever holds the claim reads the row's record again and decides anew, so a
row another run finished meanwhile is skipped, never paid twice.

Example:
    >>> import asyncio
    >>> from pika_tasks.claims import ClaimBook, Holder
    >>> from pika_tasks.records import OutputLocation
    >>> book = ClaimBook(OutputLocation("memory://claiming-doc/out"))
    >>> async def held_twice() -> tuple[bool, bool]:
    ...     first = RowClaims(book, Holder(flow_run_id="one"), wait_seconds=0.1)
    ...     second = RowClaims(book, Holder(flow_run_id="two"), wait_seconds=0.1)
    ...     async with first.hold("a") as mine:
    ...         async with second.hold("a") as theirs:
    ...             return isinstance(mine, Claim), isinstance(theirs, HeldElsewhere)
    >>> asyncio.run(held_twice())
    (True, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from pika_tasks._shielded import shielded
from pika_tasks.claims import Claim, ClaimBook, Holder
from pika_tasks.errors import ClaimLostError

__all__ = ["HeldElsewhere", "RowClaims"]

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass(frozen=True)
class HeldElsewhere:
    """Another live run held the row for longer than this run would wait."""

    holder: Holder

    def reason(self, row_id: str) -> str:
        """The report's words for the row."""
        return (
            f"{row_id}: not submitted by this run: {self.holder.describe()} is making it "
            "(its claim was live for as long as this run waited)"
        )


@dataclass
class RowClaims:
    """A run's use of the claims at its output location.

    Args:
        book: the claims at the output location.
        holder: this run.
        run_is_over: tells whether a flow run has ended (crashed, cancelled,
            finished); None when only leases and processes can tell.
        wait_seconds: how long to wait for a row a live run holds.
        poll_seconds: the longest pause between two looks at such a row.
        logger: where waiting is said.
    """

    book: ClaimBook
    holder: Holder
    run_is_over: Callable[[str], Awaitable[bool]] | None = None
    wait_seconds: float = 1800.0
    poll_seconds: float = 2.0
    logger: Logger = field(default_factory=lambda: logging.getLogger("pika_tasks.pipeline"))

    async def _stale(self, claim: Claim) -> bool:
        if claim.lease_expired() or claim.process_gone():
            return True
        run_id = claim.holder.flow_run_id
        return bool(
            self.run_is_over is not None
            and run_id
            and run_id != self.holder.flow_run_id
            and await self.run_is_over(run_id)
        )

    async def _take(self, row_id: str) -> Claim | Holder:
        """The claim taken, or the live holder that has it."""
        current = await asyncio.to_thread(self.book.current, row_id)
        if current is not None and not await self._stale(current):
            return current.holder
        if current is not None:
            self.logger.info(
                "%s: taking over the claim of %s, which is over", row_id, current.holder.describe()
            )
        taken = await asyncio.to_thread(self.book.take, row_id, self.holder, over=current)
        if taken is not None:
            return taken
        # Another run created that generation first: it holds the row now.
        newest = await asyncio.to_thread(self.book.current, row_id)
        return newest.holder if newest is not None else await self._take(row_id)

    async def _renew(self, claim: Claim) -> None:
        interval = self.book.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                claim = await asyncio.to_thread(self.book.renew, claim)
            except OSError as error:  # the next renewal may get through before the lease ends
                self.logger.warning("%s: could not renew its claim: %s", claim.row_id, error)

    async def confirm(self, claim: Claim) -> None:
        """Make sure ``claim`` is still the row's newest: checked just before a paid submit.

        A lease that lapsed while the row waited (for fal's slot, for the budget check)
        lets another run take the row over; that run decides from the record, which
        does not say "submitting" yet, so only this check keeps both from paying.

        Raises:
            ClaimLostError: another run holds the row now.
        """
        current = await asyncio.to_thread(self.book.current, claim.row_id)
        if current is not None and current.generation == claim.generation:
            return
        holder = current.holder.describe() if current is not None else "another run"
        raise ClaimLostError(
            f"{claim.row_id}: not submitted by this run: its claim lapsed and {holder} "
            "took the row over"
        )

    @contextlib.asynccontextmanager
    async def hold(self, row_id: str) -> AsyncIterator[Claim | HeldElsewhere]:
        """Hold the row's claim for the block, or say who held it for too long."""
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.1
        said = False
        while isinstance(got := await self._take(row_id), Holder):
            if not said:
                self.logger.info("%s: held by %s; waiting for it", row_id, got.describe())
                said = True
            if time.monotonic() >= deadline:
                yield HeldElsewhere(got)
                return
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, self.poll_seconds)
        renewal = asyncio.create_task(self._renew(got))
        try:
            yield got
        finally:
            renewal.cancel()
            # A cancelled row still gives its claim back for the next run.
            await shielded(asyncio.to_thread(self.book.release, got))
