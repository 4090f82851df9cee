"""One row's straight line from plan to MP4: submit, wait, fetch, record.

:func:`run_row` takes a :class:`~pika_tasks.pipeline.RowPlan` to its
:class:`~pika_tasks.pipeline.RowOutcome`.  The three steps that talk to fal
come from a :class:`RowSteps` (the batch flow passes its Prefect tasks; a test
or a script can pass plain client calls), so this module knows nothing of
Prefect.

The record at the output location is written at each point where a crash
would otherwise lose money: ``submitting`` before the submit (so a lost answer
is reported, never paid twice), ``submitted`` with the request right after
it, and ``succeeded`` (or ``failed``) at the end.

fal's slot (the account's concurrency) is held only while fal works: from just
before the submit until fal reports the job done; the video downloads after
the slot is given back, so the account's runners never idle while we copy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from pika_tasks.budget import Budget, BudgetRefusedError
from pika_tasks.errors import (
    ClaimLostError,
    ImageError,
    JobFailedError,
    PikaError,
    RequestAbortedError,
    RequestNotFoundError,
    SubmitOutcomeUnknownError,
    is_transient,
)
from pika_tasks.images import deliver_image_url
from pika_tasks.manifest import RowError
from pika_tasks.models import (
    DownloadedFile,
    ImageToVideoInput,
    ImageToVideoOutput,
    QueueStatus,
    RequestHandle,
)
from pika_tasks.pipeline._claiming import HeldElsewhere, RowClaims
from pika_tasks.pipeline._plan import Action, RowPlan, decide
from pika_tasks.pipeline._report import RowOutcome
from pika_tasks.pricing import PriceTable
from pika_tasks.records import OutputLocation, RowRecord, utc_now
from pika_tasks.storage import remove_files

__all__ = ["RowContext", "RowSteps", "run_row"]

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class RowSteps(Protocol):
    """The calls a row makes to fal, and the slots that bound them.

    The batch flow implements them with its Prefect tasks and global
    concurrency limit; each call names the row (``label``) it is made for.
    """

    def slot(self) -> AbstractAsyncContextManager[Any]:
        """Hold one of fal's slots (the account's concurrency) for this row."""
        ...

    async def pace_submit(self) -> None:
        """Wait for the submit rate limit, if any."""
        ...

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        """Upload an image too large to send inline; return its URL."""
        ...

    async def submit(self, arguments: ImageToVideoInput, label: str) -> RequestHandle:
        """Queue the job."""
        ...

    async def wait(self, handle: RequestHandle, label: str) -> QueueStatus:
        """Wait until fal reports the job done (its result asked for at once)."""
        ...

    async def result(self, handle: RequestHandle) -> ImageToVideoOutput:
        """The job's output (asked for when the job completed, so usually at hand)."""
        ...

    async def fetch(
        self,
        handle: RequestHandle,
        destination: str,
        label: str,
        output: ImageToVideoOutput | None,
    ) -> DownloadedFile:
        """Copy the video to ``destination``."""
        ...


@dataclass
class RowContext:
    """What every row of one run shares.

    Attributes:
        out: the output location (videos and records).
        steps: the calls to fal.
        prices: list prices, for the budget and the report.
        budget: the run's cap, held per row around its submit.
        image_storage_options: fsspec options for the images.
        run_id: the flow run that owns the rows (recorded in each record).
        logger: where rows say what happened.
        stale_partials: temporaries that interrupted runs left, by file name.
        budget_ready: awaited before a paid submit (the run's budget check).
        claims: the run's claims on rows (None: rows are not claimed, for a
            caller that is sure no other run writes to the same output).
        resubmit_unknown: decide a row with an unrecorded earlier submit as to submit.
        on_submitted: called after each submit is answered and recorded.
    """

    out: OutputLocation
    steps: RowSteps
    prices: PriceTable
    budget: Budget = field(default_factory=Budget)
    image_storage_options: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    logger: Logger = field(default_factory=lambda: logging.getLogger("pika_tasks.pipeline"))
    stale_partials: dict[str, list[str]] = field(default_factory=dict)
    budget_ready: Callable[[], Awaitable[None]] | None = None
    claims: RowClaims | None = None
    resubmit_unknown: bool = False
    on_submitted: Callable[[], object] | None = None


