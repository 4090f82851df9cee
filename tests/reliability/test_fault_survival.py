"""The batch flow against a faulty queue: every transient fault is survived, every
failed job is reported with fal's own words, and every expired result is paid again
only once, named as such in the run report.

Faults are injected by the emulator, deterministically under a seed (which answer
of which route fails depends on the seed and the order of requests, not on chance).
Each test prints a summary line (visible with ``pytest -s``) and asserts its figures.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from reliability_support import video_row
from support import noise_png, point_at, report_lines, run_batch, write_manifest

from pika_tasks.emulator._config import ALL_ROUTES

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(150)]

FPS = 4
FRAMES = 5 * FPS  # 5 s videos
SEED = 20261108

TRANSIENT = {
    "error_rate_5xx": 0.2,
    "error_rate_429": 0.1,
    "retry_after_seconds": 0.05,
    "fault_routes": ALL_ROUTES,
    "drop_download_rate": 0.4,
    "runner_failure_rate": 0.3,
}


def faulty_manifest(folder: Path) -> Path:
    """Nine rows: eight small PNGs, and one PNG over the 2 MB sent inline, so uploaded."""
    rows = [f"r{n},images/{n}.png,slow zoom in {n}" for n in range(8)]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "images" / "big.png").write_bytes(noise_png(830))
    rows.append("big,images/big.png,pan left")
    return write_manifest(folder, rows)


async def task_retries(flow_run_id: Any) -> int:
    """Task runs of the flow run that Prefect ran more than once, counted in retries."""
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sum(max(0, run.run_count - 1) for run in runs)


@contextlib.contextmanager
def client_log() -> Iterator[list[logging.LogRecord]]:
    """The client's log records while the block runs, whatever the root logger's handlers.

    Attached to the client's own logger: Prefect configures logging at its first run in a
    process, which replaces the root logger's handlers (and a capture attached there).
    """
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("pika_tasks.client")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def client_recoveries(records: list[logging.LogRecord]) -> tuple[int, int, int]:
    """What the client logged: (retries of a call, calls given up with no attempt left,
    status streams left for polling)."""
    messages = [record.getMessage() for record in records]
    retries = sum(message.startswith("retrying") for message in messages)
    gave_up = sum(message.startswith("giving up") for message in messages)
    fallbacks = sum("status stream failed" in message for message in messages)
    return retries, gave_up, fallbacks


async def test_transient_faults_on_every_route_are_all_survived(
    make_emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """503s and 429s on every route, cut downloads and failed runners: no row is lost."""
    emu = make_emulator(runners=4, job_seconds=0.2, fps=FPS, seed=SEED, **TRANSIENT)
    point_at(emu, monkeypatch)
    # At these rates about 6 in 10 download attempts fail: the client's default 5 retries
    # would lose a row in about one run of three. This queue needs more, and says so.
    monkeypatch.setenv("PIKA_MAX_RETRIES", "12")
    manifest = faulty_manifest(tmp_path)
    out = tmp_path / "out"

    with client_log() as records:
        state, result = await run_batch(str(manifest), str(out))

    lines = report_lines(result.report_url)
    lost = [line for line in lines if line["status"] != "succeeded"]
    assert not lost, lost
    assert state.is_completed(), state.message
    ids = [f"r{n}" for n in range(8)] + ["big"]
    rows = [video_row(out, row_id) for row_id in ids]
    assert [(r.codec, r.frames, r.mismatches) for r in rows] == [("h264", FRAMES, [])] * len(ids)
    assert {line["action"] for line in lines} == {"submit"}

    stats = emu.stats()
    faults: dict[str, int] = stats["faults"]
    http_faults = faults.get("http_5xx", 0) + faults.get("http_429", 0)
    injected = sum(faults.values())
    # Each answer replaced by a 503 or 429 and each cut download met one recovery
    # decision of the client, logged for every failed attempt: retry the call, give
    # it up when no attempt is left (only a task retry, when one is set, runs it again), or
    # leave the status stream for polling.  A job whose runner failed went back to
    # the queue and completed.
    retries, gave_up, fallbacks = client_recoveries(records)
    rescheduled = await task_retries(state.state_details.flow_run_id)
    requeued = faults.get("runner_failure", 0)
    survived = retries + gave_up + fallbacks + requeued
    print(
        f"\nfaults injected: {injected} {faults}; faults survived: {survived} "
        f"(client retries {retries}, calls given up then retried as a task {gave_up}, "
        f"status streams left for polling {fallbacks}, jobs re-queued {requeued}; "
        f"task retries {rescheduled}); rows: {len(lines)}; rows lost: {len(lost)}"
    )
    assert set(faults) >= {"http_5xx", "http_429", "drop_download", "runner_failure"}
    assert http_faults + faults["drop_download"] == retries + gave_up + fallbacks
    assert survived == injected
    # No row was lost, so every call the client gave up was run again by a task retry.
    assert gave_up <= rescheduled
    # Each job was paid once: a refused submit is not a queued one.
    assert stats["submissions"] == len(ids)
    assert stats["succeeded"] == len(ids)
    assert stats["uploads"] == 1
    assert stats["requests"]["storage_initiate"] >= 1


async def test_failed_jobs_are_reported_per_row_with_fals_error(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Jobs that fail at fal fail their own rows, with fal's words; the rest succeed."""
    emu = make_emulator(runners=4, job_seconds=0.1, fps=FPS, seed=SEED, job_failure_rate=0.5)
    point_at(emu, monkeypatch)
    rows = [f"r{n},images/{n}.png,tilt up {n}" for n in range(8)]
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"

    state, result = await run_batch(str(manifest), str(out), fail_on_partial=False)

    stats = emu.stats()
    failed = [line for line in report_lines(result.report_url) if line["status"] == "failed"]
    print(
        f"\njobs failed at fal: {stats['failed']} of {stats['submissions']}; "
        f"rows reported failed: {len(failed)}; rows succeeded: {result.succeeded}"
    )
    assert 0 < stats["failed"] < 8, "the seed must fail some jobs, not all"
    assert stats["failures_by_type"] == {"internal_server_error": stats["failed"]}
    assert len(failed) == stats["failed"] and result.succeeded == 8 - stats["failed"]
    assert state.is_completed()
    for line in failed:
        # fal's own error text and type, and the request it concerns.
        assert "Internal error while generating the video." in line["error"]
        assert "internal_server_error" in line["error"]
        assert line["request_id"] and line["request_id"] in line["error"]
        assert not (out / f"{line['id']}.mp4").exists()
        record = json.loads((out / f"{line['id']}.json").read_text())
        assert record["state"] == "failed"
        assert "Internal error while generating the video." in record["error"]
    for line in report_lines(result.report_url):
        if line["status"] == "succeeded":
            row = video_row(out, line["id"])
            assert (row.codec, row.frames, row.mismatches) == ("h264", FRAMES, []), line["id"]
    # Failed jobs are not retried: a retry would pay for another video.
    assert stats["submissions"] == 8


