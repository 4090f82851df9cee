"""Rows as a stream: read, planned and run as they come, with bounded memory.

:func:`stream_rows` drives a manifest's rows through three stages joined by
small queues:

1. a reader takes rows from the manifest (a blocking iterator, read in a
   thread a few rows at a time);
2. ``lookahead`` planners read and check each row's image and look its record
   up (:class:`~pika_tasks.pipeline.Planner`); rows that need no work (done
   already, or reported) finish right there;
3. ``workers`` runners take planned rows through submit, wait and fetch.

The first row starts as soon as it is read and planned, whatever the
manifest's size, and at most ``workers`` plus four times ``lookahead`` rows
are held at any time.  Every row ends in exactly one call of ``on_outcome``.

Example:
    >>> import asyncio
    >>> from pika_tasks.manifest import ManifestRow, RowError
    >>> items = [RowError(row_number=1, field="seed", reason="is not a number")]
    >>> seen = []
    >>> async def planned(row): raise AssertionError("no valid row")
    >>> asyncio.run(stream_rows(iter(items), plan=planned, run=planned,
    ...                         on_outcome=seen.append, workers=2, lookahead=2))
    >>> seen[0].error
    "row 1, field 'seed': is not a number"
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from pika_tasks.manifest import ManifestRow, RowError
from pika_tasks.pipeline._plan import Action, RowPlan
from pika_tasks.pipeline._report import RowOutcome, invalid_row_outcome

__all__ = ["started", "stream_rows"]

T = TypeVar("T")
_DONE = object()  # closes a queue: one per consumer

OutcomeSink = Callable[[RowOutcome], Awaitable[None] | None]


def _take(items: Iterator[T], count: int) -> list[T]:
    return list(itertools.islice(items, count))


async def started(items: Iterator[T]) -> Iterator[T]:
    """``items``, with the first one read already (in a thread).

    A manifest that cannot be read at all raises its
    :class:`~pika_tasks.manifest.ManifestError` here, before any row is worked on.
    """
    head = await asyncio.to_thread(_take, items, 1)
    return itertools.chain(head, items)


async def stream_rows(
    items: Iterator[ManifestRow | RowError],
    *,
    plan: Callable[[ManifestRow], Awaitable[RowPlan | RowOutcome]],
    run: Callable[[RowPlan], Awaitable[RowOutcome]],
    on_outcome: OutcomeSink,
    workers: int,
    lookahead: int,
) -> None:
    """Plan and run every row of ``items``; hand each row's outcome to ``on_outcome``.

    Args:
        items: the manifest's rows and refused rows, in file order (a blocking
            iterator, such as :func:`~pika_tasks.manifest.iter_manifest`'s).
        plan: plans one row (or fails it).
        run: takes a planned row to its outcome; never raises for the row's own trouble.
        on_outcome: called once per row as it finishes (may be async).
        workers: rows run at once.
        lookahead: rows read and planned ahead of the runners.

    Rows run in a task group: when the caller is cancelled, this returns only
    once every row has unwound (so the cancels rows send to fal go out).
    """
    workers, lookahead = max(1, workers), max(1, lookahead)
    rows: asyncio.Queue[object] = asyncio.Queue(maxsize=lookahead)
    plans: asyncio.Queue[object] = asyncio.Queue(maxsize=lookahead)

    async def finish(outcome: RowOutcome) -> None:
        done = on_outcome(outcome)
        if inspect.isawaitable(done):
            await done

    async def read() -> None:
        while batch := await asyncio.to_thread(_take, items, lookahead):
            for item in batch:
                if isinstance(item, RowError):
                    await finish(invalid_row_outcome(item))
                else:
                    await rows.put(item)
        for _ in range(lookahead):
            await rows.put(_DONE)

    async def planner() -> None:
        while (row := await rows.get()) is not _DONE:
            assert isinstance(row, ManifestRow)
            planned = await plan(row)
            if isinstance(planned, RowOutcome):
                await finish(planned)
            elif planned.action in (Action.SKIP, Action.UNKNOWN):
                await finish(await run(planned))  # no work at fal: no runner needed
            else:
                await plans.put(planned)

    async def planners() -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(lookahead):
                group.create_task(planner())
        for _ in range(workers):
            await plans.put(_DONE)

    async def runner() -> None:
        while (planned := await plans.get()) is not _DONE:
            assert isinstance(planned, RowPlan)
            await finish(await run(planned))

    async with asyncio.TaskGroup() as group:
        group.create_task(read())
        group.create_task(planners())
        for _ in range(workers):
            group.create_task(runner())
