"""A client that follows status streams on a thread notices completions while its caller is busy.

A flow's event loop runs hundreds of task runs; with ``follow_in_thread`` a
job's completion (and the request for its result) does not wait for that
loop.  The caller's loop is blocked here for real, by a status callback that
does not return until the emulator has been asked for the result.  Every
other behaviour of ``wait`` is checked in both modes by test_client_queue.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _client_support import ARGS, quick_settings
from support import wait_until

from pika_tasks.client import PikaClient
from pika_tasks.models import QueueStatus
from pika_tasks.settings import PikaSettings


@pytest.fixture
def follow_in_thread() -> bool:
    return True


def results_asked(emu: Any) -> int:
    return int(emu.stats()["requests"].get("result", 0))


def blocking_until_the_result_is_asked(
    emu: Any, seen: list[tuple[str, int]], timeout: float
) -> Callable[[QueueStatus], None]:
    """A status callback that, once the job runs, holds its loop until the result is asked for."""

    def on_status(status: QueueStatus) -> None:
        seen.append((status.status, threading.get_ident()))
        if status.status == "IN_PROGRESS" and [s for s, _ in seen].count("IN_PROGRESS") == 1:
            # No await here: the caller's event loop is blocked for as long as this runs.
            wait_until(lambda: results_asked(emu) == 1, "a result request", timeout)

    return on_status


async def test_the_result_is_asked_for_while_the_callers_loop_is_blocked(
    make_emulator: Callable[..., Any], make_client: Callable[..., PikaClient]
) -> None:
    emu = make_emulator(job_seconds=0.3, fps=4)
    client = make_client(emu.url)
    seen: list[tuple[str, int]] = []
    handle = await client.submit(ARGS)

    final = await client.wait(
        handle,
        on_status=blocking_until_the_result_is_asked(emu, seen, timeout=30),
        prefetch_result=True,
    )
    output = await client.result(handle)

    assert final.status == "COMPLETED" and not final.failed
    assert output.video.url.startswith(emu.url)
    assert results_asked(emu) == 1  # result() took what the thread asked for
    # Statuses reached the callback on the caller's thread, in order, COMPLETED last.
    assert {ident for _, ident in seen} == {threading.get_ident()}
    assert [s for s, _ in seen][-1] == "COMPLETED"
    assert "IN_PROGRESS" in [s for s, _ in seen]
    await client.aclose()
    assert not [t for t in threading.enumerate() if t.name.startswith("pika-follow-")]


async def test_on_the_callers_loop_a_blocked_loop_asks_for_nothing(
    make_emulator: Callable[..., Any],
) -> None:
    """The contrast: without the thread, nothing is asked for while the loop is blocked."""
    emu = make_emulator(job_seconds=0.3, fps=4)
    seen: list[tuple[str, int]] = []
    async with PikaClient(quick_settings(emu.url)) as client:
        handle = await client.submit(ARGS)
        with pytest.raises(AssertionError, match="a result request"):
            await client.wait(
                handle,
                on_status=blocking_until_the_result_is_asked(emu, seen, timeout=1.5),
                prefetch_result=True,
            )
    assert results_asked(emu) == 0
    assert emu.stats()["completed"] >= 1  # the job was done all along


async def test_queue_positions_a_busy_loop_was_not_shown_are_merged_into_the_latest(
    make_emulator: Callable[..., Any], make_client: Callable[..., PikaClient]
) -> None:
    # One runner and three jobs ahead: the followed job's position falls to 0 while the
    # caller's loop is blocked in its first report, until the thread has read COMPLETED.
    emu = make_emulator(runners=1, job_seconds=0.2, fps=4)
    client = make_client(emu.url)
    for _ in range(3):
        await client.submit(ARGS)
    handle = await client.submit(ARGS)
    seen: list[QueueStatus] = []

    def on_status(status: QueueStatus) -> None:
        seen.append(status)
        if len(seen) == 1:
            wait_until(lambda: results_asked(emu) == 1, "the followed job's result", 30)

    final = await client.wait(handle, on_status=on_status, prefetch_result=True)

    assert final.status == "COMPLETED"
    queued = [status.queue_position for status in seen if status.status == "IN_QUEUE"]
    # The first position, then only the latest of those read meanwhile (2 or more of them).
    assert len(queued) == 2 and queued[0] is not None and queued[0] >= 2, queued
    assert queued[1] == 0
    states = [status.status for status in seen]
    assert states[:2] == ["IN_QUEUE", "IN_QUEUE"] and states[-1] == "COMPLETED"
    assert set(states[2:-1]) == {"IN_PROGRESS"}  # each with its logs, in order
    await client.aclose()


async def test_a_given_http_client_and_a_thread_of_its_own_are_refused() -> None:
    # The thread cannot use the caller's connections (they belong to the caller's loop);
    # making others silently would bypass what they were set up with (a proxy, say).
    async with httpx.AsyncClient() as http:
        with pytest.raises(TypeError, match=r"follow_in_thread .* cannot take http="):
            PikaClient(PikaSettings(fal_key="k"), http=http, follow_in_thread=True)
        PikaClient(PikaSettings(fal_key="k"), http=http)  # each alone is fine
    PikaClient(PikaSettings(fal_key="k"), follow_in_thread=True)
