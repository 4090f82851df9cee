"""Progress of a batch as rows move through fal's queue and finish, for whoever shows it.

The batch flow takes an optional ``on_progress`` callable and calls it with a
:class:`BatchProgress` at the start, once the manifest is counted, whenever a
row changes phase at fal (queued, running, downloading) and whenever a row
finishes.  It knows nothing of how progress is shown: ``pika-tasks run`` draws
it with Rich, the run's progress artifact shows :meth:`BatchProgress.describe`,
a notebook could print it.

Example:
    >>> from pika_tasks.progress import ProgressTracker
    >>> from pika_tasks.pipeline import RowOutcome
    >>> seen = []
    >>> tracker = ProgressTracker(total=2, callback=seen.append)
    >>> tracker.start()
    >>> tracker.queued("a", position=3)
    >>> tracker.queued("b", position=4)
    >>> seen[-1].queued, seen[-1].oldest_queue_position
    (2, 3)
    >>> tracker.downloading("a")
    >>> tracker.finished(RowOutcome(id="a", row_number=1, status="succeeded", cost_usd=0.2))
    >>> last = seen[-1]
    >>> last.done, last.remaining, last.queued, last.downloading, last.row.id
    (1, 1, 1, 0, 'a')
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from pika_tasks.models import QueueStatus
from pika_tasks.pipeline import RowOutcome

__all__ = ["BatchProgress", "ProgressCallback", "ProgressTracker", "RowPhase", "RowWatcher"]

logger = logging.getLogger("pika_tasks.progress")

RowPhase = Literal["queued", "running", "downloading"]
"""Where a row at fal is: waiting in fal's queue, being generated, or being copied out."""


class BatchProgress(BaseModel):
    """Where a batch stands.

    Attributes:
        total: rows in the manifest, valid or not; None until the run has
            counted them (rows start before the whole manifest is read).
        succeeded: rows whose video was written in this run.
        failed: rows that failed (including invalid and refused rows).
        skipped: rows already done before this run.
        cancelled: rows given up when the run was cancelled.
        queued: rows submitted (or re-attached) and waiting in fal's queue.
        running: rows fal is generating.
        downloading: rows whose video is being copied to the output.
        oldest_queue_position: fal's queue position of the waiting row
            nearest the front of fal's queue: fal serves in submit order, so
            it is the row that has waited longest (None when no row waits, or
            fal has not said).
        spend_usd: money committed so far at list prices (submitted rows).
        row: the row that just finished; None in the other reports.

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
    queued: int = 0
    running: int = 0
    downloading: int = 0
    oldest_queue_position: int | None = None
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

    def describe(self) -> str:
        """One line for people: fal's queue, the rows done and failed, the spend.

        "done" counts rows with a video (made now, or skipped as made before);
        "failed" counts failed and cancelled rows.

        Example:
            >>> BatchProgress(total=9, succeeded=2, skipped=1, failed=1, queued=3,
            ...               oldest_queue_position=7, running=2, spend_usd=1.4).describe()
            'at fal: 3 queued (oldest at position 7) · 2 running · 0 downloading | done 3 · failed 1 of 9 · $1.40 spent'
        """  # noqa: E501
        oldest = self.oldest_queue_position
        position = f" (oldest at position {oldest})" if self.queued and oldest is not None else ""
        of = "" if self.total is None else f" of {self.total}"
        return (
            f"at fal: {self.queued} queued{position} · {self.running} running · "
            f"{self.downloading} downloading | done {self.succeeded + self.skipped} · "
            f"failed {self.failed + self.cancelled}{of} · ${self.spend_usd:.2f} spent"
        )


ProgressCallback = Callable[[BatchProgress], object]
"""``on_progress(progress)``: called in the flow's event loop; keep it quick."""


class RowWatcher(Protocol):
    """Told where each row is at fal (what :class:`ProgressTracker` takes from the row steps)."""

    def queued(self, row_id: str, position: int | None = None) -> None:
        """The row was submitted: it waits in fal's queue (at ``position`` if known)."""
        ...

    def status(self, row_id: str, status: QueueStatus) -> None:
        """fal reported the row's status while it was waited for."""
        ...

    def downloading(self, row_id: str) -> None:
        """fal finished the row: its video is being copied out."""
        ...


@dataclass
class _AtFal:
    phase: RowPhase
    position: int | None = None


