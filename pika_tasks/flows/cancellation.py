"""What happens to requests at fal when a batch run is cancelled or crashes.

Cancelling a flow run (UI, ``prefect flow-run cancel``) stops the process, but
the jobs it queued at fal would go on and be billed.  The hook here, set as the
batch flow's ``on_cancellation`` and ``on_crashed`` hook, cancels (best effort)
every request this run submitted that has not finished, records those rows as
``cancelled`` at the output location, and writes the run's report, so a later
run of the same manifest submits them again.

A process killed with SIGKILL runs no hook; its rows stay ``submitted`` and the
next run re-attaches to them instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import FlowRun, State
from prefect.logging import get_logger

from pika_tasks.client import PikaClient
from pika_tasks.credentials import FalCredentials
from pika_tasks.records import OutputLocation, RowOutcome, RowRecord

logger = get_logger("pika_tasks.cancellation")


def _client(parameters: dict[str, Any]) -> PikaClient:
    credentials = parameters.get("credentials")
    if isinstance(credentials, FalCredentials):
        return credentials.get_client()
    return PikaClient()


def _outcome(record: RowRecord) -> RowOutcome:
    status = {"succeeded": "succeeded", "cancelled": "cancelled"}.get(record.state, "failed")
    return RowOutcome(
        id=record.id,
        row_number=int(record.row.get("row_number", 0)),
        status=status,  # type: ignore[arg-type]
        error=record.error,
        output=record.output if status == "succeeded" else None,
        request_id=record.request.request_id if record.request else None,
    )


async def cancel_remote_requests(
    flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]
) -> None:
    """Flow hook: cancel this run's unfinished requests at fal and record them cancelled."""
    parameters = dict(flow_run.parameters)
    output_options = parameters.get("output_storage_options")
    out = OutputLocation(
        parameters["output"],
        output_options if output_options is not None else parameters.get("storage_options"),
    )
    mine = [
        record
        for record in await asyncio.to_thread(out.records)
        if record.flow_run_id == str(flow_run.id)
    ]
    pending = [r for r in mine if r.state == "submitted" and r.request is not None]
    logger.info(
        "run %s ended %s: cancelling %d requests at fal", flow_run.name, state.name, len(pending)
    )
    async with _client(parameters) as client:
        for record in pending:
            assert record.request is not None
            with contextlib.suppress(Exception):  # best effort: record it either way
                await client.cancel(record.request)
            cancelled = record.model_copy(
                update={
                    "state": "cancelled",
                    "error": f"flow run {(state.name or state.type.value).lower()}",
                }
            )
            await asyncio.to_thread(out.save, cancelled)
    finished = {record.id: record for record in mine}
    finished.update({r.id: r.model_copy(update={"state": "cancelled"}) for r in pending})
    outcomes = sorted((_outcome(r) for r in finished.values()), key=lambda o: o.row_number)
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{flow_run.name}"
    await asyncio.to_thread(out.write_report, name, outcomes)
