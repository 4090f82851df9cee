"""The cheap first pass over a manifest, run beside the rows it counts.

Rows stream, so a run does not know its size when its first row starts.
:class:`FirstPass` lists the output once (:meth:`FirstPass.list_output`: which
rows have records, which temporaries interrupted runs left) and reads the
manifest once more in a thread, with no image reads, to count the rows and
price the ones certain to be submitted (:func:`~pika_tasks.pipeline.scan_manifest`).
Paid submits wait for it when the run has a budget cap
(:meth:`FirstPass.paid_submit_allowed`), so a run over its cap pays nothing;
without a cap it can start once the first row is at fal, so that parsing a
large manifest never delays the first submit.  The count feeds the progress display.

Example:
    >>> import asyncio
    >>> from pika_tasks.budget import Budget
    >>> from pika_tasks.manifest import ManifestRow
    >>> from pika_tasks.pricing import PriceTable
    >>> from pika_tasks.records import OutputLocation
    >>> rows = [ManifestRow(row_number=n, id=f"r{n}", image="/a.png", prompt="p") for n in (1, 2)]
    >>> async def refused() -> str | None:
    ...     first = FirstPass(lambda: iter(rows), OutputLocation("memory://first-pass-doc"),
    ...                       PriceTable(), Budget(limit_usd=0.3))
    ...     await first.list_output()
    ...     first.start()
    ...     await first.counted()
    ...     return first.refusal
    >>> asyncio.run(refused())
    'not started: the 2 rows to submit cost $0.40 at list prices, more than max_spend_usd $0.30'
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

from pika_tasks.budget import Budget, BudgetRefusedError
from pika_tasks.manifest import ManifestRow, RowError
from pika_tasks.pipeline._plan import ManifestScan, scan_manifest
from pika_tasks.pricing import PriceTable
from pika_tasks.records import OutputLocation
from pika_tasks.storage import stale_partials

__all__ = ["FirstPass"]

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class FirstPass:
    """Counts and prices a manifest beside the run, and gates paid submits on a budget.

    Args:
        items: opens a fresh pass over the manifest's rows.
        out: the output location (its records say which rows are new).
        prices: list prices.
        budget: the run's cap.
        logger: where the count and a refusal are said.
    """

    def __init__(
        self,
        items: Callable[[], Iterator[ManifestRow | RowError]],
        out: OutputLocation,
        prices: PriceTable,
        budget: Budget,
        logger: Logger | None = None,
    ) -> None:
        self._items = items
        self._out = out
        self._prices = prices
        self._budget = budget
        self._logger = logger or logging.getLogger("pika_tasks.pipeline")
        self._task: asyncio.Task[ManifestScan] | None = None
        self._recorded: set[str] = set()
        self.refusal: str | None = None
        self._judged = False
        self.stale_partials: dict[str, list[str]] = {}
        self.started = asyncio.Event()

    async def list_output(self) -> None:
        """List the output: its records and the temporaries interrupted runs left there."""
        partials = await asyncio.to_thread(stale_partials, self._out.url, self._out.storage_options)
        self._recorded = await asyncio.to_thread(self._out.recorded_ids)
        self.stale_partials.update(partials)

    def start(self) -> None:
        """Start reading the manifest, beside whatever the run does meanwhile (idempotent)."""
        self.started.set()
        if self._task is None:
            self._task = asyncio.create_task(
                asyncio.to_thread(
                    scan_manifest, self._items(), recorded_ids=self._recorded, prices=self._prices
                )
            )

    def cancel(self) -> None:
        """Stop reading (the run ended first)."""
        if self._task is not None:
            self._task.cancel()

    async def counted(self) -> ManifestScan:
        """The pass's figures, once read; the refusal decided with them, once."""
        self.start()
        assert self._task is not None
        scan = await asyncio.shield(self._task)
        if self._judged:
            return scan
        # Judged once, by the first caller to resume, while this run has reserved nothing:
        # every paid submit waits here before its own reservation.  Judged again later, the
        # run's own reservations would count twice (they are part of the price counted).
        self._judged = True
        if self._budget.limit_usd is not None:
            self.refusal = scan.over_cap(self._budget.limit_usd)
        if self.refusal is not None:
            self._logger.error("%s; nothing was submitted", self.refusal)
        return scan

    async def paid_submit_allowed(self) -> None:
        """Wait for the pass; raise :class:`BudgetRefusedError` when the run is over its cap."""
        await self.counted()
        if self.refusal is not None:
            raise BudgetRefusedError(self.refusal)
