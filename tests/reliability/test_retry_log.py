"""The retry log tells the truth: a failure is logged as "retrying" only when a retry
follows, and the last failure of a call that has no attempt left as giving up.

Through the client (a status call answered by a scripted transport) and through
the caller alone (a coroutine that fails as told), with stamina's real backoff
shortened by the settings.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from pika_tasks._retry import retrying_caller
from pika_tasks.client import PikaClient
from pika_tasks.errors import RateLimitError, ServerError, TransportError
from pika_tasks.models import RequestHandle
from pika_tasks.settings import PikaSettings

BASE = "https://queue.test"
ROOT = f"{BASE}/fal-ai/pika/requests/r-1"
HANDLE = RequestHandle(
    request_id="r-1",
    status_url=f"{ROOT}/status",
    response_url=ROOT,
    cancel_url=f"{ROOT}/cancel",
    endpoint_id="fal-ai/pika/v2.2/image-to-video",
)
IN_QUEUE = {"status": "IN_QUEUE", "request_id": "r-1", "queue_position": 0}


def quick(max_retries: int) -> PikaSettings:
    """Settings with waits short enough for tests."""
    return PikaSettings(
        fal_key="fal-test-KEY-retry-log",
        queue_url=BASE,
        storage_url=BASE,
        poll_interval=0.001,
        max_poll_interval=0.005,
        max_retries=max_retries,
    )


def retry_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The client's retry decisions, in order."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "pika_tasks.client"
        and record.getMessage().startswith(("retrying", "giving up"))
    ]


class Failing:
    """A call that raises ``errors`` one after another, then returns ``"done"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="pika_tasks.client")
    return caplog


async def test_a_call_that_never_succeeds_retries_then_gives_up(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    seen: list[httpx.Request] = []

    def always_busy(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503, json={"detail": "No runner could be scheduled"})

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(always_busy)) as http,
        PikaClient(quick(max_retries=2), http=http) as client,
    ):
        with pytest.raises(ServerError):
            await client.status(HANDLE)

    log = retry_log(debug_log)
    assert len(seen) == 3
    assert [line.split(" ", 2)[:2] for line in log] == [
        ["retrying", "(2"],
        ["retrying", "(1"],
        ["giving", "up"],
    ]
    assert log[-1].startswith("giving up after 3 attempts: ")
    assert "503" in log[-1]


async def test_a_call_that_succeeds_on_its_last_attempt_never_gives_up(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    answers = [httpx.Response(503, json={"detail": "busy"})] * 2 + [
        httpx.Response(202, json=IN_QUEUE)
    ]

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(lambda _: answers.pop(0))) as http,
        PikaClient(quick(max_retries=2), http=http) as client,
    ):
        assert (await client.status(HANDLE)).status == "IN_QUEUE"

    assert [line.split(" (")[0] for line in retry_log(debug_log)] == ["retrying", "retrying"]


@pytest.mark.parametrize("max_retries", [0, 1, 4])
async def test_as_many_retries_are_logged_as_are_made(
    max_retries: int, debug_log: pytest.LogCaptureFixture
) -> None:
    call = Failing(*(ServerError("busy", status_code=503) for _ in range(10)))

    with pytest.raises(ServerError):
        await retrying_caller(quick(max_retries))(call)

    log = retry_log(debug_log)
    assert call.calls == max_retries + 1
    assert sum(line.startswith("retrying") for line in log) == max_retries
    attempts = "1 attempt" if max_retries == 0 else f"{max_retries + 1} attempts"
    assert log[-1] == f"giving up after {attempts}: busy"
    assert sum(line.startswith("giving up") for line in log) == 1


async def test_a_retry_after_is_logged_as_the_wait_it_asks_for(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    call = Failing(
        RateLimitError("slow down", status_code=429, retry_after=0.01),
        RateLimitError("slow down", status_code=429, retry_after=0.01),
    )

    with pytest.raises(RateLimitError):
        await retrying_caller(quick(max_retries=1))(call)

    log = retry_log(debug_log)
    assert log[0].startswith("retrying in 0.01s as asked (Retry-After, 1 attempt left)")
    assert log[1] == "giving up after 2 attempts: slow down"


async def test_final_errors_are_neither_retried_nor_given_up(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    call = Failing(ServerError("final", status_code=504, retryable=False))

    with pytest.raises(ServerError):
        await retrying_caller(quick(max_retries=3))(call)

    assert call.calls == 1
    assert retry_log(debug_log) == []


async def test_concurrent_calls_count_their_own_attempts(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    """One caller serves many calls at once (as the client does): none steals attempts."""
    caller = retrying_caller(quick(max_retries=2))
    calls = [Failing(*(TransportError(f"reset {n}") for _ in range(2))) for n in range(5)]

    results = await asyncio.gather(*(caller(call) for call in calls))

    assert results == ["done"] * 5
    assert [call.calls for call in calls] == [3] * 5
    log = retry_log(debug_log)
    assert len(log) == 10 and all(line.startswith("retrying") for line in log)