class ProgressTracker:
    """Follows the rows at fal and counts finished rows; reports each change to callbacks.

    A row enters fal's queue when its submit is answered (:meth:`queued`) or
    when a re-attached row's first status arrives (:meth:`status`), moves
    with fal's statuses, starts downloading when fal is done with it
    (:meth:`downloading`) and leaves when it finishes (:meth:`finished`).
    The oldest waiting row is the one nearest the front of fal's queue (fal
    serves in submit order; our submits' answers may arrive in another
    order): its position is the one to watch to tell a long queue from a
    stuck one.

    Changes that alter nothing shown (the same status twice) are not
    reported.  A callback that raises is logged and otherwise ignored:
    showing progress must never break a run.

    Args:
        total: rows in the manifest, or None until counted (see :meth:`set_total`).
        callback: receives a :class:`BatchProgress` after every change: one
            callable, several (each called in turn), or None.
        spend: returns the money committed so far (default: the sum of the
            finished rows' ``cost_usd``).
    """

    def __init__(
        self,
        total: int | None,
        callback: ProgressCallback | Sequence[ProgressCallback | None] | None,
        spend: Callable[[], float] | None = None,
    ) -> None:
        if callback is None:
            callbacks: list[ProgressCallback] = []
        elif callable(callback):
            callbacks = [callback]
        else:
            callbacks = [each for each in callback if each is not None]
        self._callbacks = callbacks
        self._spend = spend
        self._at_fal: dict[str, _AtFal] = {}
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
        self._report(self._state.model_copy(update={"total": total, "row": None}))

    def queued(self, row_id: str, position: int | None = None) -> None:
        """The row's submit was answered: it waits in fal's queue."""
        self._at_fal[row_id] = _AtFal("queued", position)
        self._changed()

    def status(self, row_id: str, status: QueueStatus) -> None:
        """A status of the row from fal: IN_QUEUE (with its position) or IN_PROGRESS.

        COMPLETED changes nothing here: the row downloads (:meth:`downloading`)
        or fails (:meth:`finished`) next.  fal may put a running row back in
        the queue when its runner fails; it is then queued again.
        """
        if status.status == "IN_QUEUE":
            entry = _AtFal("queued", status.queue_position)
        elif status.status == "IN_PROGRESS":
            entry = _AtFal("running")
        else:
            return
        if self._at_fal.get(row_id) != entry:
            self._at_fal[row_id] = entry
            self._changed()

    def downloading(self, row_id: str) -> None:
        """fal is done with the row; its video is being copied out."""
        self._at_fal[row_id] = _AtFal("downloading")
        self._changed()

    def finished(self, outcome: RowOutcome) -> None:
        """Count one finished row and report it."""
        if outcome.id is not None:
            self._at_fal.pop(outcome.id, None)
        state = self._state
        counts = {
            "succeeded": state.succeeded,
            "failed": state.failed,
            "skipped": state.skipped,
            "cancelled": state.cancelled,
        }
        counts[outcome.status] += 1
        spend = self._spend() if self._spend else state.spend_usd + outcome.cost_usd
        update = {**counts, **self._phases(), "spend_usd": spend, "row": outcome}
        self._report(state.model_copy(update=update))

    def _phases(self) -> dict[str, int | None]:
        counts: dict[str, int | None] = {"queued": 0, "running": 0, "downloading": 0}
        positions: list[int] = []
        for entry in self._at_fal.values():
            counts[entry.phase] = (counts[entry.phase] or 0) + 1
            if entry.phase == "queued" and entry.position is not None:
                positions.append(entry.position)
        return {**counts, "oldest_queue_position": min(positions, default=None)}

    def _changed(self) -> None:
        state = self._state
        update = {
            **self._phases(),
            "spend_usd": self._spend() if self._spend else state.spend_usd,
        }
        # Compared field by field: this runs for every status of every row at fal.
        if any(getattr(state, name) != value for name, value in update.items()):
            self._report(state.model_copy(update={**update, "row": None}))
        elif state.row is not None:
            self._state = state.model_copy(update={"row": None})

    def _report(self, state: BatchProgress) -> None:
        self._state = state
        for callback in self._callbacks:
            try:
                callback(state)
            except Exception:
                logger.exception("a progress callback failed; the run goes on")
