"""The batch flow when the Prefect API fails: 503s and hangs on chosen routes, injected by a
proxy in front of the tests' Prefect server, with the flow in a process of its own.

The process is given short Prefect client retries (one retry, 3 s per request), so an
outage of a few seconds outlasts them, as a three-minute outage outlasts the defaults.
"""

from __future__ import annotations

import doctest
import importlib
import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import api_proxy
import httpx
import pytest
from api_proxy import ApiProxy
from support import handle_at, point_at, probe_video, process_env, write_manifest

from pika_tasks.flows import image_to_video_batch
from pika_tasks.flows._faults import alone, best_effort
from pika_tasks.manifest import ManifestRow
from pika_tasks.pipeline import BatchLimits, read_report
from pika_tasks.records import OutputLocation, utc_now

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(150)]

CHILD = Path(__file__).parents[1] / "flow_child.py"
LEASES = r"/v2/concurrency_limits/increment-with-lease$"
ROWS = [f"r{n},images/{n}.png,zoom in {n}" for n in range(6)]
UNREACHABLE = "could not be reached"


def api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


@pytest.fixture
def proxy() -> Iterator[ApiProxy]:
    with ApiProxy(api_url()) as served:
        yield served


def create_limit(limit: int, decay: float = 0.0) -> str:
    return api_proxy.create_limit(api_url(), limit, decay)


def active_slots(name: str) -> int:
    return api_proxy.active_slots(api_url(), name)


