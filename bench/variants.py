"""The same batch of work, three ways: our batch flow, our client alone, fal's client.

Each ``run_*`` coroutine turns ``rows`` copies of one image into videos
written under ``out``, with at most ``concurrency`` rows in flight, and
returns what it did.  Where the queue is comes from the environment
(``PIKA_QUEUE_URL`` for ours, ``FAL_QUEUE_RUN_HOST`` for fal's, and
``SSL_CERT_FILE`` to trust the emulator's certificate).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.files import count_videos, image_arguments, open_local, write_manifest

APPLICATION = "fal-ai/pika/v2.2/image-to-video"


@dataclass
class BatchOutcome:
    """What one batch did: its rows, its errors and when it ran (monotonic seconds)."""

    rows: int
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


async def _gather_rows(
    rows: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> BatchOutcome:
    """Run ``one(n)`` for every row with a semaphore; count successes, keep error texts."""
    gate = asyncio.Semaphore(concurrency)
    outcome = BatchOutcome(rows=rows)

    async def guarded(n: int) -> None:
        async with gate:
            try:
                await one(n)
            except Exception as error:
                outcome.errors.append(f"{type(error).__name__}: {error}")
            else:
                outcome.ok += 1

    outcome.started = time.monotonic()
    await asyncio.gather(*(guarded(n) for n in range(rows)))
    outcome.ended = time.monotonic()
    return outcome


async def run_client(rows: int, concurrency: int, image: Path, out: Path) -> BatchOutcome:
    """Our client alone, no Prefect: submit, wait (status stream), result, download per row."""
    from pika_tasks.client import PikaClient

    arguments = image_arguments(image)
    async with PikaClient() as client:

        async def one(n: int) -> None:
            handle = await client.submit(arguments)
            await client.wait(handle)
            output = await client.result(handle)
            with open_local(out / f"{n:05d}.mp4") as sink:
                await client.download(output.video.url, sink.write)

        return await _gather_rows(rows, concurrency, one)


async def run_fal(rows: int, concurrency: int, image: Path, out: Path) -> BatchOutcome:
    """fal's official client with its defaults: ``submit`` then ``result`` (polls every 0.1 s).

    fal-client has no download helper; the video is streamed with a plain httpx client.
    """
    import fal_client

    arguments = image_arguments(image)
    client = fal_client.AsyncClient(key=os.environ["FAL_KEY"])
    async with httpx.AsyncClient(timeout=120.0) as http:

        async def one(n: int) -> None:
            handle = await client.submit(APPLICATION, arguments)
            output = await client.result(APPLICATION, handle.request_id)
            async with http.stream("GET", output["video"]["url"]) as response:
                response.raise_for_status()
                with open_local(out / f"{n:05d}.mp4") as sink:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)

        return await _gather_rows(rows, concurrency, one)


async def run_flow(
    rows: int, concurrency: int, image: Path, out: Path, **parameters: Any
) -> BatchOutcome:
    """Our batch flow on a CSV manifest of ``rows`` rows, ``max_concurrency=concurrency``."""
    from pika_tasks.flows import image_to_video_batch
    from pika_tasks.pipeline import BatchLimits

    manifest = write_manifest(out / "manifest", rows, image)
    outcome = BatchOutcome(rows=rows)
    outcome.started = time.monotonic()
    state = await image_to_video_batch(
        str(manifest),
        str(out),
        limits=BatchLimits(max_concurrency=concurrency),
        return_state=True,
        **parameters,
    )
    outcome.ended = time.monotonic()
    result = await state.aresult(raise_on_failure=False)
    succeeded = getattr(result, "succeeded", None)
    outcome.ok = succeeded if isinstance(succeeded, int) else 0
    outcome.extra = {"state": state.type.value, "message": state.message}
    if not state.is_completed():
        outcome.errors.append(f"flow ended {state.type.value}: {state.message}")
    return outcome


async def run_flow_tagged(rows: int, concurrency: int, image: Path, out: Path) -> BatchOutcome:
    """The batch flow with its task runs tagged ``fal`` (``task_tags=["fal"]``).

    Measures what the default (untagged task runs) saves: a tagged task run
    asks the Prefect API for concurrency slots before it starts.
    """
    return await run_flow(rows, concurrency, image, out, task_tags=["fal"])


async def run_pipeline(rows: int, concurrency: int, image: Path, out: Path) -> BatchOutcome:
    """The batch flow's row pipeline without Prefect: the same stream, plans, claims,
    records, report and copies as the flow, each row's calls made on the client
    (:class:`~pika_tasks.pipeline.ClientSteps`) instead of as task runs.

    Between ``client`` and ``flow``: what the pipeline costs, and (``flow`` less
    this) what its Prefect wiring costs.
    """
    from pika_tasks.claims import ClaimBook, Holder
    from pika_tasks.client import PikaClient
    from pika_tasks.manifest import RowDefaults, iter_manifest
    from pika_tasks.pipeline import (
        BatchLimits,
        ClientSteps,
        Planner,
        ReportWriter,
        RowClaims,
        RowContext,
        RowOutcome,
        run_row,
        started,
        stream_rows,
    )
    from pika_tasks.pricing import PriceTable
    from pika_tasks.records import OutputLocation

    manifest = write_manifest(out / "manifest", rows, image)
    outcome = BatchOutcome(rows=rows)
    outcome.started = time.monotonic()
    items = await started(iter_manifest(str(manifest), defaults=RowDefaults()))
    location = OutputLocation(str(out))
    async with PikaClient(follow_in_thread=True) as client:
        steps = ClientSteps(client, max_concurrency=concurrency)
        ctx = RowContext(
            out=location,
            steps=steps,
            prices=PriceTable.from_settings(client.settings),
            claims=RowClaims(ClaimBook(location), Holder(flow_run_id="bench")),
        )
        planner = Planner(location, endpoint_id=client.settings.endpoint_id)
        with ReportWriter(str(out), "bench") as report:

            def finished(row: RowOutcome) -> None:
                report.add(row)
                if row.status == "succeeded":
                    outcome.ok += 1
                elif row.error:
                    outcome.errors.append(row.error)

            await stream_rows(
                items,
                plan=planner.plan,
                run=lambda plan: run_row(plan, ctx),
                on_outcome=finished,
                workers=2 * concurrency,  # as the flow
                lookahead=BatchLimits(max_concurrency=concurrency).planning_lookahead,
            )
            await asyncio.to_thread(report.close)
    outcome.ended = time.monotonic()
    return outcome


async def run_flow_floor(rows: int, concurrency: int, image: Path, out: Path) -> BatchOutcome:
    """Prefect's own cost in the batch flow's shape: per row, three task runs that do nothing.

    No fal, no files, no records: what is left is Prefect starting a flow run
    and running three task runs a row (their states, events and results),
    ``concurrency`` rows at a time, against the same kind of server as the
    flow variant.  ``extra["first_task_s"]``: from the call to the first
    task's body, Prefect's start-up in a fresh process.
    """
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    first: list[float] = []

    async def nothing(n: int) -> int:
        if not first:
            first.append(time.monotonic())
        return n

    steps = [
        task(nothing, name=name, cache_policy=NO_CACHE)
        for name in ("submit-nothing", "wait-nothing", "fetch-nothing")
    ]

    @flow(name="flow-floor")
    async def floor() -> int:
        gate = asyncio.Semaphore(concurrency)

        async def row(n: int) -> None:
            async with gate:
                for step in steps:
                    await step(n)

        await asyncio.gather(*(row(n) for n in range(rows)))
        return rows

    outcome = BatchOutcome(rows=rows)
    outcome.started = time.monotonic()
    outcome.ok = await floor()
    outcome.ended = time.monotonic()
    outcome.extra = {"first_task_s": round(first[0] - outcome.started, 3) if first else None}
    return outcome


RUNNERS: dict[str, Callable[[int, int, Path, Path], Awaitable[BatchOutcome]]] = {
    "flow": run_flow,
    "flow-tagged": run_flow_tagged,
    "flow-floor": run_flow_floor,
    "pipeline": run_pipeline,
    "client": run_client,
    "fal": run_fal,
}
"""Variant name -> its coroutine."""


def written(out: Path) -> tuple[int, int]:
    """Videos written under ``out`` and their bytes (see :func:`bench.files.count_videos`)."""
    return count_videos(out)
