"""Runners, positions, priorities, cancellation, start timeouts and the status stream."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from emulator_support import sse_statuses, submit, wait_completed
from support import wait_until


def _states(statuses: list[dict[str, Any]]) -> list[str]:
    collapsed: list[str] = []
    for status in statuses:
        if not collapsed or collapsed[-1] != status["status"]:
            collapsed.append(status["status"])
    return collapsed


def test_only_runners_jobs_run_at_once_and_positions_count_down(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.5, fps=2)
    answers = [submit(client, emu.url, image_url=image_uri, seed=n) for n in range(6)]
    submitted = [answer["queue_position"] for answer in answers]
    assert submitted[:3] == [0, 0, 0]  # two start at once, the third is next in line
    assert submitted == sorted(submitted) and submitted[-1] >= 2
    last = answers[-1]
    positions: list[int] = []

    def started() -> bool:
        status = client.get(last["status_url"]).json()
        if status["status"] == "IN_QUEUE":
            positions.append(status["queue_position"])
            assert emu.stats()["in_progress"] <= 2
            return False
        return True

    wait_until(started)
    assert positions[0] >= 2
    assert positions == sorted(positions, reverse=True)
    assert len(set(positions)) >= 2  # it really moved up
    for answer in answers:
        wait_completed(client, answer["status_url"])
    stats = emu.stats()
    assert stats["max_in_progress"] == 2
    assert stats["completed"] == stats["succeeded"] == stats["started"] == 6
    assert stats["in_progress"] == 0 and stats["queued"] == 0


def test_low_priority_waits_behind_normal(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runners=1, job_seconds=0.5, fps=2)
    blocker = submit(client, emu.url, image_url=image_uri)
    low = submit(client, emu.url, image_url=image_uri, headers={"X-Fal-Queue-Priority": "low"})
    normal = submit(client, emu.url, image_url=image_uri)
    assert client.get(low["status_url"]).json()["queue_position"] == 1
    assert client.get(normal["status_url"]).json()["queue_position"] == 0
    for answer in (blocker, low, normal):
        wait_completed(client, answer["status_url"])
    started = {
        key: client.get(f"{emu.url}/_emulator/requests/{answer['request_id']}").json()
        for key, answer in (("low", low), ("normal", normal))
    }
    assert started["normal"]["logs"][0]["timestamp"] < started["low"]["logs"][0]["timestamp"]


def test_cancel_a_queued_job(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runners=1, job_seconds=3.0, fps=2)
    submit(client, emu.url, image_url=image_uri)
    queued = submit(client, emu.url, image_url=image_uri)
    cancel = client.put(queued["cancel_url"])
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    status = client.get(queued["status_url"])
    assert status.status_code == 200
    assert status.json()["error_type"] == "request_cancelled" and status.json()["error"]
    result = client.get(queued["response_url"])
    assert result.status_code == 400 and result.json()["error_type"] == "request_cancelled"
    again = client.put(queued["cancel_url"])
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
    stats = emu.stats()
    assert stats["cancellations"] == 1 and stats["failures_by_type"]["request_cancelled"] == 1


def test_cancel_a_running_job_stops_it_by_default(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=5.0, fps=2)
    running = submit(client, emu.url, image_url=image_uri)
    wait_until(lambda: client.get(running["status_url"]).json()["status"] == "IN_PROGRESS")
    started = time.monotonic()
    assert client.put(running["cancel_url"]).status_code == 202
    final = wait_completed(client, running["status_url"], logs=True)
    assert time.monotonic() - started < 3.0
    assert final["error_type"] == "request_cancelled"
    assert any("Cancellation requested" in line["message"] for line in final["logs"])


def test_cancel_a_running_job_may_let_it_finish(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=0.5, fps=2, cancel_running="finish")
    running = submit(client, emu.url, image_url=image_uri)
    wait_until(lambda: client.get(running["status_url"]).json()["status"] == "IN_PROGRESS")
    assert client.put(running["cancel_url"]).json() == {"status": "CANCELLATION_REQUESTED"}
    final = wait_completed(client, running["status_url"])
    assert "error" not in final
    assert client.get(running["response_url"]).status_code == 200
    record = client.get(f"{emu.url}/_emulator/requests/{running['request_id']}").json()
    assert record["cancel_requested"] is True


def test_a_job_that_cannot_start_in_time_completes_with_504(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runners=1, job_seconds=3.0, fps=2)
    submit(client, emu.url, image_url=image_uri)
    late = submit(client, emu.url, image_url=image_uri, headers={"X-Fal-Request-Timeout": "0.3"})
    final = wait_completed(client, late["status_url"], timeout=5.0)
    assert final["error_type"] == "request_timeout"
    result = client.get(late["response_url"])
    assert result.status_code == 504
    assert result.headers["x-fal-request-timeout-type"] == "user"
    assert result.headers["x-fal-error-type"] == "request_timeout"


def test_status_stream_sends_each_change_and_closes_after_completed(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runners=1, job_seconds=0.4, fps=2)
    submit(client, emu.url, image_url=image_uri)
    watched = submit(client, emu.url, image_url=image_uri)
    statuses = list(sse_statuses(client, watched["status_url"]))  # returns once closed
    assert _states(statuses) == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert statuses[0]["queue_position"] == 0
    assert statuses[-1]["metrics"]["inference_time"] >= 0.4
    assert all(status["request_id"] == watched["request_id"] for status in statuses)
    # A stream opened after completion sends the final status once and closes.
    assert _states(list(sse_statuses(client, watched["status_url"]))) == ["COMPLETED"]


def test_status_stream_positions_and_logs(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(runners=1, job_seconds=0.3, fps=2)
    for _ in range(3):
        submit(client, emu.url, image_url=image_uri)
    watched = submit(client, emu.url, image_url=image_uri)
    from httpx_sse import connect_sse

    events: list[dict[str, Any]] = []
    with connect_sse(client, "GET", f"{watched['status_url']}/stream?logs=1") as source:
        events = [json.loads(event.data) for event in source.iter_sse()]
    positions = [event["queue_position"] for event in events if event["status"] == "IN_QUEUE"]
    assert positions[0] >= 1  # one event per step up the line, down to 0
    assert positions == list(range(positions[0], -1, -1))
    running = [event for event in events if event["status"] == "IN_PROGRESS"]
    assert running and all(isinstance(event["logs"], list) for event in running)
    assert events[-1]["status"] == "COMPLETED"
    assert len(events[-1]["logs"]) > len(running[0]["logs"])  # the logs grew as it ran


def test_status_stream_sends_keepalive_comments(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=1.0, fps=2, keepalive_seconds=0.2)
    answer = submit(client, emu.url, image_url=image_uri)
    lines: list[str] = []
    with client.stream("GET", f"{answer['status_url']}/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            lines.append(line)
    assert ": ping" in lines
    data = [line for line in lines if line.startswith("data: ")]
    assert json.loads(data[-1].removeprefix("data: "))["status"] == "COMPLETED"
    assert lines.index(": ping") < len(lines) - 1


def test_a_paused_queue_keeps_jobs_waiting_until_resumed(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2)
    assert client.post(f"{emu.url}/_emulator/pause").json() == {"paused": True}
    answers = [submit(client, emu.url, image_url=image_uri, seed=n) for n in range(2)]
    statuses = [client.get(answer["status_url"]).json() for answer in answers]
    assert [(s["status"], s["queue_position"]) for s in statuses] == [
        ("IN_QUEUE", 0),
        ("IN_QUEUE", 1),
    ]
    assert emu.stats()["started"] == 0
    assert client.post(f"{emu.url}/_emulator/resume").json() == {"paused": False}
    for answer in answers:
        assert wait_completed(client, answer["status_url"])["status"] == "COMPLETED"
    emu.pause()
    late = submit(client, emu.url, image_url=image_uri)
    assert client.get(late["status_url"]).json()["status"] == "IN_QUEUE"
    emu.resume()
    wait_completed(client, late["status_url"])
