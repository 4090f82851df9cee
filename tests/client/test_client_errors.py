"""Every error class, produced by the emulator over loopback, and the retries of transient ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _client_support import ARGS, FAKE_KEY, expect
from support import handle_at

from pika_tasks.client import PikaClient
from pika_tasks.errors import (
    AuthenticationError,
    FalHTTPError,
    FalValidationError,
    JobFailedError,
    RateLimitError,
    RequestNotFoundError,
    ResultExpiredError,
    ServerError,
    is_transient,
)
from pika_tasks.models import RequestOptions

EmuClient = Callable[..., tuple[Any, PikaClient]]


def requests_of(emu: Any) -> dict[str, int]:
    return dict(emu.stats()["requests"])


async def until_raises(call: Callable[[], Awaitable[object]], deadline: float = 10.0) -> Exception:
    """Repeat ``call`` until it raises (a state change we cannot be told about), and return that."""
    end = time.monotonic() + deadline
    while True:
        try:
            await call()
        except Exception as error:
            return error
        assert time.monotonic() < end, "the call kept succeeding"
        await asyncio.sleep(0.05)


async def test_wrong_key_is_an_authentication_error(emu_client: EmuClient) -> None:
    emu, client = emu_client(require_key="the-right-key")
    with expect(AuthenticationError) as info:
        await client.submit(ARGS)
    assert info.value.status_code == 401
    assert "POST /fal-ai/pika/v2.2/image-to-video" in str(info.value)
    assert not is_transient(info.value)
    assert emu.stats()["submissions"] == 0


async def test_right_key_is_sent_to_every_queue_route(emu_client: EmuClient) -> None:
    emu, client = emu_client(require_key=FAKE_KEY)
    handle = await client.submit(ARGS)
    await client.status(handle)
    await client.wait(handle)
    output = await client.result(handle)
    await client.download(output.video.url, lambda chunk: None)
    await client.cancel(handle)
    assert emu.stats()["submissions"] == 1


async def test_input_refused_by_fal_is_a_validation_error(emu_client: EmuClient) -> None:
    emu, client = emu_client()
    with expect(FalValidationError, match="resolution") as info:
        await client.submit({**ARGS, "resolution": "4k"}, validate=False)
    error = info.value
    assert error.status_code == 422
    assert isinstance(error.detail, list)
    assert any("resolution" in entry["loc"] for entry in error.detail)
    assert not is_transient(error)
    assert emu.stats()["submissions"] == 0


# Fault decisions for a request id are random (ids are UUIDs); the submit route's are
# not, so each seed below is one whose first submit is refused.  Twenty retries make
# a call that fails every time vanishingly rare.
PATIENT = {"max_retries": 20}


async def test_rate_limits_are_retried_until_they_pass(emu_client: EmuClient) -> None:
    emu, client = emu_client(error_rate_429=0.5, retry_after_seconds=0.01, seed=1, settings=PATIENT)
    handle = await client.submit(ARGS)
    for _ in range(4):
        await client.status(handle)
    await client.wait(handle)
    await client.result(handle)
    stats = emu.stats()
    assert stats["faults"]["http_429"] >= 1
    assert stats["requests"]["submit"] >= 2
    assert stats["submissions"] == 1  # refused submits were resent, and queued once


async def test_rate_limit_retries_run_out(emu_client: EmuClient) -> None:
    emu, client = emu_client(error_rate_429=1.0, retry_after_seconds=0.01, fault_routes={"status"})
    handle = await client.submit(ARGS)
    with expect(RateLimitError, match=handle.request_id) as info:
        await client.status(handle)
    assert info.value.retry_after == 0.01
    assert is_transient(info.value)
    assert requests_of(emu)["status"] == client.settings.max_retries + 1


async def test_server_errors_are_retried_until_they_pass(emu_client: EmuClient) -> None:
    emu, client = emu_client(error_rate_5xx=0.4, seed=5, settings=PATIENT)
    handle = await client.submit(ARGS)
    await client.wait(handle)
    output = await client.result(handle)
    info = await client.download(output.video.url, lambda chunk: None)
    assert info.size == output.video.file_size
    stats = emu.stats()
    assert stats["faults"]["http_5xx"] >= 1
    assert stats["requests"]["submit"] >= 2
    assert stats["submissions"] == 1


async def test_server_error_retries_run_out(emu_client: EmuClient) -> None:
    emu, client = emu_client(error_rate_5xx=1.0, fault_routes={"result"})
    handle = await client.submit(ARGS)
    await client.wait(handle)
    with expect(ServerError, match="runner_scheduling_failure") as info:
        await client.result(handle)
    assert info.value.status_code == 503
    assert info.value.error_type == "runner_scheduling_failure"
    assert requests_of(emu)["result"] == client.settings.max_retries + 1


async def test_submit_refused_by_fal_is_resent_and_never_queued_twice(
    emu_client: EmuClient,
) -> None:
    emu, client = emu_client(error_rate_5xx=1.0, fault_routes={"submit"})
    with expect(ServerError):
        await client.submit(ARGS)
    assert requests_of(emu)["submit"] == client.settings.max_retries + 1
    assert emu.stats()["submissions"] == 0


async def test_unknown_request_is_not_found(emu_client: EmuClient) -> None:
    emu, client = emu_client()
    handle = handle_at(emu.url, "no-such-request")
    with expect(RequestNotFoundError, match="no-such-request") as info:
        await client.status(handle)
    assert type(info.value) is RequestNotFoundError
    assert info.value.status_code == 404
    with expect(ResultExpiredError):
        await client.result(handle)
    assert requests_of(emu)["status"] == 1  # not retried


async def test_expired_result_and_video(emu_client: EmuClient) -> None:
    _, client = emu_client(result_ttl_seconds=0.3)
    handle = await client.submit(ARGS)
    await client.wait(handle)
    output = await client.result(handle)
    gone = await until_raises(lambda: client.result(handle))
    assert isinstance(gone, ResultExpiredError)
    with expect(ResultExpiredError):
        await client.download(output.video.url, lambda chunk: None)


async def test_failed_job_raises_job_failed(emu_client: EmuClient) -> None:
    _, client = emu_client(job_failure_rate=1.0)
    seen: list[Any] = []
    handle = await client.submit(ARGS)
    with expect(JobFailedError, match=handle.request_id) as info:
        await client.wait(handle, on_status=seen.append)
    assert info.value.error_type == "internal_server_error"
    assert seen[-1].failed
    with expect(JobFailedError, match="Internal error") as info:
        await client.result(handle)
    assert not is_transient(info.value)


async def test_missed_start_deadline_is_final(emu_client: EmuClient) -> None:
    emu, client = emu_client(runners=1, job_seconds=1.0)
    await client.submit(ARGS)
    late = await client.submit(ARGS, options=RequestOptions(start_timeout=0.2))
    with expect(JobFailedError) as info:
        await client.wait(late)
    assert info.value.error_type == "request_timeout"
    with expect(JobFailedError, match="did not start"):
        await client.result(late)
    assert requests_of(emu)["result"] == 1  # fal said it is final: not retried


async def test_result_asked_too_early_is_not_a_failed_job(emu_client: EmuClient) -> None:
    _, client = emu_client(job_seconds=30.0)
    handle = await client.submit(ARGS)
    with expect(FalHTTPError, match="in progress") as info:
        await client.result(handle)
    assert type(info.value) is FalHTTPError
    assert info.value.status_code == 400


async def test_cancelled_job_has_failed(emu_client: EmuClient) -> None:
    _, client = emu_client(job_seconds=30.0)
    handle = await client.submit(ARGS)
    assert (await client.cancel(handle)).status == "CANCELLATION_REQUESTED"
    with expect(JobFailedError) as info:
        await client.wait(handle)
    assert info.value.error_type == "request_cancelled"
    with expect(JobFailedError, match="cancelled"):
        await client.result(handle)
