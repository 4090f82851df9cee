"""A batch process killed with SIGKILL at several points, then run again: every row
ends with exactly one valid video and exactly one submission at the emulator.

The process is killed from outside when the point is observed (records on disk,
files at the output, counters at the emulator), never on a timer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flow_support import KEY
from helpers import probe_video, write_manifest

from pika_tasks.records import OutputLocation, RowRecord
from pika_tasks.storage import TEMP_MARKER

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(240)]

ROWS = [f"r{n},images/{n}.png,zoom in {n}" for n in range(4)]


def batch_env(emu: Any) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        "FAL_KEY": KEY,
        "PIKA_QUEUE_URL": emu.url,
        "PIKA_STORAGE_URL": emu.url,
        "PIKA_POLL_INTERVAL": "0.05",
        "PIKA_MAX_POLL_INTERVAL": "0.2",
        # The harness's API: quicker than an ephemeral server per process.
        "PREFECT_API_URL": PREFECT_API_URL.value() or "",
    }


def start_batch(manifest: Path, out: Path, emu: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pika_tasks", "run", str(manifest), "--out", str(out)],
        env=batch_env(emu),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_when(
    process: subprocess.Popen[bytes], seen: Callable[[], bool], limit: float = 90
) -> None:
    deadline = time.monotonic() + limit
    while not seen():
        assert process.poll() is None, (
            process.stderr.read().decode()[-3000:] if process.stderr else ""
        )
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def records(out: Path) -> list[RowRecord]:
    location = OutputLocation(str(out))
    found = [location.load(f"r{n}") for n in range(len(ROWS))]
    return [r for r in found if r is not None]


def rerun_and_check(manifest: Path, out: Path, emu: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pika_tasks", "run", str(manifest), "--out", str(out)],
        env=batch_env(emu),
        capture_output=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    for n in range(len(ROWS)):
        info = probe_video((out / f"r{n}.mp4").read_bytes())
        assert (info["codec"], info["frames"]) == ("h264", 5 * 4)
        record = json.loads((out / f"r{n}.json").read_text())
        assert record["state"] == "succeeded"
        assert record["size"] == (out / f"r{n}.mp4").stat().st_size
    assert emu.stats()["submissions"] == len(ROWS)
    assert not [p.name for p in out.rglob("*") if TEMP_MARKER in p.name]


@pytest.mark.parametrize(
    "point",
    ["all-submitted-while-waiting", "first-video-written", "mid-download"],
)
def test_killed_batch_resumes_without_paying_twice(
    point: str, make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    big = point == "mid-download"
    emu = make_emulator(
        runners=2,
        job_seconds=1.0 if point != "first-video-written" else 0.3,
        fps=4,
        # Large videos make a download long enough to be caught half way.
        min_video_bytes=40_000_000 if big else 0,
    )
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    process = start_batch(manifest, out, emu)

    def seen() -> bool:
        if point == "all-submitted-while-waiting":
            found = records(out)
            return len(found) == len(ROWS) and all(r.state == "submitted" for r in found)
        if point == "first-video-written":
            return any(out.glob("r*.mp4"))
        return emu.stats()["bytes_served"] > 0 and any(
            TEMP_MARKER in p.name for p in out.glob(".*")
        )

    kill_when(process, seen)
    if point == "mid-download":
        assert not list(out.glob("r*.mp4")), "a partial video was left at a final path"
    rerun_and_check(manifest, out, emu)


def test_unrecorded_submit_is_reported_not_paid_again(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """A crash after fal accepted a submit but before its answer was recorded leaves a
    'submitting' record; the next run reports the row instead of submitting it again,
    unless told to."""
    emu = make_emulator(runners=2, job_seconds=0.1, fps=4)
    manifest = write_manifest(tmp_path, ROWS[:2])
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "pika_tasks", "run", str(manifest), "--out", str(out)],
        env=batch_env(emu),
        capture_output=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    # Put row r1 back in the state such a crash leaves: intent recorded, no request, no video.
    location = OutputLocation(str(out))
    record = location.load("r1")
    assert record is not None
    location.save(record.model_copy(update={"state": "submitting", "request": None}))
    (out / "r1.mp4").unlink()

    again = subprocess.run(
        [sys.executable, "-m", "pika_tasks", "run", str(manifest), "--out", str(out)],
        env=batch_env(emu),
        capture_output=True,
        timeout=180,
    )
    assert again.returncode == 1
    assert emu.stats()["submissions"] == 2
    report = location.reports()[-1]
    lines = [json.loads(line) for line in Path(report).read_text().splitlines()]
    r1 = next(line for line in lines if line["id"] == "r1")
    assert r1["status"] == "failed" and "--resubmit-unknown" in r1["error"]

    forced = subprocess.run(
        [
            sys.executable,
            "-m",
            "pika_tasks",
            "run",
            str(manifest),
            "--out",
            str(out),
            "--resubmit-unknown",
        ],
        env=batch_env(emu),
        capture_output=True,
        timeout=180,
    )
    assert forced.returncode == 0, forced.stderr.decode()[-3000:]
    assert emu.stats()["submissions"] == 3
    assert (out / "r1.mp4").exists()
