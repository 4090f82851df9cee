"""Progress of a batch as rows finish, for whoever displays it (the CLI's live view).

The batch flow takes an optional ``on_progress`` callable and calls it with a
:class:`BatchProgress` once the manifest is planned and again each time a row
finishes.  It knows nothing of how progress is shown; the ``pika-tasks run``
command draws it with Rich, a notebook could print it.

Example:
    >>> from pika_tasks.progress import ProgressTracker
    >>> from pika_tasks.pipeline import RowOutcome
    >>> seen = []
    >>> tracker = ProgressTracker(total=2, callback=seen.append)
    >>> tracker.start()
    >>> tracker.finished(RowOutcome(id="a", row_number=1, status="succeeded", cost_usd=0.2))
    >>> last = seen[-1]
    >>> last.done, last.remaining, last.spend_usd, last.row.id
    (1, 1, 0.2, 'a')
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from pika_tasks.pipeline import RowOutcome

__all__ = ["BatchProgress", "ProgressCallback", "ProgressTracker"]

logger = logging.getLogger("pika_tasks.progress")


class BatchProgress(BaseModel):
    """Where a batch stands.

    Attributes:
        total: rows in the manifest, valid or not; None until the run has
            counted them (rows start before the whole manifest is read).
        succeeded: rows whose video was written in this run.
        failed: rows that failed (including invalid and refused rows).
        skipped: rows already done before this run.
        cancelled: rows given up when the run was cancelled.
        spend_usd: money committed so far at list prices (submitted rows).
        row: the row that just finished; None in the first report.

    Example:
        >>> BatchProgress(total=3, succeeded=1, failed=1).remaining
        1
    """

    model_config = ConfigDict(frozen=True)

    total: int | None
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    spend_usd: float = 0.0
    row: RowOutcome | None = None

    @property
    def done(self) -> int:
        """Rows finished one way or another."""
        return self.succeeded + self.failed + self.skipped + self.cancelled

    @property
    def remaining(self) -> int | None:
        """Rows not finished yet (None until the rows are counted)."""
        return None if self.total is None else max(0, self.total - self.done)


ProgressCallback = Callable[[BatchProgress], object]
"""``on_progress(progress)``: called in the flow's event loop; keep it quick."""


class ProgressTracker:
    """Counts finished rows and reports each change to a callback.

    A callback that raises is logged and otherwise ignored: showing progress
    must never break a run.

    Args:
        total: rows in the manifest, or None until counted (see :meth:`set_total`).
        callback: receives a :class:`BatchProgress` after every change (or None).
        spend: returns the money committed so far (default: the sum of the
            finished rows' ``cost_usd``).
    """

    def __init__(
        self,
        total: int | None,
        callback: ProgressCallback | None,
        spend: Callable[[], float] | None = None,
    ) -> None:
        self._callback = callback
        self._spend = spend
        self._state = BatchProgress(total=total)

    @property
    def state(self) -> BatchProgress:
        """The latest progress."""
        return self._state

    def start(self) -> None:
        """Report the starting point (nothing finished yet)."""
        self._report(self._state)

    def set_total(self, total: int) -> None:
        """The manifest's row count, once counted, and report it."""
        self._report(self._state.model_copy(update={"total": total}))

    def finished(self, outcome: RowOutcome) -> None:
        """Count one finished row and report it."""
        state = self._state
        counts = {
            "succeeded": state.succeeded,
            "failed": state.failed,
            "skipped": state.skipped,
            "cancelled": state.cancelled,
        }
        counts[outcome.status] += 1
        spend = self._spend() if self._spend else state.spend_usd + outcome.cost_usd
        self._report(state.model_copy(update={**counts, "spend_usd": spend, "row": outcome}))

    def _report(self, state: BatchProgress) -> None:
        self._state = state
        if self._callback is None:
            return
        try:
            self._callback(state)
        except Exception:
            logger.exception("the progress callback failed; the run goes on")
