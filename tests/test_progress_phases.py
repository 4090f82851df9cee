"""The progress tracker on its own: rows moving through fal's queue, counted without Prefect."""

from __future__ import annotations

from pika_tasks.models import QueueStatus
from pika_tasks.pipeline import RowOutcome
from pika_tasks.progress import BatchProgress, ProgressTracker


def status(state: str, position: int | None = None) -> QueueStatus:
    return QueueStatus.model_validate(
        {"status": state, "request_id": "r", "queue_position": position}
    )


def outcome(row_id: str, status: str = "succeeded", cost: float = 0.0) -> RowOutcome:
    return RowOutcome.model_validate(
        {"id": row_id, "row_number": 1, "status": status, "cost_usd": cost}
    )


def phases(progress: BatchProgress) -> tuple[int, int, int, int | None]:
    return (
        progress.queued,
        progress.running,
        progress.downloading,
        progress.oldest_queue_position,
    )


def test_rows_move_through_the_phases_and_the_front_of_the_queue_is_followed() -> None:
    seen: list[BatchProgress] = []
    spent = [0.0]
    tracker = ProgressTracker(None, seen.append, spend=lambda: spent[0])
    tracker.start()
    for row_id, position in (("a", 0), ("b", 1), ("c", 2)):
        spent[0] += 0.2
        tracker.queued(row_id, position)
    assert phases(tracker.state) == (3, 0, 0, 0)
    assert tracker.state.spend_usd == spent[0]

    # "a" starts: the oldest waiting row is now "b", whose position fal moves up.
    tracker.status("a", status("IN_PROGRESS"))
    assert phases(tracker.state) == (2, 1, 0, 1)
    tracker.status("b", status("IN_QUEUE", 0))
    tracker.status("c", status("IN_QUEUE", 1))
    assert phases(tracker.state) == (2, 1, 0, 0)

    # fal puts "a" back in the queue (its runner failed): queued again, behind the others.
    tracker.status("a", status("IN_QUEUE", 5))
    assert phases(tracker.state) == (3, 0, 0, 0)
    tracker.status("a", status("IN_PROGRESS"))
    tracker.status("a", status("COMPLETED"))  # nothing yet: the row downloads or fails next
    assert phases(tracker.state) == (2, 1, 0, 0)
    tracker.downloading("a")
    assert phases(tracker.state) == (2, 0, 1, 0)

    tracker.finished(outcome("a", cost=0.2))
    tracker.status("b", status("IN_PROGRESS"))
    tracker.finished(outcome("b", "failed", cost=0.2))
    last = tracker.state
    assert (last.succeeded, last.failed, last.done) == (1, 1, 2)
    assert phases(last) == (1, 0, 0, 1)
    # Only the reports of finished rows name a row, once each.
    assert [p.row.id for p in seen if p.row] == ["a", "b"]
    # Each report is the state after one change; a repeated status is not a change.
    before = len(seen)
    tracker.status("c", status("IN_QUEUE", 1))
    assert len(seen) == before


def test_a_reattached_row_enters_with_its_first_status_and_unknown_positions_stay_unknown() -> None:
    tracker = ProgressTracker(total=2, callback=None)
    tracker.status("old", status("IN_QUEUE", 7))
    tracker.queued("new")  # fal's answer gave no position
    assert phases(tracker.state) == (2, 0, 0, 7)
    tracker.status("old", status("IN_PROGRESS"))
    assert phases(tracker.state) == (1, 1, 0, None)  # the waiting row's position is unknown
    assert "oldest" not in tracker.state.describe()
    tracker.status("new", status("IN_QUEUE", 0))
    assert "1 queued (oldest at position 0) · 1 running" in tracker.state.describe()


def test_each_callback_is_called_and_one_that_fails_stops_neither_the_others_nor_the_run() -> None:
    seen: list[BatchProgress] = []

    def broken(progress: BatchProgress) -> None:
        raise RuntimeError("display gone")

    tracker = ProgressTracker(1, [broken, None, seen.append])
    tracker.start()
    tracker.queued("a", 0)
    tracker.finished(outcome("a", "skipped"))
    assert [p.skipped for p in seen] == [0, 0, 1]
    assert seen[-1].remaining == 0


def test_the_total_arrives_without_repeating_the_last_finished_row() -> None:
    seen: list[BatchProgress] = []
    tracker = ProgressTracker(None, seen.append)
    tracker.finished(outcome("a", cost=0.45))
    tracker.set_total(3)
    assert [p.row.id if p.row else None for p in seen] == ["a", None]
    assert (seen[-1].total, seen[-1].remaining, seen[-1].spend_usd) == (3, 2, 0.45)
    assert seen[-1].describe().endswith("done 1 · failed 0 of 3 · $0.45 spent")