async def _save(ctx: RowContext, record: RowRecord) -> None:
    await asyncio.to_thread(ctx.out.save, record)


async def _submit(plan: RowPlan, ctx: RowContext) -> RowRecord:
    """Submit the row, recording the intent before and the request right after."""
    await ctx.steps.pace_submit()
    intent = RowRecord(
        id=plan.row.id,
        state="submitting",
        fingerprint=plan.fingerprint,
        row=plan.row.model_dump(mode="json"),
        seed=plan.row.seed,
        submitted_at=utc_now(),
        flow_run_id=ctx.run_id,
        submitted_by=ctx.run_id,
    )
    # The bytes read when the row was planned are the bytes sent: one read per image.
    image_url = await deliver_image_url(
        plan.check, storage_options=ctx.image_storage_options, upload=ctx.steps.upload
    )
    await _save(ctx, intent)
    try:
        handle = await ctx.steps.submit(plan.row.to_input(image_url), plan.row.id)
    except (SubmitOutcomeUnknownError, RequestAbortedError):
        raise  # the intent stays: a later run reports the row instead of paying twice
    except PikaError as error:
        # fal answered that it did not queue the job (or nothing was sent): no intent.
        await _save(ctx, intent.model_copy(update={"state": "failed", "error": str(error)}))
        raise
    # Anything else (a cancellation while the request was in flight) keeps the intent:
    # fal may have queued the job, so a later run reports the row instead of paying twice.
    record = intent.model_copy(update={"state": "submitted", "request": handle})
    try:
        await _save(ctx, record)
    except Exception as error:
        # fal queued (and bills) the job.  Raising would drop the request it answered with
        # and give the money back to the cap; the row goes on with the request in hand and
        # its record is written when it ends (the intent on file keeps it from being paid
        # twice meanwhile).
        ctx.logger.warning(
            "%s: submitted as request %s, but its record could not be written (%s); "
            "it is written when the row ends",
            plan.row.id,
            handle.request_id,
            error,
        )
    if ctx.on_submitted is not None:
        ctx.on_submitted()
    return record


async def _wait(
    record: RowRecord, ctx: RowContext
) -> tuple[QueueStatus, ImageToVideoOutput | None]:
    """Wait for the record's request; its output when fal gave it at completion."""
    assert record.request is not None
    status = await ctx.steps.wait(record.request, record.id)
    try:
        return status, await ctx.steps.result(record.request)
    except PikaError as error:
        if not is_transient(error):
            raise
        return status, None  # the fetch asks again, with its own retries


async def _fetch(
    record: RowRecord,
    ctx: RowContext,
    status: QueueStatus,
    output: ImageToVideoOutput | None,
    waited: float,
) -> RowRecord:
    """Copy the video to its place and return the finished record."""
    assert record.request is not None
    started = time.monotonic()
    destination = ctx.out.video_url(record.id)
    # A run killed mid-download, or mid-way through saving the row's record, leaves its
    # temporary behind; this run owns the row now.
    stale = [
        *ctx.stale_partials.pop(f"{record.id}.mp4", []),
        *ctx.stale_partials.pop(f"{record.id}.json", []),
    ]
    if stale:
        await asyncio.to_thread(remove_files, stale, destination, ctx.out.storage_options)
    video = await ctx.steps.fetch(record.request, destination, record.id, output)
    inference = (status.metrics or {}).get("inference_time")
    timings = {
        "wait_seconds": round(waited, 3),
        "fetch_seconds": round(time.monotonic() - started, 3),
    }
    if isinstance(inference, int | float):
        timings["inference_seconds"] = float(inference)
    return record.model_copy(
        update={
            "state": "succeeded",
            "completed_at": utc_now(),
            "timings": timings,
            "video": video.video,
            "output": video.path,
            "size": video.size,
            "sha256": video.sha256,
            "content_type": video.content_type,
            "error": None,
        }
    )


