"""Retries of idempotent calls: what is retried, how long it waits, fal's veto, and a
retry log that says "retrying" only when a retry follows (the last failure of a call
with no attempt left is logged as giving up)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from _client_support import expect, quick_settings

from pika_tasks._responses import error_for, parse_retry_after
from pika_tasks._retry import backoff_hook, retrying_caller
from pika_tasks.client import PikaClient
from pika_tasks.errors import (
    FalValidationError,
    RateLimitError,
    ServerError,
    TransportError,
    is_transient,
)
from pika_tasks.models import RequestHandle
from pika_tasks.retry_policy import MAX_RETRY_AFTER
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
IN_QUEUE = {"status": "IN_QUEUE", "request_id": "r-1", "queue_position": 2}


def scripted(
    make_client: Callable[..., PikaClient], answers: list[httpx.Response | Exception]
) -> tuple[PikaClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return make_client(BASE, http=http), seen


async def test_retry_after_is_honoured(make_client: Callable[..., PikaClient]) -> None:
    busy = httpx.Response(429, headers={"Retry-After": "0.25"}, json={"detail": "slow down"})
    client, seen = scripted(make_client, [busy, busy, httpx.Response(202, json=IN_QUEUE)])
    started = time.monotonic()
    status = await client.status(HANDLE)
    # Without Retry-After the backoff would be about retry_initial_delay (0.02 s) per retry.
    assert time.monotonic() - started >= 0.5
    assert status.status == "IN_QUEUE" and status.queue_position == 2
    assert len(seen) == 3


async def test_a_long_retry_after_is_left_to_the_caller(
    make_client: Callable[..., PikaClient],
) -> None:
    busy = httpx.Response(429, headers={"Retry-After": "120"}, json={"detail": "queue full"})
    client, seen = scripted(make_client, [busy])
    with expect(RateLimitError, match="queue full") as info:
        await client.status(HANDLE)
    assert info.value.retry_after == 120.0
    assert len(seen) == 1


async def test_network_errors_on_reads_are_retried(make_client: Callable[..., PikaClient]) -> None:
    answers: list[httpx.Response | Exception] = [
        httpx.ReadError("connection reset"),
        httpx.ConnectTimeout("slow"),
        httpx.Response(202, json=IN_QUEUE),
    ]
    client, seen = scripted(make_client, answers)
    assert (await client.status(HANDLE, logs=True)).status == "IN_QUEUE"
    assert len(seen) == 3
    assert seen[0].url.params["logs"] == "1"


async def test_network_errors_that_persist_are_transport_errors(
    make_client: Callable[..., PikaClient],
) -> None:
    client, seen = scripted(make_client, [httpx.ReadTimeout("") for _ in range(4)])
    with expect(TransportError, match="r-1") as info:
        await client.cancel(HANDLE)
    assert "ReadTimeout" in str(info.value)
    assert is_transient(info.value)
    assert len(seen) == 4


async def test_a_user_start_timeout_is_final(make_client: Callable[..., PikaClient]) -> None:
    late = httpx.Response(
        504,
        json={"detail": "did not start", "error_type": "request_timeout"},
        headers={"X-Fal-Error-Type": "request_timeout", "X-Fal-Request-Timeout-Type": "user"},
    )
    client, seen = scripted(make_client, [late])
    with expect(ServerError, match="request_timeout") as info:
        await client.status(HANDLE)
    assert info.value.retryable is False
    assert not is_transient(info.value)
    assert len(seen) == 1


def test_backoff_hook() -> None:
    assert backoff_hook(ServerError("x", status_code=503)) is True
    assert backoff_hook(RateLimitError("x", status_code=429, retry_after=2.5)) == 2.5
    too_long = RateLimitError("x", status_code=429, retry_after=MAX_RETRY_AFTER + 1)
    assert backoff_hook(too_long) is False
    assert backoff_hook(ServerError("x", status_code=504, retryable=False)) is False
    assert backoff_hook(FalValidationError("x", status_code=422)) is False
    assert backoff_hook(ValueError("not ours")) is False


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later) == pytest.approx(30, abs=2)


def test_validation_message_names_the_fields() -> None:
    request = httpx.Request("POST", f"{BASE}/fal-ai/pika/v2.2/image-to-video")
    detail = [
        {"loc": ["body", "resolution"], "msg": "Input should be '720p' or '1080p'"},
        {"loc": ["body", "duration"], "msg": "Input should be 5 or 10"},
    ]
    response = httpx.Response(422, json={"detail": detail}, request=request)
    error = error_for(response, request_id="r-9")
    assert isinstance(error, FalValidationError)
    assert error.detail == detail
    assert "resolution: Input should be '720p' or '1080p'" in str(error)
    assert "duration: Input should be 5 or 10" in str(error)
    assert "POST /fal-ai/pika/v2.2/image-to-video" in str(error) and "r-9" in str(error)


# -- the retry log ------------------------------------------------------------


def quick(max_retries: int) -> PikaSettings:
    """Settings with backoff waits of milliseconds."""
    return quick_settings(
        BASE, retry_initial_delay=0.001, retry_max_delay=0.005, max_retries=max_retries
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
