"""Retries of idempotent calls: what is retried, how long it waits, and fal's veto."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from _client_support import expect

from pika_tasks._responses import error_for, parse_retry_after
from pika_tasks._retry import MAX_RETRY_AFTER, backoff_hook
from pika_tasks.client import PikaClient
from pika_tasks.errors import (
    FalValidationError,
    RateLimitError,
    ServerError,
    TransportError,
    is_transient,
)
from pika_tasks.models import RequestHandle

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
    # Without Retry-After the backoff would be about poll_interval (0.02 s) per retry.
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
