"""Waiting for a condition: polled against a deadline, never a sleep standing in for a wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    what: str = "the condition",
    timeout: float = 60.0,
    *,
    interval: float = 0.05,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    Fails with an ``AssertionError`` naming ``what`` and the last value seen
    once ``timeout`` seconds have passed.

    >>> wait_until(lambda: 42, "the answer")
    42
    >>> wait_until(lambda: 0, "a zero to be true", timeout=0.01)
    Traceback (most recent call last):
    AssertionError: timed out after 0.01 s waiting for a zero to be true (last seen: 0)
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(what, timeout, value))
        time.sleep(interval)


async def wait_until_async(
    check: Callable[[], Awaitable[T]],
    what: str = "the condition",
    timeout: float = 60.0,
    *,
    interval: float = 0.05,
) -> T:
    """:func:`wait_until` for a coroutine ``check``, sleeping on the event loop between calls.

    >>> async def ready() -> str:
    ...     return "ready"
    >>> asyncio.run(wait_until_async(ready, "readiness"))
    'ready'
    """
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(what, timeout, value))
        await asyncio.sleep(interval)


def _timed_out(what: str, timeout: float, last: object) -> str:
    shown = repr(last)
    if len(shown) > 2000:
        shown = shown[:2000] + "..."
    return f"timed out after {timeout:g} s waiting for {what} (last seen: {shown})"
