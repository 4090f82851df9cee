"""Runs that overlap on one output pay once per row: two and three ``pika-tasks run``
processes on the same manifest at once (local folder and S3), one of them SIGKILLed, and a
claim left by a run that Prefect reports over.

Every test ends with the emulator's own count: exactly one submission per row, and one
valid video per row."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pytest
from flow_support import kill_when, run_to_end, start_batch, wait_while_running
from support import explain, point_at, probe_video, run_batch, write_manifest

from pika_tasks.claims import Claim, ClaimBook, Holder
from pika_tasks.flows import image_to_video_batch
from pika_tasks.pipeline import BatchLimits, read_report, report_urls
from pika_tasks.records import OutputLocation

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(240)]

ROWS = [f"r{n},images/{n}.png,zoom in {n}" for n in range(6)]
IDS = [f"r{n}" for n in range(len(ROWS))]


def check_one_video_per_row(location: OutputLocation) -> None:
    fs, root = fsspec.core.url_to_fs(location.url, **location.storage_options)
    fs.invalidate_cache()
    for row_id in IDS:
        assert probe_video(fs.cat_file(f"{root}/{row_id}.mp4"))["codec"] == "h264", row_id
        record = location.load(row_id)
        assert record is not None and record.state == "succeeded", record
    # Every claim released, and the last run to end removed the empty folder.
    assert not fs.exists(f"{root}/_claims"), fs.find(f"{root}/_claims")


def made_by(location: OutputLocation) -> dict[str, list[str]]:
    """For each row, the runs whose report says they made its video."""
    made: dict[str, list[str]] = {row_id: [] for row_id in IDS}
    for url in report_urls(location.url, location.storage_options):
        report = read_report(url, location.storage_options)
        for row in report.rows:
            if row.status == "succeeded" and row.id:
                made[row.id].append(report.flow_run_name)
    return made


def storage_flags(options: dict[str, Any]) -> list[str]:
    usable = {k: v for k, v in options.items() if k != "skip_instance_cache"}
    return ["--output-storage-options", json.dumps(usable)] if usable else []


@pytest.mark.parametrize("store", ["local", "s3"])
def test_concurrent_runs_of_one_manifest_pay_once_per_row(
    store: str, make_emulator: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Three runs at once: every pair of them races for every row (two alone add nothing).
    runs = 3
    emu = make_emulator(runners=4, job_seconds=0.3, fps=4)
    manifest = write_manifest(tmp_path, ROWS)
    if store == "s3":
        bucket, options = request.getfixturevalue("s3_bucket")
        location = OutputLocation(f"{bucket}/out", options)
    else:
        location = OutputLocation(str(tmp_path / "out"))
    flags = storage_flags(location.storage_options)

    processes = [
        start_batch(manifest, location.url, emu, "--max-concurrency", "3", *flags)
        for _ in range(runs)
    ]
    for process in processes:
        _, err = process.communicate(timeout=180)
        assert process.returncode == 0, err.decode()[-3000:]

    assert emu.stats()["submissions"] == len(ROWS)
    check_one_video_per_row(location)
    made = made_by(location)
    assert all(len(runs_) == 1 for runs_ in made.values()), made


def test_a_killed_run_leaves_its_rows_to_a_run_beside_it(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.3, fps=4)
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    location = OutputLocation(str(out))

    def submitted_by() -> set[str]:
        found = (location.load(row_id) for row_id in IDS)
        return {r.flow_run_id for r in found if r is not None and r.state == "submitted"}

    # fal starts nothing until resumed, so whatever a run submits stays in flight: the
    # doomed run (alone, one row at a time) is killed with its row at fal and claimed.
    emu.pause()
    doomed = start_batch(manifest, out, emu, "--max-concurrency", "1")
    wait_while_running(doomed, lambda: bool(submitted_by()))
    (doomed_run,) = submitted_by()
    survivor = start_batch(manifest, out, emu, "--max-concurrency", "2")
    try:
        # Killed only once the run beside it is at work on rows of its own.
        kill_when(doomed, lambda: bool(submitted_by() - {doomed_run}))
        emu.resume()
        _, err = survivor.communicate(timeout=180)
        assert survivor.returncode == 0, err.decode()[-3000:]
    finally:
        if survivor.poll() is None:
            survivor.kill()

    assert emu.stats()["submissions"] == len(ROWS)
    check_one_video_per_row(location)
    # The survivor re-attached to what the killed run had submitted: fetched, not paid again.
    (survivor_report,) = report_urls(str(out))  # the killed run wrote none
    rows = read_report(survivor_report).rows
    taken_over = [row for row in rows if row.action == "reattach"]
    assert taken_over and all(row.status == "succeeded" for row in taken_over), rows

    later = run_to_end(manifest, out, emu)
    assert later.returncode == 0, explain(later)
    assert emu.stats()["submissions"] == len(ROWS)
    assert {row.status for row in read_report(report_urls(str(out))[-1]).rows} == {"skipped"}


def _left_claim(location: OutputLocation, row_id: str, holder: Holder) -> None:
    """A claim as a run leaves it when it stops without releasing it (long lease)."""
    now = datetime.now(UTC)
    claim = Claim(
        row_id=row_id,
        generation=1,
        holder=holder,
        taken_at=now,
        lease_expires_at=now + timedelta(hours=1),
    )
    path = Path(location.url) / "_claims" / row_id / "00000001.json"
    path.parent.mkdir(parents=True)
    path.write_text(claim.model_dump_json())


async def test_a_claim_of_a_run_prefect_reports_over_is_taken_over(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Completed

    emu = make_emulator(runners=2, job_seconds=0.2, fps=4)
    point_at(emu, monkeypatch)
    manifest = write_manifest(tmp_path, ROWS[:2])
    location = OutputLocation(str(tmp_path / "out"))
    async with get_client() as client:
        run = await client.create_flow_run(
            flow=image_to_video_batch, name="an-earlier-run", state=Completed()
        )
    # Its process looks alive (this test's parent) and its lease has an hour to go:
    # only Prefect can tell that the run is over.
    holder = Holder(flow_run_id=str(run.id), flow_run_name="an-earlier-run", pid=os.getppid())
    _left_claim(location, "r0", holder)

    state, result = await run_batch(
        str(manifest), location.url, limits=BatchLimits(claim_lease_seconds=600)
    )
    assert result.succeeded == 2, state.message
    assert emu.stats()["submissions"] == 2
    assert ClaimBook(location).current("r0") is None


async def test_a_row_held_by_a_live_run_is_not_submitted(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.2, fps=4)
    point_at(emu, monkeypatch)
    manifest = write_manifest(tmp_path, ROWS[:2])
    location = OutputLocation(str(tmp_path / "out"))
    # A live holder: another process of this host, a fresh lease, a run Prefect doesn't know.
    sleeper = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        _left_claim(location, "r1", Holder(flow_run_id=str(uuid.uuid4()), pid=sleeper.pid))
        _, result = await run_batch(
            str(manifest), location.url, limits=BatchLimits(claim_wait_seconds=0.5)
        )
    finally:
        sleeper.kill()
        await sleeper.wait()
    assert (result.succeeded, result.skipped, emu.stats()["submissions"]) == (1, 1, 1)
    held = next(row for row in read_report(result.report_url).rows if row.id == "r1")
    assert held.action == "held" and f"pid {sleeper.pid}" in (held.error or "")
