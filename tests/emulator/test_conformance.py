"""What fal's own clients read from the live queue, the emulator sends: request ids and errors.

fal-client and @fal-ai/client take the request id of an answer from its
``x-fal-request-id`` header, tell fal's answers from a gateway's by it, and
classify errors by status, ``X-Fal-Error-Type`` and
``X-Fal-Request-Timeout-Type``.  These tests pin each of those, and every
fault that can be injected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from emulator_support import ENDPOINT, sse_statuses, submit, wait_completed

from pika_tasks.emulator import EmulatorServer, FaultRule
from pika_tasks.emulator._infra import FAULTS, GATEWAY_PAGES, INFRA_ERRORS

REQUEST_ID = "x-fal-request-id"
FAL_HEADERS = {REQUEST_ID, "x-fal-error-type", "x-fal-request-timeout-type", "retry-after"}


@pytest.fixture(scope="module")
def shared() -> Iterator[EmulatorServer]:
    """One quick emulator for the tests that clear their own faults."""
    with EmulatorServer(job_seconds=0.1, fps=2) as emu:
        yield emu


@pytest.fixture
def emu(shared: EmulatorServer) -> Iterator[EmulatorServer]:
    shared.clear_faults()
    yield shared
    shared.clear_faults()


def test_every_queue_answer_names_its_request(
    emu: EmulatorServer, client: httpx.Client, image_uri: str
) -> None:
    answer = submit(client, emu.url, image_url=image_uri)
    request_id = answer["request_id"]
    assert answer["gateway_request_id"] == request_id
    submitted = client.post(f"{emu.url}{ENDPOINT}", json={"image_url": image_uri, "prompt": "x"})
    assert submitted.headers[REQUEST_ID] == submitted.json()["request_id"]

    first = client.get(answer["status_url"])
    assert first.status_code == 202 and first.headers[REQUEST_ID] == request_id
    wait_completed(client, answer["status_url"])
    calls = [
        client.get(answer["status_url"], params={"logs": "1"}),
        client.get(answer["response_url"]),
        client.put(answer["cancel_url"]),
        client.get(f"{emu.url}{ENDPOINT}/requests/{request_id}/status"),
    ]
    assert [call.status_code for call in calls] == [200, 200, 400, 200]
    assert {call.headers[REQUEST_ID] for call in calls} == {request_id}
    with client.stream("GET", f"{answer['status_url']}/stream") as stream:
        assert stream.headers[REQUEST_ID] == request_id
    assert [status["status"] for status in sse_statuses(client, answer["status_url"])] == [
        "COMPLETED"
    ]


def test_refusals_name_a_request_too(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(require_key="right", fps=2)
    bad_key = client.post(f"{emu.url}{ENDPOINT}", json={"image_url": image_uri, "prompt": "x"})
    unknown = client.get(
        f"{emu.url}/fal-ai/pika/requests/nope/status", headers={"Authorization": "Key right"}
    )
    invalid = client.post(
        f"{emu.url}{ENDPOINT}",
        json={"image_url": image_uri, "prompt": "x", "resolution": "4k"},
        headers={"Authorization": "Key right"},
    )
    assert (bad_key.status_code, unknown.status_code, invalid.status_code) == (401, 404, 422)
    assert unknown.headers[REQUEST_ID] == "nope"
    fresh = {bad_key.headers[REQUEST_ID], invalid.headers[REQUEST_ID]}
    assert len(fresh) == 2 and all(len(value) == 36 for value in fresh)  # new UUIDs
    assert emu.stats()["submissions"] == 0


def test_files_and_storage_are_not_queue_answers(
    emu: EmulatorServer, client: httpx.Client, image_uri: str
) -> None:
    answer = submit(client, emu.url, image_url=image_uri)
    wait_completed(client, answer["status_url"])
    video = client.get(client.get(answer["response_url"]).json()["video"]["url"])
    upload = client.post(f"{emu.url}/storage/upload/initiate", json={"content_type": "image/png"})
    assert video.status_code == upload.status_code == 200
    assert REQUEST_ID not in video.headers and REQUEST_ID not in upload.headers


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_every_fault_answers_as_documented(
    name: str, emu: EmulatorServer, client: httpx.Client, image_uri: str
) -> None:
    spec = FAULTS[name]
    answer = submit(client, emu.url, image_url=image_uri)
    emu.inject(FaultRule("status", name))
    hit = client.get(answer["status_url"])
    assert hit.status_code == spec.status_code
    if name in GATEWAY_PAGES:
        assert hit.headers["content-type"].startswith("text/html")
        assert "nginx" in hit.text and f"{spec.status_code} {spec.detail}" in hit.text
        assert not FAL_HEADERS & set(hit.headers)  # nothing says fal answered
    else:
        assert hit.json() == {"detail": spec.detail, "error_type": spec.error_type}
        assert hit.headers["x-fal-error-type"] == spec.error_type
        assert hit.headers[REQUEST_ID] == answer["request_id"]
        user = hit.headers.get("x-fal-request-timeout-type")
        assert (user == "user") == (name == "user_timeout")
        assert ("retry-after" in hit.headers) == (spec.status_code == 429)
    assert client.get(answer["status_url"]).status_code in (200, 202)  # once only
    assert emu.stats()["faults"][name] >= 1


def test_the_catalogue_is_fal_s_documented_list() -> None:
    by_status = {name: spec.status_code for name, spec in INFRA_ERRORS.items()}
    assert by_status == {
        "bad_request": 400,
        "client_disconnected": 499,
        "client_cancelled": 499,
        "runner_server_error": 500,
        "internal_error": 500,
        "runner_incomplete_response": 502,
        "runner_scheduling_failure": 503,
        "runner_connection_timeout": 503,
        "runner_disconnected": 503,
        "runner_connection_refused": 503,
        "runner_connection_error": 503,
        "request_timeout": 504,
        "startup_timeout": 504,
    }


def test_rules_count_skip_and_target_one_request(
    emu: EmulatorServer, client: httpx.Client, image_uri: str
) -> None:
    mine = submit(client, emu.url, image_url=image_uri)
    other = submit(client, emu.url, image_url=image_uri)
    emu.inject(
        FaultRule("status", "runner_disconnected", times=2, skip=1, request_id=mine["request_id"])
    )
    codes = [client.get(mine["status_url"]).status_code for _ in range(4)]
    assert codes[0] in (200, 202) and codes[1:3] == [503, 503] and codes[3] in (200, 202)
    assert client.get(other["status_url"]).status_code in (200, 202)


def test_a_queued_submit_fault_loses_the_answer_of_a_real_job(
    emu: EmulatorServer, client: httpx.Client, image_uri: str
) -> None:
    before = emu.stats()["submissions"]
    emu.inject("submit=gateway_504:queued", "submit=runner_scheduling_failure")
    lost = client.post(f"{emu.url}{ENDPOINT}", json={"image_url": image_uri, "prompt": "x"})
    refused = client.post(f"{emu.url}{ENDPOINT}", json={"image_url": image_uri, "prompt": "x"})
    assert (lost.status_code, refused.status_code) == (504, 503)
    assert emu.stats()["submissions"] == before + 1  # the gateway's job exists, fal's refusal not


def test_faults_can_be_armed_listed_and_cleared_over_http(
    emu: EmulatorServer, client: httpx.Client
) -> None:
    url = f"{emu.url}/_emulator/faults"
    armed = client.post(url, json=[{"route": "result", "fault": "user_timeout", "times": None}])
    assert armed.json()["faults"] == [
        {
            "route": "result",
            "fault": "user_timeout",
            "times": None,
            "skip": 0,
            "request_id": None,
            "queued": False,
            "left": None,
        }
    ]
    refused = client.post(url, json={"route": "status", "fault": "no_such_fault"})
    assert refused.status_code == 422 and "no_such_fault" in refused.text
    assert client.post(url, json={"route": "status", "fault": "x", "when": 1}).status_code == 422
    assert client.delete(url).json() == {"faults": []}
    assert client.get(url).json() == {"faults": []}


def test_rules_read_from_text_and_refuse_nonsense() -> None:
    rule = FaultRule.parse("submit=gateway_502:2:queued")
    assert (rule.route, rule.fault, rule.times, rule.queued) == ("submit", "gateway_502", 2, True)
    assert FaultRule.parse("status=internal_error:all").times is None
    for text in ("status", "nowhere=internal_error", "status=internal_error:later"):
        with pytest.raises(ValueError):
            FaultRule.parse(text)
    with pytest.raises(ValueError, match="submit route only"):
        FaultRule("status", "gateway_502", queued=True)


def test_rules_given_at_start_fire_first(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(faults=["submit=rate_limited"], retry_after_seconds=2, fps=2)
    first = client.post(f"{emu.url}{ENDPOINT}", json={"image_url": image_uri, "prompt": "x"})
    assert first.status_code == 429 and first.headers["retry-after"] == "2"
    submit(client, emu.url, image_url=image_uri)
