"""fal's JavaScript client (@fal-ai/client, pinned in package-lock.json), unchanged,
against the emulator over https.

Covers what a user of @fal-ai/client calls: ``queue.submit``, ``subscribe`` in
polling and streaming mode, ``queue.status`` with and without logs,
``queue.streamStatus``, ``queue.result``, ``queue.cancel``, a 422 (its
``ValidationError``), a 404, the request id on every call that reports one
(taken, as the client does, from the ``x-fal-request-id`` header), and every
injectable fault surfacing as the client's own ``ApiError``, after exactly the
retries its source says it makes.  Skipped, saying why, where ``node`` is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _contract_support import Driver, fal_js_retries, under_fault

from pika_tasks.emulator import EmulatorServer, FaultRule
from pika_tasks.emulator._infra import FAULTS

pytestmark = pytest.mark.timeout(120)

Describe = Callable[[str], dict[str, Any]]


@pytest.fixture(scope="module")
def completed(fal_js: Driver, contract_emulator: EmulatorServer, job_input: dict[str, Any]) -> str:
    """The id of a job @fal-ai/client submitted and saw complete."""
    done = fal_js.ok("subscribe", input=job_input, mode="polling", logs=False)
    request_id: str = done["requestId"]
    return request_id


def test_submit_answers_fal_s_queue_status(
    fal_js: Driver, emu: EmulatorServer, describe: Describe, job_input: dict[str, Any]
) -> None:
    queued = fal_js.ok("submit", input=job_input)
    request_id = queued["request_id"]
    root = f"{emu.url}/fal-ai/pika/requests/{request_id}"
    assert queued["status"] == "IN_QUEUE" and isinstance(queued["queue_position"], int)
    assert (queued["status_url"], queued["response_url"], queued["cancel_url"]) == (
        f"{root}/status",
        root,
        f"{root}/cancel",
    )
    # The client sends its default priority header with every submit.
    assert describe(request_id)["headers"] == {"X-Fal-Queue-Priority": "normal"}


@pytest.mark.parametrize("mode", ["polling", "streaming"])
def test_subscribe_returns_the_result_and_its_request_id(
    mode: str, fal_js: Driver, emu: EmulatorServer, describe: Describe, job_input: dict[str, Any]
) -> None:
    before = emu.stats()["requests"]
    done = fal_js.ok("subscribe", input=job_input, mode=mode, logs=True)
    after = emu.stats()["requests"]
    assert done["requestId"] == done["enqueued"] != ""
    assert done["data"]["video"]["url"] == f"{emu.url}/files/{done['requestId']}.mp4"
    states = [update["status"] for update in done["updates"]]
    assert states[-1] == "COMPLETED" and "IN_PROGRESS" in states
    assert done["updates"][-1]["logs"] >= 2
    streams = after.get("status_stream", 0) - before.get("status_stream", 0)
    polls = after.get("status", 0) - before.get("status", 0)
    assert (streams, polls > 0) == ((0, True) if mode == "polling" else (1, False))
    assert describe(done["requestId"])["status"] == "COMPLETED"


def test_status_with_and_without_logs(fal_js: Driver, completed: str) -> None:
    with_logs = fal_js.ok("status", requestId=completed, logs=True)
    without = fal_js.ok("status", requestId=completed, logs=False)
    assert with_logs["status"] == without["status"] == "COMPLETED"
    assert with_logs["request_id"] == completed
    assert len(with_logs["logs"]) >= 2 and without["logs"] is None
    assert with_logs["metrics"]["inference_time"] > 0


def test_stream_status_reports_its_request_id(
    fal_js: Driver, emu: EmulatorServer, job_input: dict[str, Any]
) -> None:
    request_id = fal_js.ok("submit", input=job_input)["request_id"]
    streamed = fal_js.ok("streamStatus", requestId=request_id, logs=True)
    assert streamed["requestId"] == request_id
    assert streamed["last"]["status"] == "COMPLETED" and streamed["last"]["logs"] >= 2
    assert [event["status"] for event in streamed["events"]][-1] == "COMPLETED"


def test_result_carries_the_request_id(fal_js: Driver, emu: EmulatorServer, completed: str) -> None:
    result = fal_js.ok("result", requestId=completed)
    assert result["requestId"] == completed
    assert result["data"]["video"]["url"] == f"{emu.url}/files/{completed}.mp4"


def test_status_of_a_queued_job_and_its_cancel(
    fal_js: Driver, emu: EmulatorServer, describe: Describe, job_input: dict[str, Any]
) -> None:
    emu.pause()
    request_id = fal_js.ok("submit", input=job_input)["request_id"]
    queued = fal_js.ok("status", requestId=request_id, logs=True)
    assert (queued["status"], queued["queue_position"]) == ("IN_QUEUE", 0)
    assert fal_js.ok("cancel", requestId=request_id) is None
    assert describe(request_id)["error_type"] == "request_cancelled"


def test_cancel_of_a_completed_job_is_an_api_error(fal_js: Driver, completed: str) -> None:
    error = fal_js.error("cancel", requestId=completed)
    assert error["isApiError"] and not error["isValidationError"]
    assert (error["status"], error["body"], error["requestId"]) == (
        400,
        {"status": "ALREADY_COMPLETED"},
        completed,
    )


def test_invalid_input_is_a_validation_error(
    fal_js: Driver, emu: EmulatorServer, job_input: dict[str, Any]
) -> None:
    before = emu.stats()["submissions"]
    error = fal_js.error("submit", input={**job_input, "resolution": "4k"})
    assert error["name"] == "ValidationError" and error["isValidationError"]
    assert error["status"] == 422 and error["requestId"]
    assert [field["loc"] for field in error["fieldErrors"]] == [["body", "resolution"]]
    assert emu.stats()["submissions"] == before


def test_unknown_request_is_a_404(fal_js: Driver) -> None:
    for op in ("status", "result"):
        error = fal_js.error(op, requestId="no-such-request")
        assert error["isApiError"] and error["status"] == 404
        assert error["requestId"] == "no-such-request"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_surfaces_as_an_api_error_after_the_client_s_retries(
    fault: str, fal_js: Driver, emu: EmulatorServer, completed: str
) -> None:
    spec = FAULTS[fault]
    error, attempts, _ = under_fault(
        emu,
        FaultRule("cancel", fault, times=None, request_id=completed),
        lambda: fal_js.error("cancel", requestId=completed, quickRetries=True),
    )
    assert attempts == (4 if fal_js_retries(spec) else 1)  # its default: three retries
    assert error["isApiError"] and error["status"] == spec.status_code
    assert error["isUserTimeout"] == (fault == "user_timeout")
    if spec.from_fal:
        assert error["body"] == {"detail": spec.detail, "error_type": spec.error_type}
        assert error["requestId"] == completed  # from the x-fal-request-id header
    else:
        assert error["body"] is None and error["requestId"] == ""  # a gateway page says nothing
