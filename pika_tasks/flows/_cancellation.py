"""What happens to requests at fal when a batch run is cancelled or crashes.

Cancelling a flow run (UI, ``prefect flow-run cancel``) stops the process, but
the jobs it queued at fal would go on and be billed.  The hook here, set as the
batch flow's ``on_cancellation`` and ``on_crashed`` hook, cancels (best effort)
every request this run submitted that has not finished, records those rows as
``cancelled`` at the output location, and writes the run's report.  A later
run of the same manifest looks at each cancelled request first: it fetches a
video fal made anyway (a running job is only signalled) and submits the rest
again.  A job fal had already finished is paid for: its row stays
``submitted``, and the next run fetches its video.  A row another run has
taken over since is left to that run.

A process killed with SIGKILL runs no hook; its rows stay ``submitted`` and the
next run re-attaches to them instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import FlowRun, State
from prefect.logging import get_logger

from pika_tasks.client import PikaClient
from pika_tasks.credentials import FalCredentials
from pika_tasks.errors import PikaError
from pika_tasks.models import RequestHandle
from pika_tasks.pipeline import Location, ReportWriter, RowOutcome
from pika_tasks.records import OutputLocation, RowRecord
from pika_tasks.settings import PikaSettings

logger = get_logger("pika_tasks.cancellation")


def _run_environment(flow_run: FlowRun) -> dict[str, str]:
    """The ``env`` the run's deployment gave its process (job variables), if any."""
    env = (flow_run.job_variables or {}).get("env")
    return (
        {str(k): str(v) for k, v in env.items() if v is not None} if isinstance(env, dict) else {}
    )


def settings_for_run(flow_run: FlowRun) -> PikaSettings:
    """The settings the run's own process had: this process's, overlaid with the
    run's job-variable ``env`` (where deployments set e.g. ``PIKA_QUEUE_URL``).

    The hook may run in the worker rather than the run's process; without the
    run's queue URL its client would not even send the key to the run's queue.
    """
    env = _run_environment(flow_run)
    overrides: dict[str, Any] = {}
    for name in PikaSettings.model_fields:
        variable = "FAL_KEY" if name == "fal_key" else f"PIKA_{name.upper()}"
        if variable in env:
            overrides[name] = env[variable]
    return PikaSettings(**overrides)


def _client(flow_run: FlowRun) -> PikaClient:
    credentials = dict(flow_run.parameters).get("credentials")
    if isinstance(credentials, FalCredentials):
        return credentials.get_client()
    return PikaClient(settings_for_run(flow_run))


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


# Said of a row whose job fal had finished when its run ended: it is paid for.
_PAID_FOR = (
    "the run ended after fal finished this job: it is paid for, and its record stays "
    "'submitted', so the next run fetches its video without submitting it again"
)


def _still_ours(current: RowRecord | None, listed: RowRecord) -> bool:
    """Whether the row is still this run's, with the same request: another run may have
    taken it over.  ``cancelled`` is still ours: Prefect may run the hook twice."""
    return (
        current is not None
        and current.state in ("submitted", "cancelled")
        and current.flow_run_id == listed.flow_run_id
        and current.request is not None
        and listed.request is not None
        and current.request.request_id == listed.request.request_id
    )


async def _video_to_fetch(client: PikaClient, handle: RequestHandle) -> bool:
    """Whether a job fal calls completed made a video (paid for); when fal cannot say,
    True: re-attaching to a failed job costs nothing, submitting a done one again does."""
    try:
        return not (await client.status(handle)).failed
    except PikaError:
        return True


async def _cancel_row(
    client: PikaClient, out: OutputLocation, listed: RowRecord, ending: str
) -> RowRecord | None:
    """Cancel one row's request at fal; the row's record as left, None if it is not ours now."""
    assert listed.request is not None
    current = await asyncio.to_thread(out.load, listed.id)
    if not _still_ours(current, listed):
        return None  # cancelling would stop the request another run now waits on
    assert current is not None
    if current.state == "cancelled":
        return current  # this hook ran already (Prefect may call it twice)
    answer = None
    try:
        answer = await client.cancel(listed.request)
    except PikaError as error:  # best effort: the row is recorded cancelled either way
        logger.warning("%s: could not cancel request: %s", listed.id, error)
    if (
        answer is not None
        and answer.status == "ALREADY_COMPLETED"
        and await _video_to_fetch(client, listed.request)
    ):
        # Recorded 'cancelled', the next run would submit (and pay for) the row again.
        return listed.model_copy(update={"state": "cancelled", "error": _PAID_FOR})
    current = await asyncio.to_thread(out.load, listed.id)
    if not _still_ours(current, listed):
        return None  # taken over while the cancel was in flight
    assert current is not None
    if current.state == "cancelled":
        return current
    cancelled = current.model_copy(update={"state": "cancelled", "error": f"flow run {ending}"})
    await asyncio.to_thread(out.save, cancelled)
    return cancelled


async def cancel_remote_requests(
    flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]
) -> None:
    """Flow hook: cancel this run's unfinished requests at fal and record them cancelled.

    A row is left alone when another run has taken it over since, and a job
    that fal had already finished keeps its ``submitted`` record: it is paid
    for, so the next run fetches its video instead of submitting it again.
    """
    target = Location.of(dict(flow_run.parameters)["output"])
    out = OutputLocation(target.url, target.storage_options)
    mine = [
        record
        for record in await asyncio.to_thread(out.records)
        if record.flow_run_id == str(flow_run.id)
    ]
    pending = [r for r in mine if r.state == "submitted" and r.request is not None]
    logger.info(
        "run %s ended %s: cancelling %d requests at fal", flow_run.name, state.name, len(pending)
    )
    finished = {record.id: record for record in mine}
    ending = (state.name or state.type.value).lower()
    async with _client(flow_run) as client:
        for record in pending:
            left = await _cancel_row(client, out, record, ending)
            if left is None:
                del finished[record.id]  # another run's row now: its report tells
            else:
                finished[record.id] = left
    with ReportWriter(out.url, flow_run.name, out.storage_options) as report:
        for record in sorted(finished.values(), key=lambda r: int(r.row.get("row_number", 0))):
            report.add(_outcome(record))
        await asyncio.to_thread(report.close)
