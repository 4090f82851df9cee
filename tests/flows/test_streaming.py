"""The batch flow streams its rows: the first submit goes out before the last image is read,
and the rows held at once are bounded by the limits, not by the manifest."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from prefect.context import FlowRunContext
from support import CountingMemoryFileSystem, png_bytes, run_batch, wait_until, write_manifest

from pika_tasks.flows import image_to_video_batch
from pika_tasks.pipeline import BatchLimits, BatchResult
from pika_tasks.progress import BatchProgress

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(120)]

ROWS = 24


async def test_the_first_submit_precedes_the_last_image_read(queue: Any) -> None:
    root = f"countmem://stream-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("countmem")
    for n in range(ROWS):
        fs.pipe(f"{root}/in/{n}.png", png_bytes(color=(n * 5, 90, 200 - n * 4)))
    lines = ["id,image,prompt", *(f"r{n},{n}.png,zoom in {n}" for n in range(ROWS))]
    fs.pipe(f"{root}/in/manifest.csv", ("\n".join(lines) + "\n").encode())
    last_image = f"/{root.removeprefix('countmem://')}/in/{ROWS - 1}.png"
    lock = threading.Lock()
    done = 0
    images_read = 0
    most_held = 0
    submitted_before_last_read: list[int] = []

    def before_read(path: str) -> None:
        nonlocal images_read, most_held
        if not path.endswith(".png"):
            return
        with lock:
            images_read += 1
            most_held = max(most_held, images_read - done)
        if path == last_image:
            # Held until fal has a job: without streaming this read comes first and times out.
            count = wait_until(
                lambda: queue.stats()["submissions"], "a submit before the last image is read", 30
            )
            submitted_before_last_read.append(count)

    def progress(update: BatchProgress) -> None:
        nonlocal done
        with lock:
            done = update.done

    CountingMemoryFileSystem.before_read = before_read
    try:
        state = await image_to_video_batch(
            f"{root}/in/manifest.csv",
            f"{root}/out",
            limits=BatchLimits(max_concurrency=2, lookahead=1),
            on_progress=progress,
            return_state=True,
        )
    finally:
        CountingMemoryFileSystem.before_read = None
    result = await state.aresult(raise_on_failure=False)
    assert isinstance(result, BatchResult) and result.succeeded == ROWS, state.message
    assert submitted_before_last_read and submitted_before_last_read[0] >= 1
    assert queue.stats()["submissions"] == ROWS
    # Read but unfinished rows: 2 x max_concurrency runners plus four times the lookahead.
    assert most_held <= 2 * 2 + 4 * 1, most_held
    # Each image was read once: checked, hashed and sent from the same bytes.
    folder = last_image.rsplit("/", 1)[0] + "/"
    reads = CountingMemoryFileSystem.reads
    pngs = {p: n for p, n in reads.items() if p.startswith(folder) and p.endswith(".png")}
    assert len(pngs) == ROWS and set(pngs.values()) == {1}, pngs


async def test_finished_rows_leave_nothing_in_prefects_run_context(
    queue: Any, tmp_path: Path
) -> None:
    # Prefect keeps each task run's result state and downstream assets in the flow run's
    # context for the run's life; the flow forgets a row's once it has finished.
    rows = 12
    manifest = write_manifest(tmp_path, [f"r{n},images/{n % 3}.png,zoom {n}" for n in range(rows)])
    held: list[tuple[int, int, int]] = []

    def progress(update: BatchProgress) -> None:
        context = FlowRunContext.get()
        assert context is not None
        held.append((update.done, len(context.run_results), len(context.task_run_assets)))

    _, result = await run_batch(
        str(manifest),
        str(tmp_path / "out"),
        limits=BatchLimits(max_concurrency=2),
        on_progress=progress,
    )

    assert result.succeeded == rows
    # Each row's three task runs were there while it ran...
    assert max(assets for _, _, assets in held) >= 3
    # ...and nothing is left once every row has finished.
    assert [(results, assets) for done, results, assets in held if done == rows] == [(0, 0)]
