"""A submit is resent only when fal provably did not queue the job.

Faults a real server cannot be asked for (an answer lost after the request
arrived, a connection that never opened, a gateway page) come from a tiny raw
socket server or from ``httpx.MockTransport``; each test counts the requests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from _client_support import ARGS, FAKE_KEY, expect
from pydantic import ValidationError
from support import free_port

from pika_tasks.client import PikaClient
from pika_tasks.errors import (
    FalHTTPError,
    ServerError,
    SubmitOutcomeUnknownError,
    TransportError,
)
from pika_tasks.models import ImageToVideoInput, RequestOptions

BASE = "http://queue.test"
SUBMIT_URL = f"{BASE}/fal-ai/pika/v2.2/image-to-video"


def queued(request_id: str = "req-1", **extra: object) -> httpx.Response:
    root = f"{BASE}/fal-ai/pika/requests/{request_id}"
    body = {
        "request_id": request_id,
        "status": "IN_QUEUE",
        "status_url": f"{root}/status",
        "response_url": root,
        "cancel_url": f"{root}/cancel",
        "queue_position": 0,
        **extra,
    }
    return httpx.Response(200, json=body)


@dataclass
class Recorder:
    """A MockTransport handler that answers from a script and keeps every request."""

    answers: list[httpx.Response | Exception]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def mock_client(make_client: Callable[..., PikaClient]) -> Callable[[Recorder], PikaClient]:
    def build(recorder: Recorder) -> PikaClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
        return make_client(BASE, http=http)

    return build


@dataclass
class RawServer:
    """Accepts, reads one whole request, then closes without answering (or hangs)."""

    hang: bool = False
    requests: int = 0
    url: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        self.requests += 1
        if self.hang:
            await self.release.wait()
        writer.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[tuple[RawServer, asyncio.Server]] = []

    async def start(hang: bool = False) -> RawServer:
        raw = RawServer(hang=hang)
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        raw.url = f"http://127.0.0.1:{port}"
        servers.append((raw, server))
        return raw

    yield start
    for raw, server in servers:
        raw.release.set()
        server.close()
        await server.wait_closed()


async def test_lost_answer_is_not_resent(
    raw_server: Callable[..., Awaitable[RawServer]], make_client: Callable[..., PikaClient]
) -> None:
    raw = await raw_server()
    client = make_client(raw.url)
    with expect(SubmitOutcomeUnknownError, match="answer was lost"):
        await client.submit(ARGS)
    assert raw.requests == 1


async def test_read_timeout_is_not_resent(
    raw_server: Callable[..., Awaitable[RawServer]], make_client: Callable[..., PikaClient]
) -> None:
    raw = await raw_server(hang=True)
    client = make_client(raw.url, read_timeout=0.3)
    with expect(SubmitOutcomeUnknownError, match="ReadTimeout"):
        await client.submit(ARGS)
    assert raw.requests == 1


async def test_connect_failure_is_resent_and_then_succeeds(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    recorder = Recorder([httpx.ConnectError("connection refused"), queued("req-7")])
    handle = await mock_client(recorder).submit(ARGS)
    assert handle.request_id == "req-7"
    assert len(recorder.requests) == 2


async def test_refused_connection_is_retried_then_reported_as_transport_error(
    make_client: Callable[..., PikaClient],
) -> None:
    sent: list[httpx.Request] = []

    async def log_request(request: httpx.Request) -> None:
        sent.append(request)

    http = httpx.AsyncClient(event_hooks={"request": [log_request]})
    client = make_client(f"http://127.0.0.1:{free_port()}", http=http, max_retries=2)
    with expect(TransportError, match="could not connect"):
        await client.submit(ARGS)
    assert len(sent) == 3  # the first try and two retries, none of which arrived


async def test_gateway_error_without_fal_marker_is_not_resent(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    recorder = Recorder([httpx.Response(504, text="<html>Gateway Time-out</html>")])
    with expect(SubmitOutcomeUnknownError, match="gateway") as info:
        await mock_client(recorder).submit(ARGS)
    assert isinstance(info.value.__cause__, ServerError)
    assert len(recorder.requests) == 1


async def test_a_5xx_that_names_the_request_but_not_what_failed_is_not_resent(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    """A request id alone does not say fal refused the job: fal's front door names the
    request it timed out on while the queue behind it may have queued the job."""
    timed_out = httpx.Response(
        504, text="upstream request timeout", headers={"x-fal-request-id": "front-door-1"}
    )
    recorder = Recorder([timed_out, queued()])
    with expect(SubmitOutcomeUnknownError, match="does not say what failed") as info:
        await mock_client(recorder).submit(ARGS)
    assert isinstance(info.value.__cause__, ServerError)
    assert len(recorder.requests) == 1


async def test_fal_refusal_is_resent(mock_client: Callable[[Recorder], PikaClient]) -> None:
    refusal = httpx.Response(
        503,
        json={"detail": "No runner", "error_type": "runner_scheduling_failure"},
        headers={"X-Fal-Error-Type": "runner_scheduling_failure"},
    )
    recorder = Recorder([refusal, httpx.Response(429, headers={"Retry-After": "0"}), queued()])
    handle = await mock_client(recorder).submit(ARGS)
    assert handle.request_id == "req-1"
    assert len(recorder.requests) == 3


async def test_final_answer_from_fal_is_not_resent(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    final = httpx.Response(
        503,
        json={"detail": "no", "error_type": "runner_scheduling_failure"},
        headers={"X-Fal-Retryable": "false"},
    )
    recorder = Recorder([final])
    with expect(ServerError, match="runner_scheduling_failure") as info:
        await mock_client(recorder).submit(ARGS)
    assert info.value.retryable is False
    assert len(recorder.requests) == 1


async def test_unreadable_success_answer_is_an_unknown_outcome(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    recorder = Recorder([httpx.Response(200, text="OK")])
    with expect(SubmitOutcomeUnknownError, match="no request id"):
        await mock_client(recorder).submit(ARGS)
    assert len(recorder.requests) == 1


async def test_invalid_input_is_refused_before_any_request(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    recorder = Recorder([queued()])
    client = mock_client(recorder)
    with expect(ValidationError, match="resolution") as info:
        await client.submit({**ARGS, "resolution": "4k"})
    assert "'720p' or '1080p'" in str(info.value)
    with expect(ValidationError, match="duration"):
        await client.submit({**ARGS, "duration": 7})
    with expect(ValidationError, match="prompt"):
        await client.submit({"image_url": ARGS["image_url"]})
    assert recorder.requests == []


async def test_submit_sends_key_options_and_input(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    recorder = Recorder([queued()])
    options = RequestOptions(
        start_timeout=30,
        priority="low",
        object_expiry_seconds=3600,
        webhook_url="https://hooks.example.com/done",
    )
    model = ImageToVideoInput(**ARGS, resolution="1080p", duration=10, seed=42)
    handle = await mock_client(recorder).submit(model, options=options)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url.copy_with(query=None)) == SUBMIT_URL
    assert request.url.params["fal_webhook"] == "https://hooks.example.com/done"
    assert request.headers["Authorization"] == f"Key {FAKE_KEY}"
    assert request.headers["X-Fal-Request-Timeout"] == "30"
    assert request.headers["X-Fal-Queue-Priority"] == "low"
    assert json.loads(request.headers["X-Fal-Object-Lifecycle-Preference"]) == {
        "expiration_duration_seconds": 3600
    }
    assert json.loads(request.content) == {
        **ARGS,
        "negative_prompt": "",
        "resolution": "1080p",
        "duration": 10,
        "seed": 42,
    }
    assert handle.status_url == f"{BASE}/fal-ai/pika/requests/req-1/status"
    assert handle.endpoint_id == "fal-ai/pika/v2.2/image-to-video"


async def test_settings_start_timeout_is_sent_when_options_do_not_set_one(
    make_client: Callable[..., PikaClient],
) -> None:
    recorder = Recorder([queued()])
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    client = make_client(BASE, http=http, start_timeout=12.5)
    await client.submit(ARGS, options=RequestOptions(priority="normal"))
    assert recorder.requests[0].headers["X-Fal-Request-Timeout"] == "12.5"


async def test_submit_answer_without_urls_gets_owner_app_urls(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    recorder = Recorder([httpx.Response(200, json={"request_id": "abc", "status": "IN_QUEUE"})])
    handle = await mock_client(recorder).submit(ARGS)
    root = f"{BASE}/fal-ai/pika/requests/abc"
    assert (handle.status_url, handle.response_url, handle.cancel_url) == (
        f"{root}/status",
        root,
        f"{root}/cancel",
    )


async def test_validation_can_be_left_to_fal(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    recorder = Recorder([queued()])
    await mock_client(recorder).submit({**ARGS, "new_fal_field": 1}, validate=False)
    assert json.loads(recorder.requests[0].content) == {**ARGS, "new_fal_field": 1}


async def test_other_client_errors_are_fal_http_errors(
    mock_client: Callable[[Recorder], PikaClient],
) -> None:
    recorder = Recorder([httpx.Response(400, json={"detail": "bad request"})])
    with expect(FalHTTPError, match="bad request") as info:
        await mock_client(recorder).submit(ARGS)
    assert info.value.status_code == 400
    assert "POST /fal-ai/pika/v2.2/image-to-video" in str(info.value)
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "urls",
    [
        {"status_url": 42, "response_url": None, "cancel_url": ""},
        {"status_url": "not a url", "response_url": ["x"], "cancel_url": {"u": 1}},
        {"status_url": "ftp://queue.test/x", "response_url": "/relative", "cancel_url": 0.5},
    ],
)
async def test_a_queued_job_with_unreadable_urls_keeps_its_request(
    urls: dict[str, object], mock_client: Callable[[Recorder], PikaClient]
) -> None:
    # fal queued (and bills) the job: the handle is built from its request id, as
    # fal's JS client builds every URL, instead of failing on the answer's shape.
    recorder = Recorder([queued("req-9", **urls)])
    handle = await mock_client(recorder).submit(ARGS)
    root = f"{BASE}/fal-ai/pika/requests/req-9"
    assert (handle.request_id, handle.status_url, handle.response_url, handle.cancel_url) == (
        "req-9",
        f"{root}/status",
        root,
        f"{root}/cancel",
    )
    assert len(recorder.requests) == 1
