"""fal's Python client (fal-client), unchanged, against the emulator over https.

Covers what a user of fal-client calls: submit, subscribe (fal-client polls;
it has no status stream), status with and without logs, result, cancel, a 422,
a 404, the request id where fal-client reports one, and every injectable fault
surfacing as fal-client's own ``FalClientHTTPError``, or retried exactly where
fal-client's source says it retries.  The emulator requires the contract key,
so every call that succeeds also shows the key was sent as fal expects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _contract_support import Driver, fal_client_retries, under_fault

from pika_tasks.emulator import EmulatorServer, FaultRule
from pika_tasks.emulator._infra import FAULTS

pytestmark = pytest.mark.timeout(120)


Describe = Callable[[str], dict[str, Any]]


@pytest.fixture(scope="module")
def completed(fal_py: Driver, contract_emulator: EmulatorServer, job_input: dict[str, Any]) -> str:
    """The id of a job fal-client submitted and saw complete."""
    done = fal_py.ok("subscribe", arguments=job_input, with_logs=False)
    request_id: str = done["enqueued"][0]
    return request_id


def test_submit_queues_a_job_under_the_owner_app_urls(
    fal_py: Driver, emu: EmulatorServer, describe: Describe, job_input: dict[str, Any]
) -> None:
    handle = fal_py.ok("submit", arguments=job_input)
    root = f"{emu.url}/fal-ai/pika/requests/{handle['request_id']}"
    assert handle == {
        "request_id": handle["request_id"],
        "status_url": f"{root}/status",
        "response_url": root,
        "cancel_url": f"{root}/cancel",
    }
    assert describe(handle["request_id"])["headers"] == {}  # no X-Fal-* options sent


def test_subscribe_polls_to_the_result_with_logs(
    fal_py: Driver, emu: EmulatorServer, describe: Describe, job_input: dict[str, Any]
) -> None:
    done = fal_py.ok("subscribe", arguments=job_input, with_logs=True)
    (request_id,) = done["enqueued"]
    classes = [update["class"] for update in done["updates"]]
    assert classes[-1] == "Completed" and "InProgress" in classes
    assert done["updates"][-1]["logs"] >= 2 and done["updates"][-1]["error"] is None
    assert done["updates"][-1]["metrics"]["inference_time"] > 0
    video = done["result"]["video"]
    assert video["content_type"] == "video/mp4" and video["file_size"] > 0
    assert video["url"] == f"{emu.url}/files/{request_id}.mp4"
    assert describe(request_id)["status"] == "COMPLETED"


def test_status_with_and_without_logs(fal_py: Driver, completed: str) -> None:
    with_logs = fal_py.ok("status", request_id=completed, with_logs=True)
    without = fal_py.ok("status", request_id=completed, with_logs=False)
    assert with_logs["class"] == without["class"] == "Completed"
    assert with_logs["logs"] >= 2 and without["logs"] is None
    assert with_logs["metrics"] == without["metrics"]


def test_status_of_a_queued_job_and_its_cancel(
    fal_py: Driver, emu: EmulatorServer, describe: Describe, job_input: dict[str, Any]
) -> None:
    emu.pause()
    handle = fal_py.ok("submit", arguments=job_input)
    queued = fal_py.ok("status", request_id=handle["request_id"], with_logs=True)
    assert queued == {"class": "Queued", "logs": None, "position": 0}
    assert fal_py.ok("cancel", request_id=handle["request_id"]) is None
    assert describe(handle["request_id"])["error_type"] == "request_cancelled"
    cancelled = fal_py.ok("status", request_id=handle["request_id"], with_logs=False)
    assert cancelled["class"] == "Completed" and cancelled["error_type"] == "request_cancelled"


def test_result_of_a_completed_job(fal_py: Driver, emu: EmulatorServer, completed: str) -> None:
    output = fal_py.ok("result", request_id=completed)
    assert output["video"]["url"] == f"{emu.url}/files/{completed}.mp4"


def test_cancel_of_a_completed_job_is_fal_s_400(fal_py: Driver, completed: str) -> None:
    error = fal_py.error("cancel", request_id=completed)
    assert error["class"] == "FalClientHTTPError" and error["status_code"] == 400
    assert error["request_id_header"] == completed
    assert '"ALREADY_COMPLETED"' in error["body"]


def test_invalid_input_is_a_422_with_fal_s_details(
    fal_py: Driver, emu: EmulatorServer, job_input: dict[str, Any]
) -> None:
    before = emu.stats()["submissions"]
    error = fal_py.error("submit", arguments={**job_input, "resolution": "4k"})
    assert error["class"] == "FalClientHTTPError" and error["status_code"] == 422
    assert "resolution" in error["body"] and error["request_id_header"]
    assert emu.stats()["submissions"] == before


def test_unknown_request_is_a_404(fal_py: Driver) -> None:
    for op in ("status", "result"):
        args: dict[str, Any] = {"request_id": "no-such-request"}
        if op == "status":
            args["with_logs"] = False
        error = fal_py.error(op, **args)
        assert (error["class"], error["status_code"]) == ("FalClientHTTPError", 404)
        assert error["request_id_header"] == "no-such-request"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_surfaces_as_fal_client_s_error_or_is_retried(
    fault: str, fal_py: Driver, emu: EmulatorServer, completed: str
) -> None:
    spec = FAULTS[fault]
    answer, attempts, _ = under_fault(
        emu,
        FaultRule("status", fault, request_id=completed),
        lambda: fal_py.call("status", request_id=completed, with_logs=False),
    )
    if fal_client_retries(spec):
        assert attempts == 2 and answer["ok"]["class"] == "Completed"
        return
    assert attempts == 1
    error = answer["error"]
    assert error["class"] == "FalClientHTTPError"
    assert error["status_code"] == spec.status_code
    assert error["error_type"] == spec.error_type
    assert error["request_id_header"] == completed
