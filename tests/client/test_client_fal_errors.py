"""Every infrastructure error fal documents, injected by the emulator, classified by the client.

fal's semantics, route by route:

- ``runner_*``, ``internal_error`` and timeouts that are not the caller's own
  are fal's infrastructure failing: transient on status, result and cancel
  (retried), and a refusal on submit (resent: fal's queue answered, with its
  request id, so it did not queue the job);
- a 504 with ``X-Fal-Request-Timeout-Type: user`` is the caller's own start
  deadline: final everywhere (a failed job on result);
- a 499 is fal saying the request was aborted: reported as such, never retried;
- a bare gateway page is transient on the idempotent routes, and a lost
  answer on submit: never resent.

Each test arms a rule for one request on a shared emulator and counts what
reached it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _client_support import ARGS, expect

from pika_tasks.client import PikaClient
from pika_tasks.emulator import EmulatorServer, FaultRule
from pika_tasks.emulator._infra import FAULTS, INFRA_ERRORS
from pika_tasks.errors import (
    FalHTTPError,
    FalValidationError,
    JobFailedError,
    RequestAbortedError,
    ServerError,
    SubmitOutcomeUnknownError,
    is_transient,
)
from pika_tasks.models import RequestHandle

# fal's infrastructure failing, as opposed to the caller's deadline or the caller going away.
FAL_REFUSALS = sorted(name for name, spec in INFRA_ERRORS.items() if spec.status_code >= 500)
TRANSIENT = [*FAL_REFUSALS, "gateway_502", "gateway_504"]
ROUTES = ["status", "result", "cancel"]


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[EmulatorServer, dict[str, str]]]:
    """An emulator and one completed job (its submit answer), shared by the tests here."""
    with EmulatorServer(job_seconds=0.05, fps=2) as emu, httpx.Client(timeout=30) as http:
        answer = http.post(f"{emu.url}/fal-ai/pika/v2.2/image-to-video", json=ARGS).json()
        while http.get(answer["status_url"]).status_code != 200:
            pass  # each poll is a round trip; the job takes about 0.05 s
        yield emu, answer


@pytest.fixture
def emu(shared: tuple[EmulatorServer, dict[str, str]]) -> Iterator[EmulatorServer]:
    server = shared[0]
    server.clear_faults()
    yield server
    server.clear_faults()


@pytest.fixture
def done(shared: tuple[EmulatorServer, dict[str, str]]) -> RequestHandle:
    """The handle of the completed job."""
    answer = shared[1]
    return RequestHandle(
        request_id=answer["request_id"],
        status_url=answer["status_url"],
        response_url=answer["response_url"],
        cancel_url=answer["cancel_url"],
        endpoint_id="fal-ai/pika/v2.2/image-to-video",
    )


@pytest.fixture
def client(emu: EmulatorServer, make_client: Callable[..., PikaClient]) -> PikaClient:
    return make_client(emu.url, max_retries=2, retry_initial_delay=0.01, retry_max_delay=0.02)


def hits(emu: EmulatorServer, route: str) -> int:
    return int(emu.stats()["requests"].get(route, 0))


async def call(client: PikaClient, route: str, handle: RequestHandle) -> Any:
    if route == "status":
        return await client.status(handle)
    if route == "result":
        return await client.result(handle)
    return await client.cancel(handle)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", TRANSIENT)
async def test_infrastructure_failures_are_retried_on_idempotent_routes(
    fault: str, route: str, emu: EmulatorServer, client: PikaClient, done: RequestHandle
) -> None:
    emu.inject(FaultRule(route, fault, request_id=done.request_id))
    before = hits(emu, route)
    await call(client, route, done)
    assert hits(emu, route) == before + 2  # the fault, then the retry that succeeded


@pytest.mark.parametrize("route", ROUTES)
async def test_infrastructure_errors_that_persist_surface_as_server_errors(
    route: str, emu: EmulatorServer, client: PikaClient, done: RequestHandle
) -> None:
    rule = FaultRule(route, "runner_connection_refused", times=None, request_id=done.request_id)
    emu.inject(rule)
    before = hits(emu, route)
    with expect(ServerError, match=done.request_id) as info:
        await call(client, route, done)
    assert info.value.error_type == "runner_connection_refused"
    assert info.value.request_id == done.request_id
    assert is_transient(info.value)
    assert hits(emu, route) == before + 3  # max_retries=2


@pytest.mark.parametrize("route", ["status", "cancel"])
async def test_a_user_start_timeout_is_final(
    route: str, emu: EmulatorServer, client: PikaClient, done: RequestHandle
) -> None:
    emu.inject(FaultRule(route, "user_timeout", times=None, request_id=done.request_id))
    before = hits(emu, route)
    with expect(ServerError, match="request_timeout") as info:
        await call(client, route, done)
    assert info.value.status_code == 504 and info.value.retryable is False
    assert not is_transient(info.value)
    assert hits(emu, route) == before + 1


async def test_a_user_start_timeout_on_the_result_is_a_failed_job(
    emu: EmulatorServer, client: PikaClient, done: RequestHandle
) -> None:
    emu.inject(FaultRule("result", "user_timeout", times=None, request_id=done.request_id))
    before = hits(emu, "result")
    with expect(JobFailedError, match="did not start") as info:
        await client.result(done)
    assert info.value.error_type == "request_timeout"
    assert hits(emu, "result") == before + 1


async def test_a_timeout_that_is_not_the_user_s_is_retried(
    emu: EmulatorServer, client: PikaClient, done: RequestHandle
) -> None:
    emu.inject(FaultRule("result", "request_timeout", request_id=done.request_id))
    output = await client.result(done)
    assert output.video.content_type == "video/mp4"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", ["client_disconnected", "client_cancelled"])
async def test_a_499_is_reported_as_an_aborted_request(
    fault: str, route: str, emu: EmulatorServer, client: PikaClient, done: RequestHandle
) -> None:
    emu.inject(FaultRule(route, fault, times=None, request_id=done.request_id))
    before = hits(emu, route)
    with expect(RequestAbortedError, match=f"aborted \\[{fault}\\]") as info:
        await call(client, route, done)
    assert info.value.status_code == 499 and info.value.error_type == fault
    assert info.value.request_id == done.request_id
    assert not is_transient(info.value)
    assert hits(emu, route) == before + 1


async def test_a_499_on_submit_is_not_resent_and_says_where_to_look(
    emu: EmulatorServer, client: PikaClient
) -> None:
    emu.inject("submit=client_disconnected")
    before = emu.stats()
    with expect(RequestAbortedError, match="dashboard") as info:
        await client.submit(ARGS)
    after = emu.stats()
    assert after["requests"]["submit"] == before["requests"]["submit"] + 1
    assert after["submissions"] == before["submissions"]
    assert info.value.request_id is not None and info.value.request_id in str(info.value)


@pytest.mark.parametrize("route", ["status", "cancel"])
async def test_bad_request_is_not_retried(
    route: str, emu: EmulatorServer, client: PikaClient, done: RequestHandle
) -> None:
    emu.inject(FaultRule(route, "bad_request", times=None, request_id=done.request_id))
    before = hits(emu, route)
    with expect(FalHTTPError, match="bad_request") as info:
        await call(client, route, done)
    assert type(info.value) is FalHTTPError and info.value.status_code == 400
    assert not is_transient(info.value)
    assert hits(emu, route) == before + 1


async def test_bad_request_on_the_result_is_fal_s_word_on_the_job(
    emu: EmulatorServer, client: PikaClient, done: RequestHandle
) -> None:
    emu.inject(FaultRule("result", "bad_request", times=None, request_id=done.request_id))
    before = hits(emu, "result")
    with expect(JobFailedError, match="malformed") as info:
        await client.result(done)
    assert info.value.error_type == "bad_request"
    assert hits(emu, "result") == before + 1


async def test_bad_request_on_submit_is_not_resent(emu: EmulatorServer, client: PikaClient) -> None:
    emu.inject("submit=bad_request")
    before = emu.stats()
    with expect(FalHTTPError, match="bad_request"):
        await client.submit(ARGS)
    after = emu.stats()
    assert after["requests"]["submit"] == before["requests"]["submit"] + 1
    assert after["submissions"] == before["submissions"]


@pytest.mark.parametrize("fault", FAL_REFUSALS)
async def test_fal_s_own_refusal_of_a_submit_is_resent(
    fault: str, emu: EmulatorServer, client: PikaClient
) -> None:
    emu.inject(f"submit={fault}")
    before = emu.stats()
    await client.submit(ARGS)
    after = emu.stats()
    assert after["requests"]["submit"] == before["requests"]["submit"] + 2
    assert after["submissions"] == before["submissions"] + 1


async def test_a_user_start_timeout_on_submit_is_not_resent(
    emu: EmulatorServer, client: PikaClient
) -> None:
    emu.inject("submit=user_timeout")
    before = emu.stats()["requests"]["submit"]
    with expect(ServerError, match="request_timeout"):
        await client.submit(ARGS)
    assert emu.stats()["requests"]["submit"] == before + 1


@pytest.mark.parametrize("fault", ["gateway_502", "gateway_504"])
@pytest.mark.parametrize("queued", [False, True])
async def test_a_gateway_page_on_submit_is_a_lost_answer_never_resent(
    fault: str, queued: bool, emu: EmulatorServer, client: PikaClient
) -> None:
    emu.inject(FaultRule("submit", fault, queued=queued))
    before = emu.stats()
    with expect(SubmitOutcomeUnknownError, match="gateway") as info:
        await client.submit(ARGS)
    after = emu.stats()
    assert after["requests"]["submit"] == before["requests"]["submit"] + 1
    # Whether the gateway had handed the job on or not, the client cannot know.
    assert after["submissions"] == before["submissions"] + int(queued)
    assert info.value.request_id is None
    assert str(FAULTS[fault].status_code) in str(info.value)


async def test_errors_name_fal_s_request_id_when_there_is_no_handle(
    emu: EmulatorServer, client: PikaClient
) -> None:
    with expect(FalValidationError, match="resolution") as info:
        await client.submit({**ARGS, "resolution": "4k"}, validate=False)
    request_id = info.value.request_id
    assert request_id is not None and request_id in str(info.value)


async def test_logs_name_fal_s_request_id(
    client: PikaClient, done: RequestHandle, caplog: pytest.LogCaptureFixture
) -> None:
    await client.status(done)
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("pika")]
    assert any(f"x-fal-request-id {done.request_id}" in line for line in lines)


async def test_a_submit_answer_without_an_id_in_its_body_takes_the_header(
    make_client: Callable[..., PikaClient],
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "IN_QUEUE"}, headers={"x-fal-request-id": "h1"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    handle = await make_client("https://queue.test", http=http).submit(ARGS)
    assert handle.request_id == "h1"
    assert handle.status_url == "https://queue.test/fal-ai/pika/requests/h1/status"