async def test_expired_results_are_resubmitted_and_named_in_the_report(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A re-run resubmits only the rows whose result expired, and says so in the report."""
    emu = make_emulator(runners=4, job_seconds=0.1, fps=FPS, seed=SEED)
    point_at(emu, monkeypatch)
    manifest = write_manifest(tmp_path, [f"r{n},images/{n}.png,orbit {n}" for n in range(4)])
    out = tmp_path / "out"
    _, first = await run_batch(str(manifest), str(out))
    assert first.succeeded == 4
    kept = video_row(out, "r0")
    assert (kept.codec, kept.frames, kept.mismatches) == ("h264", FRAMES, [])
    # Two videos are lost locally; their results then expire at fal.
    for row_id in ("r1", "r2"):
        (out / f"{row_id}.mp4").unlink()
    handles = [
        json.loads((out / f"{row_id}.json").read_text())["request"] for row_id in ("r1", "r2")
    ]
    old_requests = sorted(handle["request_id"] for handle in handles)
    assert emu.expire(*old_requests) == old_requests

    _, second = await run_batch(str(manifest), str(out))

    actions = {line["id"]: line["action"] for line in report_lines(second.report_url)}
    print(
        f"\nexpired results resubmitted: {sum(a == 'resubmit-expired' for a in actions.values())}"
    )
    assert actions == {
        "r0": "skip",
        "r1": "resubmit-expired",
        "r2": "resubmit-expired",
        "r3": "skip",
    }
    assert (second.succeeded, second.skipped, second.submitted) == (2, 2, 2)
    assert emu.stats()["submissions"] == 6
    again = {row_id: video_row(out, row_id) for row_id in ("r0", "r1", "r2")}
    assert {(r.codec, r.frames, str(r.mismatches)) for r in again.values()} == {
        ("h264", FRAMES, "[]")
    }
    # The resubmitted rows name their new requests; the kept video is the same file.
    assert not {again[r].record["request"]["request_id"] for r in ("r1", "r2")} & set(old_requests)
    assert again["r0"].record["sha256"] == kept.record["sha256"]
