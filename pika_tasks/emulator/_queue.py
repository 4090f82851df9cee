"""The waiting line: jobs in submit order, ``low`` priority behind ``normal``.

A job whose runner failed goes back to the front (ahead of every job that
never started, in submit order among such jobs).  Positions are answered in
O(log n) so that thousands of queued jobs can be polled cheaply.

Example:
    >>> from pika_tasks.emulator._queue import JobQueue
    >>> line: JobQueue[str] = JobQueue()
    >>> line.push("a", seq=1); line.push("b", seq=2); line.push("z", seq=3, priority="low")
    >>> line.position("z"), line.pop(), line.position("z")
    (2, 'a', 1)
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from pika_tasks.models import Priority

T = TypeVar("T", bound=Hashable)

_Key = tuple[int, int]
_LANES: tuple[Priority, ...] = ("normal", "low")


class JobQueue(Generic[T]):
    """Items waiting for a runner, ordered by (priority, re-queued first, submit order)."""

    def __init__(self) -> None:
        self._lanes: dict[Priority, list[_Key]] = {lane: [] for lane in _LANES}
        self._items: dict[_Key, T] = {}
        self._where: dict[T, tuple[Priority, _Key]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, item: object) -> bool:
        return item in self._where

    def __iter__(self) -> Iterator[T]:
        """Items in the order they will start."""
        for lane in _LANES:
            for key in self._lanes[lane]:
                yield self._items[key]

    def push(
        self, item: T, *, seq: int, priority: Priority = "normal", front: bool = False
    ) -> None:
        """Add ``item`` (submission number ``seq``); ``front`` for a re-queued job."""
        key: _Key = (0 if front else 1, seq)
        bisect.insort(self._lanes[priority], key)
        self._items[key] = item
        self._where[item] = (priority, key)

    def pop(self) -> T | None:
        """Take the item that starts next, or ``None`` when empty."""
        for lane in _LANES:
            keys = self._lanes[lane]
            if keys:
                key = keys.pop(0)
                item = self._items.pop(key)
                del self._where[item]
                return item
        return None

    def remove(self, item: T) -> bool:
        """Take ``item`` out of the line; False if it was not waiting."""
        place = self._where.pop(item, None)
        if place is None:
            return False
        lane, key = place
        keys = self._lanes[lane]
        del keys[bisect.bisect_left(keys, key)]
        del self._items[key]
        return True

    def position(self, item: T) -> int | None:
        """How many items start before ``item`` (0 = next), or ``None`` if not waiting."""
        place = self._where.get(item)
        if place is None:
            return None
        lane, key = place
        ahead = bisect.bisect_left(self._lanes[lane], key)
        if lane == "low":
            ahead += len(self._lanes["normal"])
        return ahead
