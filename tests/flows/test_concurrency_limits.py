"""The batch flow under Prefect's global concurrency and rate limits (in-process)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from support import write_manifest

from pika_tasks.flows import image_to_video_batch
from pika_tasks.pipeline import BatchLimits

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROWS = [f"r{n},images/{n}.png,zoom in {n}" for n in range(3)]


async def create_limit(limit: int, decay: float = 0.0) -> str:
    name = f"fal-test-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=limit, slot_decay_per_second=decay)
        )
    return name


async def flow_logs(state: Any) -> list[str]:
    # Run logs reach the API in batches: send what is pending before reading them back.
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    return [log.message for log in logs]


async def test_a_missing_limit_is_reported_once_and_the_run_still_works(
    queue: Any, tmp_path: Path
) -> None:
    missing = f"fal-missing-{uuid.uuid4().hex[:8]}"
    manifest = write_manifest(tmp_path, ROWS)
    state = await image_to_video_batch(
        str(manifest),
        str(tmp_path / "out"),
        limits=BatchLimits(concurrency_limit=missing),
        return_state=True,
    )
    assert state.is_completed()
    notices = [m for m in await flow_logs(state) if f"no global concurrency limit {missing!r}" in m]
    assert len(notices) == 1
    assert "prefect gcl create" in notices[0]


async def test_the_global_limit_bounds_requests_in_flight(queue: Any, tmp_path: Path) -> None:
    # The emulator runs 4 at once and the run allows 4; the global limit allows 1.
    name = await create_limit(1)
    manifest = write_manifest(tmp_path, ROWS)
    state = await image_to_video_batch(
        str(manifest),
        str(tmp_path / "out"),
        limits=BatchLimits(concurrency_limit=name, max_concurrency=4),
        return_state=True,
    )
    assert state.is_completed()
    assert queue.stats()["submissions"] == 3
    assert queue.stats()["max_in_progress"] == 1


async def test_the_rate_limit_paces_submits(queue: Any, tmp_path: Path) -> None:
    # One slot that frees at 2 per second: three submits take at least ~1 s.
    rate = await create_limit(1, decay=2.0)
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    state = await image_to_video_batch(
        str(manifest),
        str(out),
        limits=BatchLimits(submit_rate_limit=rate, max_concurrency=3),
        return_state=True,
    )
    assert state.is_completed()
    times = sorted(
        datetime.fromisoformat(json.loads((out / f"r{n}.json").read_text())["submitted_at"])
        for n in range(3)
    )
    assert (times[-1] - times[0]).total_seconds() >= 0.8
