"""The queue calls against the emulator over loopback: submit, status, stream, wait, cancel."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from _client_support import ARGS, expect

from pika_tasks.client import PikaClient
from pika_tasks.emulator import FaultRule
from pika_tasks.errors import DownloadTimeoutError, WaitTimeoutError
from pika_tasks.models import QueueStatus

EmuClient = Callable[..., tuple[Any, PikaClient]]


@pytest.fixture(params=[False, True], ids=["on-the-callers-loop", "followed-in-a-thread"])
def follow_in_thread(request: pytest.FixtureRequest) -> bool:
    """Every test here runs twice: streams followed on the caller's loop, and on a thread."""
    return bool(request.param)


def requests_of(emu: Any) -> dict[str, int]:
    return dict(emu.stats()["requests"])


def assert_no_repeats(statuses: list[QueueStatus]) -> None:
    dumps = [status.model_dump() for status in statuses]
    assert all(a != b for a, b in itertools.pairwise(dumps))


async def test_a_job_costs_submit_stream_result_and_download(emu_client: EmuClient) -> None:
    emu, client = emu_client()
    seen: list[QueueStatus] = []
    handle = await client.submit(ARGS)
    assert handle.status_url.startswith(f"{emu.url}/fal-ai/pika/requests/")
    final = await client.wait(handle, on_status=seen.append)
    output = await client.result(handle)
    chunks: list[bytes] = []
    info = await client.download(output.video.url, chunks.append, chunk_size=4096)

    assert final.status == "COMPLETED" and not final.failed
    assert final.metrics is not None and "inference_time" in final.metrics
    assert seen[-1] == final
    assert_no_repeats(seen)
    assert {status.status for status in seen} >= {"IN_PROGRESS", "COMPLETED"}
    body = b"".join(chunks)
    # Pieces of at least chunk_size (network reads joined), the last one excepted.
    assert all(len(chunk) >= 4096 for chunk in chunks[:-1])
    assert len(chunks) <= -(-len(body) // 4096)
    assert info.size == len(body) == output.video.file_size
    assert info.sha256 == hashlib.sha256(body).hexdigest()
    assert info.content_type == "video/mp4"
    assert body[4:8] == b"ftyp"
    # One request per step: the stream replaced polling, nothing was sent twice.
    assert requests_of(emu) == {"submit": 1, "status_stream": 1, "result": 1, "file": 1}


async def test_status_answers_in_queue_then_completed(emu_client: EmuClient) -> None:
    emu, client = emu_client(runners=1, job_seconds=0.3)
    first = await client.submit(ARGS)
    second = await client.submit(ARGS)
    queued = await client.status(second)
    assert queued.status == "IN_QUEUE"
    assert queued.queue_position is not None and queued.queue_position >= 0
    assert queued.request_id == second.request_id

    await client.wait(first)
    await client.wait(second)
    done = await client.status(second, logs=True)
    assert done.done and not done.failed
    assert isinstance(done.logs, list) and done.logs
    assert requests_of(emu)["status"] == 2


async def test_stream_status_ends_with_completed(emu_client: EmuClient) -> None:
    _, client = emu_client()
    handle = await client.submit(ARGS)
    statuses = [status async for status in client.stream_status(handle)]
    assert statuses[-1].status == "COMPLETED"
    assert all(not status.done for status in statuses[:-1])
    assert all(status.request_id == handle.request_id for status in statuses)


async def test_wait_polls_when_the_stream_is_refused(emu_client: EmuClient) -> None:
    emu, client = emu_client(error_rate_5xx=1.0, fault_routes={"status_stream"})
    seen: list[str] = []
    handle = await client.submit(ARGS)
    final = await client.wait(handle, on_status=lambda status: seen.append(status.status))
    assert final.status == "COMPLETED"
    assert seen[-1] == "COMPLETED"
    requests = requests_of(emu)
    # A stream that never delivered is not tried again: polling takes over.
    assert requests["status_stream"] == 1
    assert requests["status"] >= 1


async def test_wait_polls_through_an_outage_longer_than_a_calls_retries(
    emu_client: EmuClient,
) -> None:
    """The job goes on at fal (and is billed) while our network is down: a wait ends at
    its deadline or the job's end, not when one status call has spent its retries."""
    emu, client = emu_client(
        job_seconds=0.3,
        error_rate_5xx=1.0,
        fault_routes={"status_stream"},
        settings={"max_retries": 1},
    )
    handle = await client.submit(ARGS)
    # Three status calls in a row fail, each after its one retry.
    emu.inject(FaultRule(route="status", fault="runner_disconnected", times=6))
    final = await client.wait(handle, timeout=60)
    assert final.status == "COMPLETED"
    assert requests_of(emu)["status"] >= 7


async def test_wait_polls_when_the_stream_goes_silent(emu_client: EmuClient) -> None:
    emu, client = emu_client(
        job_seconds=1.5, keepalive_seconds=30.0, settings={"sse_idle_timeout": 0.2}
    )
    handle = await client.submit(ARGS)
    final = await client.wait(handle)
    assert final.status == "COMPLETED"
    requests = requests_of(emu)
    # Each silent stream was dropped; after a few reconnects, polling finished the wait.
    assert 2 <= requests["status_stream"] <= 4
    assert requests["status"] >= 1


async def test_wait_gives_up_at_its_deadline_without_cancelling(emu_client: EmuClient) -> None:
    emu, client = emu_client(job_seconds=30.0)
    handle = await client.submit(ARGS)
    with expect(WaitTimeoutError, match=handle.request_id) as info:
        await client.wait(handle, timeout=0.3)
    assert info.value.request_id == handle.request_id
    assert emu.stats()["cancellations"] == 0


async def test_wait_awaits_an_async_callback(emu_client: EmuClient) -> None:
    _, client = emu_client()
    seen: list[QueueStatus] = []

    async def on_status(status: QueueStatus) -> None:
        seen.append(status)

    handle = await client.submit(ARGS)
    final = await client.wait(handle, on_status=on_status)
    assert seen[-1] == final
    assert_no_repeats(seen)


async def test_wait_follows_a_job_that_goes_back_to_the_queue(emu_client: EmuClient) -> None:
    _, client = emu_client(runner_failure_rate=1.0, job_seconds=0.3)
    states: list[str] = []
    handle = await client.submit(ARGS)
    final = await client.wait(handle, on_status=lambda status: states.append(status.status))
    assert final.status == "COMPLETED" and not final.failed
    first_run = states.index("IN_PROGRESS")
    assert "IN_QUEUE" in states[first_run:]


async def test_cancel_answers_without_raising(emu_client: EmuClient) -> None:
    emu, client = emu_client(runners=1, job_seconds=0.3)
    running = await client.submit(ARGS)
    waiting = await client.submit(ARGS)

    answer = await client.cancel(waiting)
    assert answer.status == "CANCELLATION_REQUESTED"
    await client.wait(running)
    assert (await client.cancel(running)).status == "ALREADY_COMPLETED"
    unknown = waiting.model_copy(
        update={"cancel_url": waiting.cancel_url.replace(waiting.request_id, "no-such-id")}
    )
    assert (await client.cancel(unknown)).status == "NOT_FOUND"
    assert emu.stats()["cancellations"] >= 1


async def test_client_never_builds_endpoint_path_urls(emu_client: EmuClient) -> None:
    emu, client = emu_client()
    handle = await client.submit(ARGS)
    await client.wait(handle)
    await client.status(handle)
    await client.result(handle)
    await client.cancel(handle)
    for url in (handle.status_url, handle.response_url, handle.cancel_url):
        assert "/v2.2/image-to-video" not in url
        assert url.startswith(f"{emu.url}/fal-ai/pika/requests/{handle.request_id}")
    # Every call landed on a known route (an endpoint-path URL would have been a 404).
    assert requests_of(emu) == {
        "submit": 1,
        "status_stream": 1,
        "status": 1,
        "result": 1,
        "cancel": 1,
    }


async def test_a_prefetched_result_is_asked_for_once(emu_client: EmuClient) -> None:
    emu, client = emu_client()
    handle = await client.submit(ARGS)
    await client.wait(handle, prefetch_result=True)
    output = await client.result(handle)
    assert output.video.url.startswith(emu.url)
    # The prefetch was taken by result(): one result request, none on a second call.
    assert requests_of(emu)["result"] == 1
    assert (await client.result(handle)) == output
    assert requests_of(emu)["result"] == 2


async def test_a_cancel_goes_out_even_when_its_caller_is_cancelled(emu_client: EmuClient) -> None:
    import asyncio
    import contextlib

    emu, client = emu_client(job_seconds=30)
    handle = await client.submit(ARGS)
    caller = asyncio.create_task(client.cancel(handle))
    await asyncio.sleep(0)  # one turn of the loop: the cancel has been asked for
    caller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await caller
    await client.aclose()  # waits for the cancel on its way
    assert requests_of(emu)["cancel"] == 1
    assert emu.stats()["cancellations"] == 1


@pytest.mark.parametrize("deadline", [None, 60.0])
async def test_a_writers_own_timeout_is_not_taken_for_the_downloads_deadline(
    emu_client: EmuClient, deadline: float | None
) -> None:
    """The store a video is copied to can time out (an S3 upload): that error is raised as
    it is, not reported as the download's own deadline having passed."""
    _, client = emu_client()
    handle = await client.submit(ARGS)
    await client.wait(handle)
    output = await client.result(handle)

    def write(piece: bytes) -> None:
        raise TimeoutError("the bucket did not answer")

    with pytest.raises(TimeoutError, match="the bucket did not answer") as info:
        await client.download(output.video.url, write, timeout=deadline)
    assert not isinstance(info.value, DownloadTimeoutError)
