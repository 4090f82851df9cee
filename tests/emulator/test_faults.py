"""Injected faults: 503/429 answers, cut downloads, failed jobs and runners, expiry, webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from emulator_support import (
    ENDPOINT,
    LoopbackHttp,
    data_uri,
    decode_video,
    sse_statuses,
    submit,
    wait_completed,
    wait_until,
)


def _submit_codes(client: httpx.Client, base: str, image_uri: str, count: int) -> list[int]:
    body = {"image_url": image_uri, "prompt": "x"}
    return [client.post(f"{base}{ENDPOINT}", json=body).status_code for _ in range(count)]


def test_every_answer_can_be_a_503_in_fal_shape(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(error_rate_5xx=1.0, fps=2)
    response = client.post(f"{emu.url}{ENDPOINT}", json={"image_url": image_uri, "prompt": "x"})
    assert response.status_code == 503
    assert response.headers["x-fal-error-type"] == "runner_scheduling_failure"
    assert response.json() == {
        "detail": response.json()["detail"],
        "error_type": "runner_scheduling_failure",
    }
    stats = emu.stats()
    assert stats["submissions"] == 0 and stats["faults"] == {"http_5xx": 1}


def test_429_carries_a_configurable_retry_after(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(error_rate_429=1.0, retry_after_seconds=0.25, fps=2)
    response = client.post(f"{emu.url}{ENDPOINT}", json={"image_url": image_uri, "prompt": "x"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0.25"
    assert response.headers["x-fal-error-type"] == response.json()["error_type"]


def test_fault_routes_limit_where_faults_happen(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(error_rate_5xx=1.0, fault_routes={"status"}, job_seconds=0.1, fps=2)
    answer = submit(client, emu.url, image_url=image_uri)  # submit is spared
    assert client.get(answer["status_url"]).status_code == 503
    wait_until(lambda: emu.stats()["completed"] == 1)
    assert client.get(answer["response_url"]).status_code == 200


def test_fault_decisions_repeat_under_the_same_seed(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    config = {"error_rate_5xx": 0.3, "error_rate_429": 0.2, "job_seconds": 30.0, "fps": 2}
    first = _submit_codes(client, make_emulator(seed=11, **config).url, image_uri, 40)
    second = _submit_codes(client, make_emulator(seed=11, **config).url, image_uri, 40)
    other = _submit_codes(client, make_emulator(seed=12, **config).url, image_uri, 40)
    assert first == second
    assert first != other
    assert set(first) == {200, 429, 503}
    assert 4 <= first.count(503) <= 22


def _download_with_resume(client: httpx.Client, url: str, size: int) -> tuple[bytes, int]:
    """Download ``url``, resuming with Range after each cut; returns the bytes and cuts."""
    received = b""
    cuts = 0
    while len(received) < size:
        headers = {"Range": f"bytes={len(received)}-"} if received else {}
        try:
            with client.stream("GET", url, headers=headers) as response:
                assert response.status_code == (206 if received else 200)
                for chunk in response.iter_bytes():
                    received += chunk
        except httpx.RemoteProtocolError:
            cuts += 1
        assert cuts < 50
    return received, cuts


def test_cut_downloads_can_be_resumed_with_range(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    outcomes = []
    for _ in range(2):  # the same seed cuts the same downloads at the same places
        emu = make_emulator(
            drop_download_rate=0.5, job_seconds=0.1, fps=4, min_video_bytes=400_000, seed=1
        )
        answer = submit(client, emu.url, image_url=image_uri)
        wait_completed(client, answer["status_url"])
        video = client.get(answer["response_url"]).json()["video"]
        data, cuts = _download_with_resume(client, video["url"], video["file_size"])
        assert len(data) == video["file_size"]
        assert emu.stats()["faults"]["drop_download"] == cuts
        outcomes.append((cuts, emu.stats()["bytes_served"], data))
    assert outcomes[0] == outcomes[1]
    cuts, served, data = outcomes[0]
    assert cuts >= 1 and served >= len(data)
    assert len(decode_video(data).frames) == 20


def test_a_cut_download_is_truncated(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(drop_download_rate=1.0, job_seconds=0.1, fps=2, min_video_bytes=200_000)
    answer = submit(client, emu.url, image_url=image_uri)
    wait_completed(client, answer["status_url"])
    url = client.get(answer["response_url"]).json()["video"]["url"]
    received = 0
    with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", url) as response:
        assert int(response.headers["content-length"]) == 200_000
        for chunk in response.iter_bytes():
            received += len(chunk)
    assert 0 < received < 200_000


def test_failed_jobs_complete_with_an_error_and_a_500_result(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_failure_rate=1.0, job_seconds=0.1, fps=2)
    answer = submit(client, emu.url, image_url=image_uri)
    final = wait_completed(client, answer["status_url"])
    assert final["error_type"] == "internal_server_error" and final["error"]
    result = client.get(answer["response_url"])
    assert result.status_code == 500 and "detail" in result.json()
    stats = emu.stats()
    assert stats["failed"] == 1 and stats["faults"]["job_failure"] == 1
    assert stats["renders"] == 0  # a doomed job does not render


def test_a_failed_runner_requeues_the_job_once(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runner_failure_rate=1.0, job_seconds=0.3, fps=2)
    answer = submit(client, emu.url, image_url=image_uri)
    states = [status["status"] for status in sse_statuses(client, answer["status_url"])]
    collapsed = [state for n, state in enumerate(states) if n == 0 or states[n - 1] != state]
    assert collapsed[-4:] == ["IN_PROGRESS", "IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    record = client.get(f"{emu.url}/_emulator/requests/{answer['request_id']}").json()
    assert record["attempts"] == 2 and record["error_type"] is None
    assert emu.stats()["faults"]["runner_failure"] == 1


def test_a_failed_runner_with_no_retry_fails_the_job(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runner_failure_rate=1.0, job_seconds=0.2, fps=2)
    answer = submit(client, emu.url, image_url=image_uri, headers={"X-Fal-No-Retry": "1"})
    final = wait_completed(client, answer["status_url"])
    assert final["error_type"] == "runner_disconnected"
    result = client.get(answer["response_url"])
    assert result.status_code == 503
    assert result.headers["x-fal-error-type"] == "runner_disconnected"


def test_results_and_videos_expire(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(result_ttl_seconds=0.5, job_seconds=0.1, fps=2)
    answer = submit(client, emu.url, image_url=image_uri)
    wait_completed(client, answer["status_url"])
    result = client.get(answer["response_url"])
    assert result.status_code == 200
    video_url = result.json()["video"]["url"]
    wait_until(lambda: client.get(answer["response_url"]).status_code == 404, timeout=5)
    assert client.get(video_url).status_code == 404
    assert client.get(answer["status_url"]).json()["status"] == "COMPLETED"
    assert emu.stats()["expired_results"] >= 1


def test_the_expire_control_expires_named_results_and_videos_at_once(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emulator = make_emulator(job_seconds=0.05, fps=2, fast=True)  # one render for the three
    answers = [submit(client, emulator.url, image_url=image_uri) for _ in range(3)]
    for answer in answers:
        wait_completed(client, answer["status_url"])
    videos = [client.get(a["response_url"]).json()["video"]["url"] for a in answers]
    first, second, third = (answer["request_id"] for answer in answers)

    expired = client.post(f"{emulator.url}/_emulator/expire", json={"request_ids": [first]})
    assert expired.json() == {"expired": [first]}
    assert client.get(answers[0]["response_url"]).status_code == 404
    assert client.get(videos[0]).status_code == 404
    assert client.get(answers[1]["response_url"]).status_code == 200  # not named: kept
    assert client.get(videos[1]).status_code == 200
    assert client.get(answers[0]["status_url"]).json()["status"] == "COMPLETED"

    assert emulator.expire() == sorted([first, second, third])  # none named: every one
    assert [client.get(a["response_url"]).status_code for a in answers] == [404] * 3
    assert client.get(videos[2]).status_code == 404
    refused = client.post(f"{emulator.url}/_emulator/expire", json={"request_ids": "x"})
    assert refused.status_code == 422


def test_object_lifecycle_header_sets_the_video_expiry(
    emulator: Any, client: httpx.Client, image_uri: str
) -> None:
    answer = submit(
        client,
        emulator.url,
        image_url=image_uri,
        headers={"X-Fal-Object-Lifecycle-Preference": '{"expiration_duration_seconds": 0.4}'},
    )
    wait_completed(client, answer["status_url"])
    video_url = client.get(answer["response_url"]).json()["video"]["url"]
    wait_until(lambda: client.get(video_url).status_code == 404, timeout=5)
    assert client.get(answer["response_url"]).status_code == 200  # the result itself stays


def test_webhooks_report_success_and_failure(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2)
    with LoopbackHttp() as receiver:
        hook = {"fal_webhook": f"{receiver.url}/hook"}
        ok = submit(client, emu.url, image_url=image_uri, params=hook)
        bad = submit(client, emu.url, image_url=data_uri(b"nope", "text/plain"), params=hook)
        calls = [json.loads(receiver.posts.get(timeout=20)) for _ in range(2)]
    by_id = {call["request_id"]: call for call in calls}
    success, failure = by_id[ok["request_id"]], by_id[bad["request_id"]]
    assert success["status"] == "OK" and success["error"] is None
    assert success["gateway_request_id"] == ok["request_id"]
    assert success["payload"]["video"]["url"].startswith(f"{emu.url}/files/")
    assert failure["status"] == "ERROR" and failure["error"] == "Invalid status code: 422"
    assert failure["payload"]["detail"][0]["type"] == "image_load_error"
    wait_until(lambda: emu.stats()["webhooks"]["sent"] == 2)
