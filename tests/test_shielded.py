"""``shielded()``: money-protecting work runs to its end through every kind of cancellation."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from prefect.utilities.timeout import timeout_async

from pika_tasks._shielded import shielded

pytestmark = pytest.mark.timeout(30)


class Work:
    """A piece of work that takes until ``go`` is set, and notes how it ended."""

    def __init__(self, fails: bool = False) -> None:
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self.fails = fails
        self.finished = False

    async def __call__(self) -> str:
        self.started.set()
        await self.go.wait()
        self.finished = True
        if self.fails:
            raise OSError("the store refused")
        return "done"


async def test_a_caller_cancelled_twice_still_waits_for_the_work_then_is_cancelled() -> None:
    work = Work()
    caller = asyncio.create_task(shielded(work()))
    await work.started.wait()
    caller.cancel()
    await asyncio.sleep(0)
    caller.cancel()  # a task group cancelling its members again
    await asyncio.sleep(0)
    assert not caller.done()  # still waiting for the work
    work.go.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert work.finished


async def test_an_asyncio_timeout_waits_for_the_work_then_times_out() -> None:
    work = Work()
    asyncio.get_running_loop().call_later(0.2, work.go.set)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await shielded(work())
    assert work.finished


async def test_prefects_task_timeout_waits_for_the_work_then_times_out() -> None:
    # An anyio scope, which cancels again at every await while it is cancelled.
    work = Work()
    asyncio.get_running_loop().call_later(0.2, work.go.set)
    with pytest.raises(TimeoutError), timeout_async(0.01):
        await shielded(work())
    assert work.finished


async def test_the_works_error_reaches_a_caller_that_was_not_cancelled() -> None:
    work = Work(fails=True)
    work.go.set()
    with pytest.raises(OSError, match="refused"):
        await shielded(work())


async def test_a_cancelled_caller_does_not_leave_the_works_error_unseen() -> None:
    loop = asyncio.get_running_loop()
    unseen: list[str] = []
    loop.set_exception_handler(lambda _, context: unseen.append(context["message"]))
    work = Work(fails=True)
    caller = asyncio.create_task(shielded(work()))
    await work.started.wait()
    (running,) = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "Work.__call__"]
    running_ref = weakref.ref(running)
    del running
    caller.cancel()
    await asyncio.sleep(0)
    work.go.set()
    try:
        await caller
    except asyncio.CancelledError:
        cancelled = True
    del caller
    gc.collect()  # an error nobody saw is reported when its task is collected
    assert cancelled and work.finished
    assert running_ref() is None
    assert unseen == []
