"""Rows stream: the first row starts before the last is read, and few rows are held at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pipeline_support import plan_of, row

from pika_tasks.manifest import ManifestRow, RowError
from pika_tasks.pipeline import Action, RowOutcome, RowPlan, stream_rows

pytestmark = pytest.mark.timeout(30)


class Tally:
    """Rows read from the manifest and rows finished, and how many were held at once."""

    def __init__(self) -> None:
        self.read = 0
        self.finished = 0
        self.most_held = 0
        self.started: list[int] = []
        self.read_when_first_started: int | None = None

    def items(self, rows: int, bad: set[int] = frozenset()) -> Iterator[ManifestRow | RowError]:
        for number in range(1, rows + 1):
            self.read += 1
            self.most_held = max(self.most_held, self.read - self.finished)
            if number in bad:
                yield RowError(row_number=number, field="seed", reason="is not a number")
            else:
                yield row(number)

    async def plan(self, item: ManifestRow) -> RowPlan:
        await asyncio.sleep(0)
        return plan_of(item, Action.SKIP if item.row_number % 10 == 0 else Action.SUBMIT)

    async def run(self, plan: RowPlan) -> RowOutcome:
        if not self.started:
            self.read_when_first_started = self.read
        self.started.append(plan.row.row_number)
        await asyncio.sleep(0.001)
        status = "skipped" if plan.action is Action.SKIP else "succeeded"
        return RowOutcome(id=plan.row.id, row_number=plan.row.row_number, status=status)

    def finish(self, outcome: RowOutcome) -> None:
        self.finished += 1


async def test_the_first_row_runs_long_before_the_last_is_read() -> None:
    tally = Tally()
    outcomes: list[RowOutcome] = []

    def finish(outcome: RowOutcome) -> None:
        tally.finish(outcome)
        outcomes.append(outcome)

    await stream_rows(
        tally.items(2000),
        plan=tally.plan,
        run=tally.run,
        on_outcome=finish,
        workers=4,
        lookahead=4,
    )
    assert tally.read_when_first_started is not None
    # Far from the 2,000th row: at most what the reader, queues and planners hold.
    assert tally.read_when_first_started <= 4 + 4 * 4, tally.read_when_first_started
    assert sorted(o.row_number for o in outcomes) == list(range(1, 2001))


@pytest.mark.parametrize(("workers", "lookahead"), [(1, 1), (4, 2), (8, 8)])
async def test_rows_held_are_bounded_by_workers_and_lookahead(workers: int, lookahead: int) -> None:
    tally = Tally()
    await stream_rows(
        tally.items(1000),
        plan=tally.plan,
        run=tally.run,
        on_outcome=tally.finish,
        workers=workers,
        lookahead=lookahead,
    )
    assert tally.finished == 1000
    # Read but unfinished rows: the reader's batch, two queues, planners and runners.
    assert tally.most_held <= workers + 4 * lookahead, tally.most_held


async def test_refused_rows_and_rows_with_nothing_to_do_finish_without_a_runner() -> None:
    tally = Tally()
    outcomes: dict[int, RowOutcome] = {}
    await stream_rows(
        tally.items(30, bad={3, 7}),
        plan=tally.plan,
        run=tally.run,
        on_outcome=lambda o: outcomes.setdefault(o.row_number, o),
        workers=2,
        lookahead=2,
    )
    assert len(outcomes) == 30
    assert outcomes[3].status == "failed"
    assert outcomes[3].error == "row 3, field 'seed': is not a number"
    assert [n for n, o in outcomes.items() if o.status == "skipped"] == [10, 20, 30]
    assert 3 not in tally.started and 10 in tally.started


async def test_an_async_outcome_sink_is_awaited() -> None:
    tally = Tally()
    seen: list[int] = []

    async def finish(outcome: RowOutcome) -> None:
        await asyncio.sleep(0)
        seen.append(outcome.row_number)

    await stream_rows(
        tally.items(5), plan=tally.plan, run=tally.run, on_outcome=finish, workers=2, lookahead=1
    )
    assert sorted(seen) == [1, 2, 3, 4, 5]
