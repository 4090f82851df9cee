"""A scale-out shard run again while its first attempt still runs (a retried shard, on a
real Prefect server with two workers): the two attempts share the shard's rows through
their claims, and fal is asked for one video per row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import deploy, run_deployment, start_workers, wait_for_state
from prefect_stack import PrefectStack
from support import probe_video, wait_until, write_manifest

from pika_tasks.claims import ClaimBook
from pika_tasks.pipeline import read_report, report_urls
from pika_tasks.records import OutputLocation

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]


def test_a_retried_shard_overlapping_its_first_attempt_pays_once(
    stack: PrefectStack, make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    emu = make_emulator(runners=4, job_seconds=0.2, fps=4)
    # Jobs wait at fal until both attempts of the shard are running: the overlap is sure.
    emu.pause()
    deploy(stack, emu, tmp_path)
    start_workers(stack, 2)
    rows = [f"r{n},images/{n % 8}.png,zoom in {n}" for n in range(6)]
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    location = OutputLocation(str(out))

    parent = run_deployment(
        stack,
        "image-to-video-scale-out/scale-out",
        manifest=str(manifest),
        output=str(out),
        shard_size=3,
    )

    def first_shard() -> dict[str, Any] | None:
        children = stack.api(
            "POST",
            "/flow_runs/filter",
            json={"flow_runs": {"parent_flow_run_id": {"any_": [parent]}}},
        )
        shard = next((r for r in children if r["name"].endswith("-shard-0000")), None)
        return shard if shard and shard["state"]["type"] == "RUNNING" else None

    shard = wait_until(first_shard, "the first shard to run", timeout=120)
    shard_ids = {f"r{n}" for n in range(3)}

    book = ClaimBook(location)

    def shard_rows_claimed() -> bool:
        # Claimed, not submitted: with the emulator paused, the other shard may hold both
        # of the global limit's slots, and this shard's rows wait for one, claimed.
        return any(book.current(row_id) is not None for row_id in shard_ids)

    wait_until(shard_rows_claimed, "the first attempt to claim a row", timeout=120)
    retry = run_deployment(stack, "image-to-video-batch/batch", **shard["parameters"])
    wait_until(
        lambda: stack.flow_run(retry)["state"]["type"] == "RUNNING",
        "the retried shard to run",
        timeout=120,
    )
    emu.resume()

    assert wait_for_state(stack, parent) == "COMPLETED", stack.tail()
    assert wait_for_state(stack, retry) == "COMPLETED", stack.tail()
    assert emu.stats()["submissions"] == len(rows)
    for n in range(len(rows)):
        assert probe_video((out / f"r{n}.mp4").read_bytes())["codec"] == "h264"
    made: dict[str, int] = {}
    for url in report_urls(str(out)):
        if url.endswith("-merged.jsonl"):
            continue
        for line in read_report(url).rows:
            if line.status == "succeeded" and line.id:
                made[line.id] = made.get(line.id, 0) + 1
    assert made == dict.fromkeys(made, 1) and set(made) == {f"r{n}" for n in range(6)}, made