@dataclass
class _Row:
    """A row on its way: its latest record and its report line.

    ``confirm`` (with claims) raises :class:`ClaimLostError` when another run has
    taken the row over; it is awaited just before the row is paid for.
    """

    plan: RowPlan
    outcome: RowOutcome
    record: RowRecord | None = None
    confirm: Callable[[], Awaitable[None]] | None = None


async def _at_fal(
    row: _Row, ctx: RowContext
) -> tuple[QueueStatus, ImageToVideoOutput | None, float]:
    """The part of a row that holds fal's slot: (submit and) wait until the job is done."""
    plan = row.plan
    if plan.action is Action.SUBMIT:
        await _budget_ready(ctx)  # before the slot: a row waiting for it holds none
    started = time.monotonic()
    async with ctx.steps.slot():
        if plan.action is Action.REATTACH and row.record is not None:
            row.record = row.record.model_copy(update={"flow_run_id": ctx.run_id})
            await _save(ctx, row.record)
            try:
                status, output = await _wait(row.record, ctx)
                return status, output, time.monotonic() - started
            except (RequestNotFoundError, JobFailedError) as error:
                # A cancelled run's request is waited on first: a running job that was
                # only signalled may have finished (and been billed) anyway.
                cancelled = row.record.state == "cancelled"
                if isinstance(error, JobFailedError) and not cancelled:
                    raise
                ctx.logger.warning("%s: %s; submitting again", plan.row.id, error)
                row.outcome.action = "resubmit-cancelled" if cancelled else "resubmit-expired"
        await _budget_ready(ctx)
        if row.confirm is not None:
            await row.confirm()  # the waits above can outlast a claim's lease
        price = ctx.prices.cost(plan.row.resolution, plan.row.duration)
        # Reserved before the submit, so concurrent rows never pass the cap together;
        # kept when the answer was lost, since fal may have queued (and billed) the job.
        with ctx.budget.hold(
            price, plan.row.id, keep_on=(SubmitOutcomeUnknownError, RequestAbortedError)
        ):
            row.record = await _submit(plan, ctx)
        row.outcome.cost_usd = price
        started = time.monotonic()
        status, output = await _wait(row.record, ctx)
        return status, output, time.monotonic() - started


async def _budget_ready(ctx: RowContext) -> None:
    """Wait for the run's budget check; it raises BudgetRefusedError when the run is refused."""
    if ctx.budget_ready is not None:
        await ctx.budget_ready()


def _unknown_error(record: RowRecord) -> str:
    return (
        f"a submit on {record.submitted_at} may have reached fal, but its answer was never "
        "recorded; check your fal request history, then run again with "
        "resubmit_unknown=True (--resubmit-unknown) to submit it again"
    )


def _settled(plan: RowPlan, outcome: RowOutcome) -> RowOutcome:
    """The outcome of a row with nothing to do at fal: done already, or reported."""
    assert plan.record is not None
    if plan.action is Action.SKIP:
        return outcome.model_copy(update={"status": "skipped", "output": plan.record.output})
    return outcome.model_copy(update={"error": _unknown_error(plan.record)})


async def _redecide(plan: RowPlan, ctx: RowContext) -> RowPlan:
    """The plan again from the record as it is now: another run may have acted meanwhile."""
    record = await asyncio.to_thread(ctx.out.load, plan.row.id)
    video_exists = await asyncio.to_thread(ctx.out.video_exists, record)
    action = decide(record, plan.fingerprint, video_exists, resubmit_unknown=ctx.resubmit_unknown)
    return replace(plan, record=record, action=action)


