"""The cheap first pass over a manifest, run beside the rows it counts.

Rows stream, so a run does not know its size when its first row starts.
:class:`FirstPass` reads the manifest once more in a thread (no image reads),
with one listing of the output, to count the rows and price the ones certain
to be submitted (:func:`~pika_tasks.pipeline.scan_manifest`).  Paid submits
wait for it when the run has a budget cap (:meth:`FirstPass.paid_submit_allowed`),
so a run over its cap pays nothing, and the count feeds the progress display.

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

from pika_tasks.budget import Budget, BudgetRefusedError, usd
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
        self._task: asyncio.Task[tuple[ManifestScan, dict[str, list[str]]]] | None = None
        self.refusal: str | None = None
        self.stale_partials: dict[str, list[str]] = {}
        self._merged = False

    def _survey(self) -> tuple[ManifestScan, dict[str, list[str]]]:
        # Blocking: two listings of the output and one read of the manifest, in a thread.
        partials = stale_partials(self._out.url, self._out.storage_options)
        recorded = self._out.recorded_ids()
        return scan_manifest(self._items(), recorded_ids=recorded, prices=self._prices), partials

    def start(self) -> None:
        """Start reading, beside whatever the run does meanwhile."""
        self._task = asyncio.create_task(asyncio.to_thread(self._survey))

    def cancel(self) -> None:
        """Stop reading (the run ended first)."""
        if self._task is not None:
            self._task.cancel()

    async def counted(self) -> ManifestScan:
        """The pass's figures, once read; the refusal decided with them."""
        assert self._task is not None, "start() first"
        scan, partials = await asyncio.shield(self._task)
        if not self._merged:
            self._merged = True  # once: rows pop the temporaries they clean up
            self.stale_partials.update(partials)
        if self.refusal is None and not self._budget.allows(scan.new_usd):
            self.refusal = (
                f"not started: the {scan.new} rows to submit cost {usd(scan.new_usd)} at list "
                f"prices, more than max_spend_usd {usd(self._budget.limit_usd or 0.0)}"
            )
            self._logger.error("%s; nothing was submitted", self.refusal)
        return scan

    async def paid_submit_allowed(self) -> None:
        """Wait for the pass; raise :class:`BudgetRefusedError` when the run is over its cap."""
        await self.counted()
        if self.refusal is not None:
            raise BudgetRefusedError(self.refusal)
