"""fal's queue, live: the counts the run shows (its progress callback and its progress
artifact, read back from the Prefect API) at moments the test holds still by pausing the
emulator, checked against what the emulator itself says."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
)
from prefect.context import FlowRunContext
from support import KEY, point_at, wait_until_async, write_manifest

from pika_tasks.flows import BatchResult, image_to_video_batch
from pika_tasks.flows._progress_bar import DESCRIPTION_SECONDS, ProgressBar
from pika_tasks.pipeline import BatchLimits, RowOutcome
from pika_tasks.pricing import PriceTable
from pika_tasks.progress import BatchProgress, ProgressTracker

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(240)]


class Watch:
    """The run's progress reports, and the id of the flow run that sends them."""

    def __init__(self) -> None:
        self.seen: list[BatchProgress] = []
        self.flow_run_id: UUID | None = None

    def __call__(self, progress: BatchProgress) -> None:
        if self.flow_run_id is None:
            context = FlowRunContext.get()
            assert context is not None and context.flow_run is not None
            self.flow_run_id = context.flow_run.id
        self.seen.append(progress)

    async def reaches(self, check: Callable[[BatchProgress], bool], what: str) -> BatchProgress:
        async def latest() -> BatchProgress | None:
            last = self.seen[-1] if self.seen else None
            return last if last is not None and check(last) else None

        return await wait_until_async(latest, what, 60)


async def fal_statuses(out: Path, row_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What the emulator says of each row's request, asked directly (not through the run)."""
    statuses = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Key {KEY}"}) as http:
        for row_id in row_ids:
            record = json.loads((out / f"{row_id}.json").read_text())
            answer = await http.get(record["request"]["status_url"])
            statuses[row_id] = answer.json()
    return statuses


async def progress_description(flow_run_id: UUID) -> str | None:
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                type=ArtifactFilterType(any_=["progress"]),
            )
        )
    return found[0].description if found else None


async def shows_in_prefect(flow_run_id: UUID, expected: str) -> None:
    """Wait for the progress artifact's description to be ``expected`` (it lags, bounded)."""

    async def shown() -> bool:
        return await progress_description(flow_run_id) == expected

    await wait_until_async(shown, f"the progress artifact to say {expected!r}", 30, interval=0.2)


async def test_queued_running_done_failed_position_and_spend_at_held_moments(
    make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # One runner, and no job starts until the test says so.
    emu = make_emulator(runners=1, job_seconds=2.0, fps=4)
    point_at(emu, monkeypatch)
    emu.pause()
    rows = ["a", "b", "c"]
    manifest = write_manifest(
        tmp_path,
        [f"{row},images/{n}.png,zoom in" for n, row in enumerate(rows)]
        + ["bad,images/missing.png,pan"],
    )
    out = tmp_path / "out"
    watch = Watch()
    run = asyncio.create_task(
        image_to_video_batch(
            str(manifest),
            str(out),
            limits=BatchLimits(max_concurrency=3),
            on_progress=watch,
            return_state=True,
        )
    )
    price = PriceTable().cost("720p", 5)
    title = f"Rows of {manifest}"

    # Held: every valid row waits in fal's queue, the invalid one has failed.
    held = await watch.reaches(
        lambda p: p.queued == 3 and p.failed == 1 and p.total is not None, "three rows queued"
    )
    fal = await fal_statuses(out, rows)
    assert {status["status"] for status in fal.values()} == {"IN_QUEUE"}
    assert held.oldest_queue_position == min(s["queue_position"] for s in fal.values())
    assert (held.running, held.downloading, held.succeeded, held.total) == (0, 0, 0, 4)
    assert held.spend_usd == pytest.approx(3 * price)
    assert watch.flow_run_id is not None
    await shows_in_prefect(watch.flow_run_id, f"{title}: {held.describe()}")
    assert "3 queued (oldest at position 0) · 0 running" in held.describe()

    # One runner takes the oldest row; paused again at once, so no other starts.
    emu.resume()
    # The started row's status and the others' moves up the queue come on separate
    # streams, in no set order: the run shows both once both have arrived.
    running = await watch.reaches(
        lambda p: p.running == 1 and p.oldest_queue_position == 0,
        "a row running, the next at the front of the queue",
    )
    emu.pause()
    assert running.queued == 2
    fal = await fal_statuses(out, rows)
    assert sorted(status["status"] for status in fal.values()) == [
        "IN_PROGRESS",
        "IN_QUEUE",
        "IN_QUEUE",
    ]

    # Held again once that row is done: two still queued, one done, one failed.
    done = await watch.reaches(lambda p: p.succeeded == 1, "the first row done")
    assert (done.queued, done.running, done.downloading, done.failed) == (2, 0, 0, 1)
    assert done.oldest_queue_position == min(
        status["queue_position"]
        for status in (await fal_statuses(out, rows)).values()
        if status["status"] == "IN_QUEUE"
    )
    assert done.spend_usd == pytest.approx(3 * price)
    await shows_in_prefect(watch.flow_run_id, f"{title}: {done.describe()}")

    emu.resume()
    state = await run
    result = await state.aresult(raise_on_failure=False)
    assert isinstance(result, BatchResult) and (result.succeeded, result.failed) == (3, 1)
    last = watch.seen[-1]
    assert (last.queued, last.running, last.downloading, last.done) == (0, 0, 0, 4)
    await shows_in_prefect(watch.flow_run_id, f"{title}: {last.describe()}")
    # Every row that reached fal was seen queued, then running, then downloading.
    assert max(p.downloading for p in watch.seen) >= 1


@flow
async def busy_queue(rows: int) -> tuple[int, str, float]:
    """Rows moving through fal's queue as fast as the loop goes, shown by a progress bar."""
    bar = await ProgressBar.create("Rows of a busy queue")
    tracker = ProgressTracker(None, bar.show, spend=None)
    started = time.monotonic()
    tracker.set_total(rows)
    # Every row moves through the queue with many position changes, and finishes.
    for n in range(rows):
        row_id = f"row-{n}"
        tracker.queued(row_id, 40)
        for position in range(39, -1, -10):
            tracker.status(row_id, status_of("IN_QUEUE", position))
            await asyncio.sleep(0)  # the bar's writer runs between the changes
        tracker.status(row_id, status_of("IN_PROGRESS"))
        tracker.downloading(row_id)
        tracker.finished(RowOutcome(id=row_id, row_number=n + 1, status="succeeded"))
        await asyncio.sleep(0)
    await bar.close()
    return bar.writes, bar.description, time.monotonic() - started


async def test_the_progress_artifact_writes_stay_bounded_however_often_rows_move() -> None:
    rows = 300
    state = await busy_queue(rows, return_state=True)
    writes, description, seconds = await state.aresult()
    # Create, at most one write per whole percent, one final, one per DESCRIPTION_SECONDS.
    assert writes <= 1 + 100 + 1 + int(seconds / DESCRIPTION_SECONDS) + 1, writes
    assert writes < rows  # far fewer than the rows' 2,400 changes
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                type=ArtifactFilterType(any_=["progress"]),
            )
        )
    assert [artifact.description for artifact in found] == [description]
    assert f"done {rows} · failed 0 of {rows}" in description
    assert float(found[0].data) == 100.0


def status_of(state: str, position: int | None = None) -> Any:
    from pika_tasks.models import QueueStatus

    return QueueStatus.model_validate(
        {"status": state, "request_id": "r", "queue_position": position}
    )