async def run_row(plan: RowPlan, ctx: RowContext) -> RowOutcome:
    """Take one planned row to a finished video, or to a recorded failure.

    With claims (``ctx.claims``), the row is worked on only while this run
    holds its claim, and decided anew from its record once it does.  Never
    raises for the row's own trouble once it is under way (fal's errors, a
    refused budget, a store that fails a write): they become its failed
    outcome, with what it paid, so one row never stops another.
    """
    row = plan.row
    started = time.monotonic()
    outcome = RowOutcome(id=row.id, row_number=row.row_number, status="failed", action=plan.action)
    # "Unknown" may be another live run's submit in flight: only its claim can tell.
    if plan.action is Action.SKIP or (plan.action is Action.UNKNOWN and ctx.claims is None):
        return _settled(plan, outcome)
    if ctx.claims is None:
        return await _generate(plan, ctx, outcome, started)
    async with ctx.claims.hold(row.id) as claim:
        if isinstance(claim, HeldElsewhere):
            plan.check.drop_data()
            return outcome.model_copy(
                update={"status": "skipped", "action": "held", "error": claim.reason(row.id)}
            )
        current = await _redecide(plan, ctx)
        outcome.action = current.action
        if current.action in (Action.SKIP, Action.UNKNOWN):
            plan.check.drop_data()
            return _settled(current, outcome)
        return await _generate(
            current, ctx, outcome, started, confirm=partial(ctx.claims.confirm, claim)
        )


async def _generate(
    plan: RowPlan,
    ctx: RowContext,
    outcome: RowOutcome,
    started: float,
    confirm: Callable[[], Awaitable[None]] | None = None,
) -> RowOutcome:
    """Submit (or re-attach), wait and fetch; the outcome, failures included."""
    state = _Row(plan, outcome, plan.record, confirm)
    try:
        status, output, waited = await _at_fal(state, ctx)
        assert state.record is not None
        # fal's slot is free again: the download does not keep the account's runners idle.
        state.record = await _fetch(state.record, ctx, status, output, waited)
        await _save(ctx, state.record)
        outcome.status = "succeeded"
        outcome.output = state.record.output
    except Exception as error:
        await _stopped(error, state, ctx)
    finally:
        plan.check.drop_data()  # the image's bytes are not needed past the submit
    return _ended(outcome, state, started)


async def _stopped(error: Exception, state: _Row, ctx: RowContext) -> None:
    """Say why the row stopped: in its outcome and, where a later run must know, its record.

    An error of ours names no cause beyond its text; any other (a store's, a bug) is
    named by its type and logged with its traceback.  Either way the outcome keeps
    what the row paid and its request, which the report and the spend count on.
    """
    row, outcome = state.plan.row, state.outcome
    if not isinstance(error, PikaError):
        outcome.error = f"{type(error).__name__}: {error}"
        ctx.logger.error(
            "%s (row %d) failed: %s", row.id, row.row_number, outcome.error, exc_info=error
        )
        return
    outcome.error = str(error)
    if isinstance(error, ClaimLostError):
        # Another run makes the row: as when it held the claim all along.
        outcome.status, outcome.action = "skipped", "held"
        ctx.logger.warning("%s", error)
        return
    if isinstance(error, ImageError):
        # As a manifest's own problems are said: the row and the field at fault.
        outcome.error = str(
            RowError(row_number=row.row_number, field="image", reason=str(error), id=row.id)
        )
    if isinstance(error, BudgetRefusedError):
        outcome.action = "refused"
    if state.record is not None and isinstance(error, JobFailedError | RequestNotFoundError):
        if isinstance(error, RequestNotFoundError):
            # The output is gone at fal (a re-attached wait would have submitted
            # again): left 'submitted', every later run would fetch the same 404.
            outcome.error += "; fal no longer has the video: the next run submits the row again"
        failed = state.record.model_copy(update={"state": "failed", "error": outcome.error})
        await _save(ctx, failed)
    ctx.logger.error("%s (row %d) failed: %s", row.id, row.row_number, error)


def _ended(outcome: RowOutcome, state: _Row, started: float) -> RowOutcome:
    """The outcome with the row's request and time filled in."""
    record = state.record
    outcome.request_id = record.request.request_id if record and record.request else None
    outcome.seconds = round(time.monotonic() - started, 3)
    return outcome