def run_through(
    proxy: ApiProxy, manifest: Path, out: Path, emu: Any, **limits: Any
) -> tuple[dict[str, Any], str]:
    """Run the batch flow in a process whose Prefect API is the proxy; (summary, logs)."""
    env = process_env(
        emu,
        PREFECT_API_URL=proxy.url,
        PREFECT_CLIENT_MAX_RETRIES="1",
        PREFECT_API_REQUEST_TIMEOUT="3",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    parameters = {"manifest": str(manifest), "output": str(out), "limits": limits}
    done = subprocess.run(
        [sys.executable, str(CHILD), "batch", json.dumps(parameters)],
        env=env,
        capture_output=True,
        text=True,
        timeout=130,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def check_all_made(out: Path, emu: Any, summary: dict[str, Any], logs: str) -> None:
    """Six rows, six videos, six submissions, and a report that says so."""
    assert summary["state"] == "COMPLETED", logs[-3000:]
    assert summary["result"]["succeeded"] == 6, logs[-3000:]
    assert emu.stats()["submissions"] == 6
    report = read_report(summary["result"]["report_url"])
    assert sorted(line.id or "" for line in report.rows) == [f"r{n}" for n in range(6)]
    assert {line.status for line in report.rows} == {"succeeded"}
    for n in range(6):
        assert probe_video((out / f"r{n}.mp4").read_bytes())["codec"] == "h264"


@pytest.mark.parametrize("fault", ["503", "hang"])
def test_the_lease_endpoint_down_longer_than_the_client_retries(
    fault: str, make_emulator: Callable[..., Any], proxy: ApiProxy, tmp_path: Path
) -> None:
    # The global limit allows 2; every slot request fails for 12 s from the first one
    # (a hang is held past the client's 3 s timeout), longer than the client's retries.
    emu = make_emulator(runners=4, job_seconds=0.5, fps=4)
    name = create_limit(2)
    outage = proxy.fail(LEASES, seconds=12, hang=10.0 if fault == "hang" else 0.0)
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    summary, logs = run_through(
        proxy, manifest, out, emu, concurrency_limit=name, max_concurrency=3
    )

    check_all_made(out, emu, summary, logs)
    assert outage.hits > 0
    # One warning for the whole run; meanwhile the run's own bound held.
    assert logs.count(UNREACHABLE) == 1, logs[-3000:]
    assert emu.stats()["max_in_progress"] <= 3
    # Every slot taken was given back: the limit is free for the next run.
    assert active_slots(name) == 0


def test_artifacts_events_logs_states_and_the_rate_limit_down(
    make_emulator: Callable[..., Any], proxy: ApiProxy, tmp_path: Path
) -> None:
    # For the whole run, artifacts (create and update) and the submit rate limit answer
    # 503; for 10 s from their first call, log shipping answers 503 and the events
    # stream (task-run states, row events) is refused; and the flow run's first state
    # report gets a 503 (which the Prefect client retries).
    emu = make_emulator(runners=4, job_seconds=0.5, fps=4)
    rate = create_limit(1, decay=5.0)
    faults = [
        proxy.fail(r"/artifacts/"),
        proxy.fail(r"/v2/concurrency_limits/increment$"),
        proxy.fail(r"/logs/$", seconds=10),
        proxy.fail(r"/events/in$", seconds=10),
        proxy.fail(r"/flow_runs/[0-9a-f-]+/set_state$", times=1),
    ]
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    summary, logs = run_through(
        proxy, manifest, out, emu, concurrency_limit=None, submit_rate_limit=rate
    )

    check_all_made(out, emu, summary, logs)
    for fault in faults:
        assert fault.hits > 0, fault
    # Each kind of artifact is given up with its warning; the rate limit with one.
    assert "could not take the run's progress bar" in logs
    assert "could not take the run's summary" in logs
    assert "could not take the table of rows" in logs
    assert logs.count(UNREACHABLE) == 1, logs[-3000:]


async def test_a_row_whose_record_cannot_be_read_fails_alone(
    make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # r1's record is a folder: reading it is an OSError, not one of the row's known
    # failures. The row fails with it; the other rows are made and the report written.
    emu = make_emulator(runners=4, job_seconds=0.2, fps=4)
    point_at(emu, monkeypatch)
    manifest = write_manifest(tmp_path, ROWS[:3])
    out = tmp_path / "out"
    (out / "r1.json").mkdir(parents=True)
    state = await image_to_video_batch(
        str(manifest),
        str(out),
        limits=BatchLimits(concurrency_limit=None),
        fail_on_partial=False,
        return_state=True,
    )
    result = await state.result()
    assert (result.succeeded, result.failed) == (2, 1)
    lines = {line.id: line for line in read_report(result.report_url).rows}
    assert lines["r1"].status == "failed"
    assert "IsADirectoryError" in (lines["r1"].error or "")
    assert emu.stats()["submissions"] == 2
    location = OutputLocation(str(out))
    assert {location.load(f"r{n}").state for n in (0, 2)} == {"succeeded"}  # type: ignore[union-attr]


async def test_best_effort_and_alone_say_what_failed(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("pika-faults-test")

    async def refused() -> int:
        raise httpx.ConnectError("connection refused")

    async def answered() -> int:
        return 7

    with caplog.at_level(logging.DEBUG, logger="pika-faults-test"):
        assert await best_effort(refused(), "the summary", logger) is None
        assert await best_effort(answered(), "the summary", logger) == 7
        row = ManifestRow(row_number=4, id="r4", image="/i/4.png", prompt="zoom")
        outcome = await alone(refused(), row, logger)
    assert [r.levelname for r in caplog.records] == ["WARNING", "ERROR"]
    assert "could not take the summary (connection refused)" in caplog.records[0].message
    assert outcome.model_dump(include={"id", "row_number", "status", "error"}) == {
        "id": "r4",
        "row_number": 4,
        "status": "failed",
        "error": "r4: ConnectError: connection refused",
    }


@pytest.mark.parametrize(
    "name",
    [
        "pika_tasks.concurrency",
        "pika_tasks.events",
        "pika_tasks.flows._faults",
        "pika_tasks.flows.scale_out",
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0


async def test_slots_go_on_without_an_unreachable_limit_then_use_it_again(
    proxy: ApiProxy, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from pika_tasks.concurrency import FalSlots

    name = create_limit(1)
    logger = logging.getLogger("pika-slots-test")
    outage = proxy.fail(LEASES, times=2)
    # No client retries, and a row tries the limit again as soon as the one before it
    # went on without it.
    with (
        temporary_settings({PREFECT_API_URL: proxy.url, PREFECT_CLIENT_MAX_RETRIES: 0}),
        caplog.at_level(logging.INFO, logger="pika-slots-test"),
    ):
        slots = FalSlots(name, local_limit=2, retry_seconds=0.0)
        await slots.check(logger)
        for _ in range(2):
            async with slots.slot():  # the limit fails: the row goes on under the local bound
                assert active_slots(name) == 0
        async with slots.slot():  # the limit answers again: the row holds its slot
            assert active_slots(name) == 1
        await slots.aclose()
    assert outage.hits == 2
    assert active_slots(name) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum(UNREACHABLE in m for m in messages) == 1
    assert any("is still out of reach: 503" in m for m in messages)
    assert any("answers again" in m for m in messages)


def shard_row_outcome(record: Any, launched: Any, *, video_exists: bool) -> Any:
    """Row "a" (row 3) of crashed shard "shard-run", read from its record."""
    from pika_tasks.flows.scale_out import recorded_outcome
    from pika_tasks.pricing import PriceTable

    return recorded_outcome(
        "a",
        3,
        record,
        run_id="shard-run",
        run_label="shard 7 (Crashed)",
        launched_at=launched,
        video_exists=video_exists,
        prices=PriceTable(),
    )


@pytest.mark.parametrize(
    ("state", "mine", "video", "expected"),
    [
        (None, False, False, ("failed", "not run: shard 7 (Crashed) ended before")),
        ("succeeded", False, True, ("skipped", None)),  # made by an earlier run
        ("failed", False, False, ("failed", "not run: shard 7 (Crashed) ended before")),
        ("succeeded", True, True, ("succeeded", None)),
        ("succeeded", True, False, ("failed", "its video is missing")),
        ("submitted", True, False, ("failed", "submitted to fal (request req-1)")),
        ("submitting", True, False, ("failed", "shard 7 (Crashed) ended while this row's")),
        ("failed", True, False, ("failed", "fal said no")),
        ("cancelled", True, False, ("cancelled", "flow run cancelled")),
    ],
)
def test_a_shard_without_a_report_is_read_from_its_records(
    state: str | None, mine: bool, video: bool, expected: tuple[str, str | None]
) -> None:
    from datetime import UTC, datetime, timedelta

    from pika_tasks.records import RowRecord

    launched = datetime.now(UTC) - timedelta(minutes=5)
    record = None
    if state is not None:
        error = {"failed": "fal said no", "cancelled": "flow run cancelled"}.get(state)
        record = RowRecord(
            id="a",
            state=state,  # type: ignore[arg-type]
            fingerprint="f",
            row={"resolution": "1080p", "duration": 5},
            flow_run_id="shard-run" if mine else "earlier-run",
            submitted_at=datetime.now(UTC).isoformat(),
            request=handle_at("https://queue.example") if state != "submitting" else None,
            output="/out/a.mp4" if state == "succeeded" else None,
            error=error,
        )
    outcome = shard_row_outcome(record, launched, video_exists=video)
    status, words = expected
    assert (outcome.id, outcome.row_number, outcome.status) == ("a", 3, status)
    if words is None:
        assert outcome.error is None
    else:
        assert words in (outcome.error or "")
    # What the shard paid for is counted: a submit it sent, at the row's list price.
    assert outcome.cost_usd == (0.45 if mine and state is not None else 0.0)


@pytest.mark.parametrize(
    ("submitted_by", "answered", "state", "paid"),
    [
        ("shard-run", True, "submitted", True),
        ("shard-run", False, "submitting", True),  # its answer never came: maybe queued
        ("shard-run", False, "failed", False),  # fal refused it: nothing queued
        ("earlier-run", True, "submitted", False),  # re-attached by the shard, paid before
    ],
    ids=["sent by the shard", "answer lost", "refused by fal", "re-attached"],
)
def test_what_a_shard_without_a_report_paid_is_read_from_who_sent_the_submit(
    submitted_by: str, answered: bool, state: str, paid: bool
) -> None:
    """Whatever the clocks say: the worker's may run ahead of the API's, so a submit
    sent before the launch can look sent after it."""
    from datetime import UTC, datetime, timedelta

    from pika_tasks.records import RowRecord

    launched = datetime.now(UTC) - timedelta(minutes=5)
    record = RowRecord(
        id="a",
        state=state,  # type: ignore[arg-type]
        fingerprint="f",
        row={"resolution": "720p", "duration": 5},
        flow_run_id="shard-run",
        submitted_by=submitted_by,
        submitted_at=datetime.now(UTC).isoformat(),  # after the launch, on any clock
        request=handle_at("https://queue.example") if answered else None,
        error="refused" if state == "failed" else None,
    )
    outcome = shard_row_outcome(record, launched, video_exists=False)
    assert outcome.cost_usd == (0.2 if paid else 0.0)
    assert outcome.action == ("submit" if paid else "reattach")


def test_the_rows_of_a_shard_run_never_created_are_not_run_unless_done_before(
    tmp_path: Path,
) -> None:
    from pika_tasks.flows.scale_out import _recorded_rows, _Shard
    from pika_tasks.pricing import PriceTable
    from pika_tasks.records import RowRecord

    out = OutputLocation(str(tmp_path))
    (tmp_path / "a.mp4").write_bytes(b"video")
    out.save(
        RowRecord(
            id="a",
            state="succeeded",
            fingerprint="f",
            flow_run_id="an-earlier-run",
            output=str(tmp_path / "a.mp4"),
            size=5,
        )
    )
    shard = _Shard("big-shard-0001", "memory://s.jsonl", ["a", "b"], launch_error="503")
    rows = _recorded_rows(shard, out, {"a": 7, "b": 8}, PriceTable())
    assert [(r.id, r.row_number, r.status) for r in rows] == [
        ("a", 7, "skipped"),
        ("b", 8, "failed"),
    ]
    assert rows[1].error == (
        "not run: its shard run big-shard-0001 could not be created (503); nothing was paid for it"
    )


def test_a_crashed_shard_is_merged_from_its_records_not_its_hooks_partial_report(
    tmp_path: Path,
) -> None:
    """A crashed shard's cancellation hook reports only the rows it was making, at $0:
    the merged report takes every row of the shard from its record instead."""
    from datetime import UTC, datetime, timedelta

    from prefect.client.schemas.objects import FlowRun
    from prefect.states import Completed, Crashed

    from pika_tasks.flows.scale_out import _Shard, _shard_outcomes
    from pika_tasks.pipeline import ReportWriter, RowOutcome
    from pika_tasks.pricing import PriceTable
    from pika_tasks.records import RowRecord

    out = OutputLocation(str(tmp_path))
    run_id = uuid.uuid4()
    launched = datetime.now(UTC) - timedelta(minutes=1)
    (tmp_path / "done.mp4").write_bytes(b"video")
    common = {
        "fingerprint": "f",
        "flow_run_id": str(run_id),
        "submitted_at": utc_now(),
        "request": handle_at("https://queue.example"),  # both were queued at fal
    }
    out.save(
        RowRecord(id="done", state="succeeded", output=str(tmp_path / "done.mp4"), size=5, **common)
    )
    out.save(RowRecord(id="cut", state="cancelled", error="flow run crashed", **common))
    with ReportWriter(str(tmp_path), "big-shard-0000") as hook_report:
        hook_report.add(
            RowOutcome(id="cut", row_number=2, status="cancelled", error="flow run crashed")
        )
        url = hook_report.close().report_url
    shard = _Shard("big-shard-0000", "memory://s.jsonl", ["done", "cut"], launched_at=launched)
    shard.run = FlowRun(id=run_id, flow_id=uuid.uuid4(), name=shard.name, state=Crashed())
    numbers = {"done": 4, "cut": 9}
    logger = logging.getLogger("test")

    rows = _shard_outcomes(shard, url, out, numbers, PriceTable(), logger)
    assert [(r.id, r.row_number, r.status, r.cost_usd) for r in rows] == [
        ("done", 4, "succeeded", 0.2),
        ("cut", 9, "cancelled", 0.2),
    ]

    shard.run = shard.run.model_copy(update={"state": Completed()})
    rows = _shard_outcomes(shard, url, out, numbers, PriceTable(), logger)
    assert [(r.id, r.row_number) for r in rows] == [("cut", 9)]  # a completed shard's own word
