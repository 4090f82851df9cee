"""The batch flow: a manifest of images in, one video per row and a run report out.

Example:
    Offline, against the bundled emulator (what ``pika-tasks run --local`` does)::

        import asyncio

        from pika_tasks.flows import image_to_video_batch

        result = asyncio.run(image_to_video_batch("examples/manifest.csv", "out/example"))
        print(result.succeeded, result.report_url)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from prefect import flow, get_run_logger
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed
from prefect.tasks import Task
from pydantic import BaseModel

from pika_tasks.budget import Budget, total_usd, usd
from pika_tasks.client import PikaClient
from pika_tasks.concurrency import DEFAULT_LIMIT_NAME, FalSlots
from pika_tasks.credentials import FalCredentials
from pika_tasks.errors import (
    JobFailedError,
    PikaError,
    RequestNotFoundError,
    SubmitOutcomeUnknownError,
    is_transient,
)
from pika_tasks.events import emit_row_event
from pika_tasks.flows.cancellation import cancel_remote_requests
from pika_tasks.images import ImageCheck, ImageLimits, inspect_image, resolve_image_url
from pika_tasks.manifest import ManifestRow, RowDefaults, read_manifest
from pika_tasks.models import (
    DownloadedFile,
    Duration,
    ImageToVideoOutput,
    QueueStatus,
    RequestHandle,
    Resolution,
)
from pika_tasks.pricing import PriceTable
from pika_tasks.progress import ProgressCallback, ProgressTracker
from pika_tasks.records import (
    Action,
    OutputLocation,
    RowOutcome,
    RowRecord,
    decide,
    fingerprint,
    invalid_row_outcomes,
    utc_now,
)
from pika_tasks.settings import PikaSettings
from pika_tasks.storage import remove_files, stale_partials
from pika_tasks.tasks import fetch_video, open_client, submit_image_to_video, wait_for_completion

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
X = TypeVar("X")


class BatchResult(BaseModel):
    """What a batch run did, in counts, plus where its report is."""

    succeeded: int
    failed: int
    skipped: int
    cancelled: int
    submitted: int
    spend_usd: float
    report_url: str

    @property
    def total(self) -> int:
        """Rows in the manifest, valid or not."""
        return self.succeeded + self.failed + self.skipped + self.cancelled


def summarize(outcomes: list[RowOutcome], report_url: str) -> BatchResult:
    """Count a run's outcomes (also used to merge the reports of scale-out shards)."""
    return BatchResult(
        succeeded=sum(o.status == "succeeded" for o in outcomes),
        failed=sum(o.status == "failed" for o in outcomes),
        skipped=sum(o.status == "skipped" for o in outcomes),
        cancelled=sum(o.status == "cancelled" for o in outcomes),
        submitted=sum(o.cost_usd > 0 for o in outcomes),
        spend_usd=total_usd(o.cost_usd for o in outcomes),
        report_url=report_url,
    )


@dataclass
class _PlannedRow:
    row: ManifestRow
    check: ImageCheck
    fingerprint: str
    record: RowRecord | None
    action: Action


def _run_task(task: Task[P, R], retries: int | None, tags: list[str]) -> Task[P, R]:
    """The task with this run's tags (replacing its own) and retry setting."""
    if retries is None:
        return task.with_options(tags=set(tags))
    return task.with_options(tags=set(tags), retries=retries)


@dataclass
class _Batch:
    """What every row of one run shares."""

    out: OutputLocation
    storage_options: dict[str, Any]
    credentials: FalCredentials | None
    settings: PikaSettings
    prices: PriceTable
    wait_timeout: float | None
    resubmit_unknown: bool
    slots: FalSlots
    client: PikaClient
    task_retries: int | None = None
    task_tags: list[str] = field(default_factory=list)
    budget: Budget = field(default_factory=Budget)
    # Temporaries that interrupted runs left in the output folder, by file name.
    stale_partials: dict[str, list[str]] = field(default_factory=dict)
    # The three tasks as this run calls them (tags and retries applied).
    submit: Task[..., Coroutine[Any, Any, RequestHandle]] = field(init=False)
    wait: Task[..., Coroutine[Any, Any, QueueStatus]] = field(init=False)
    fetch: Task[..., Coroutine[Any, Any, DownloadedFile]] = field(init=False)

    def __post_init__(self) -> None:
        # Made once per run: with_options builds a new task object.
        self.submit = _run_task(submit_image_to_video, self.task_retries, self.task_tags)
        self.wait = _run_task(wait_for_completion, self.task_retries, self.task_tags)
        self.fetch = _run_task(fetch_video, self.task_retries, self.task_tags)


async def _map_bounded(
    work: Callable[[X], Awaitable[T]], items: Sequence[X], limit: int
) -> list[T]:
    """``work`` over ``items``, at most ``limit`` at a time; the results in order.

    ``limit`` workers take the items in turn, rather than one task per item
    waiting for its turn, so memory does not grow with a manifest's rows.
    They run in a task group, not ``gather``: when the run is cancelled, it
    returns only once every row has unwound, so the cancels that rows send to
    fal go out before the run's shared client is closed.
    """
    results: list[Any] = [None] * len(items)
    turns = iter(range(len(items)))  # shared: each item is taken by one worker

    async def worker() -> None:
        for index in turns:
            results[index] = await work(items[index])

    async with asyncio.TaskGroup() as group:
        for _ in range(min(max(1, limit), len(items))):
            group.create_task(worker())
    return results


def _row_fingerprint(row: ManifestRow, check: ImageCheck, endpoint_id: str) -> str:
    return fingerprint(
        {
            "endpoint_id": endpoint_id,
            "image_sha256": check.sha256,
            "prompt": row.prompt,
            "negative_prompt": row.negative_prompt,
            "resolution": row.resolution,
            "duration": row.duration,
            "seed": row.seed,
        }
    )


async def _plan_row(
    row: ManifestRow, batch: _Batch, limits: ImageLimits
) -> _PlannedRow | RowOutcome:
    try:
        check = await inspect_image(row.image, storage_options=batch.storage_options, limits=limits)
    except Exception as error:  # any store's error is this row's problem, not the run's
        return RowOutcome(
            id=row.id,
            row_number=row.row_number,
            status="failed",
            error=f"row {row.row_number}, field 'image': {error}",
        )
    row_fingerprint = _row_fingerprint(row, check, batch.settings.endpoint_id)
    record = await asyncio.to_thread(batch.out.load, row.id)
    video_exists = await asyncio.to_thread(batch.out.video_exists, record)
    return _PlannedRow(
        row,
        check,
        row_fingerprint,
        record,
        decide(record, row_fingerprint, video_exists, resubmit_unknown=batch.resubmit_unknown),
    )


async def _submit(plan: _PlannedRow, batch: _Batch) -> RowRecord:
    """Submit the row, recording the intent before and the request right after."""
    await batch.slots.pace_submit()
    intent = RowRecord(
        id=plan.row.id,
        state="submitting",
        fingerprint=plan.fingerprint,
        row=plan.row.model_dump(mode="json"),
        seed=plan.row.seed,
        submitted_at=utc_now(),
        flow_run_id=flow_run.get_id(),
    )
    image_url = await resolve_image_url(
        plan.check,
        storage_options=batch.storage_options,
        upload=lambda data, content_type, name: batch.client.upload(
            data, content_type=content_type, file_name=name
        ),
    )
    await asyncio.to_thread(batch.out.save, intent)
    try:
        handle = await batch.submit(
            plan.row.to_input(image_url),
            credentials=batch.credentials,
            settings=batch.settings,
            label=plan.row.id,
            client=batch.client,
        )
    except SubmitOutcomeUnknownError:
        raise  # the intent stays: a later run reports the row instead of paying twice
    except BaseException:
        # fal answered that it did not queue the job (or nothing was sent): no intent.
        await asyncio.to_thread(batch.out.save, intent.model_copy(update={"state": "failed"}))
        raise
    record = intent.model_copy(update={"state": "submitted", "request": handle})
    await asyncio.to_thread(batch.out.save, record)
    return record


async def _complete(record: RowRecord, batch: _Batch) -> RowRecord:
    """Wait for the record's request and fetch its video; return the finished record."""
    assert record.request is not None
    started = time.monotonic()
    status = await batch.wait(
        record.request,
        timeout=batch.wait_timeout,
        credentials=batch.credentials,
        settings=batch.settings,
        label=record.id,
        client=batch.client,
        prefetch_result=True,
    )
    # Asked for inside the wait task, the moment the job completed (prefetch_result);
    # a transient failure is left to the fetch task, which asks again with retries.
    output: ImageToVideoOutput | None = None
    try:
        output = await batch.client.result(record.request)
    except PikaError as error:
        if not is_transient(error):
            raise
    waited = time.monotonic() - started
    # A run killed mid-download leaves its temporary behind; this run owns the row now.
    stale = batch.stale_partials.pop(f"{record.id}.mp4", [])
    if stale:
        await asyncio.to_thread(
            remove_files, stale, batch.out.video_url(record.id), batch.out.storage_options
        )
    video = await batch.fetch(
        record.request,
        batch.out.video_url(record.id),
        storage_options=batch.out.storage_options,
        credentials=batch.credentials,
        settings=batch.settings,
        label=record.id,
        client=batch.client,
        output=output,
    )
    inference = (status.metrics or {}).get("inference_time")
    timings = {
        "wait_seconds": round(waited, 3),
        "fetch_seconds": round(time.monotonic() - started - waited, 3),
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


async def _generate(plan: _PlannedRow, batch: _Batch) -> RowOutcome:
    """Take one planned row to a finished video (or a recorded failure)."""
    row = plan.row
    started = time.monotonic()
    outcome = RowOutcome(id=row.id, row_number=row.row_number, status="failed", action=plan.action)
    if plan.action is Action.SKIP:
        assert plan.record is not None
        return outcome.model_copy(update={"status": "skipped", "output": plan.record.output})
    if plan.action is Action.UNKNOWN:
        assert plan.record is not None
        return outcome.model_copy(
            update={
                "error": f"a submit on {plan.record.submitted_at} may have reached fal, but its "
                "answer was never recorded; check your fal request history, then run again "
                "with resubmit_unknown=True (--resubmit-unknown) to submit it again"
            }
        )
    record = plan.record
    try:
        if plan.action is Action.REATTACH and record is not None:
            record = record.model_copy(update={"flow_run_id": flow_run.get_id()})
            await asyncio.to_thread(batch.out.save, record)
            try:
                record = await _complete(record, batch)
            except RequestNotFoundError as error:
                get_run_logger().warning("%s: %s; submitting again", row.id, error)
                outcome.action = "resubmit-expired"
                record = None
        if record is None or plan.action is Action.SUBMIT:
            price = batch.prices.cost(row.resolution, row.duration)
            # Reserved before the submit, so concurrent rows never pass the cap together;
            # kept when the answer was lost, since fal may have queued (and billed) the job.
            with batch.budget.hold(price, row.id, keep_on=(SubmitOutcomeUnknownError,)):
                record = await _submit(plan, batch)
            outcome.cost_usd = price
            record = await _complete(record, batch)
        await asyncio.to_thread(batch.out.save, record)
        outcome.status = "succeeded"
        outcome.output = record.output
    except PikaError as error:
        outcome.error = str(error)
        if record is not None and isinstance(error, JobFailedError):
            failed = record.model_copy(update={"state": "failed", "error": str(error)})
            await asyncio.to_thread(batch.out.save, failed)
        get_run_logger().error("%s (row %d) failed: %s", row.id, row.row_number, error)
    outcome.request_id = record.request.request_id if record and record.request else None
    outcome.seconds = round(time.monotonic() - started, 3)
    return outcome


def _refused(plan: _PlannedRow, reason: str) -> RowOutcome:
    """A row's outcome when the run was refused for its budget: done rows stay skipped."""
    row = plan.row
    if plan.action is Action.SKIP and plan.record is not None:
        return RowOutcome(
            id=row.id,
            row_number=row.row_number,
            status="skipped",
            action=plan.action,
            output=plan.record.output,
        )
    return RowOutcome(
        id=row.id, row_number=row.row_number, status="failed", action="refused", error=reason
    )


def _summary_markdown(result: BatchResult, manifest: str, output: str) -> str:
    return "\n".join(
        [
            "# Image-to-video batch",
            "",
            f"Manifest `{manifest}` → output `{output}`",
            "",
            "| succeeded | failed | skipped | cancelled | submitted | spend (list price) |",
            "|---|---|---|---|---|---|",
            f"| {result.succeeded} | {result.failed} | {result.skipped} | {result.cancelled} "
            f"| {result.submitted} | ${result.spend_usd:.2f} |",
            "",
            f"Run report: `{result.report_url}`",
        ]
    )


@flow(
    name="image-to-video-batch",
    on_cancellation=[cancel_remote_requests],
    on_crashed=[cancel_remote_requests],
)
async def image_to_video_batch(
    manifest: str,
    output: str,
    prompt: str | None = None,
    prompt_suffix: str = "",
    negative_prompt: str | None = None,
    resolution: Resolution | None = None,
    duration: Duration | None = None,
    seed: int | None = None,
    max_concurrency: int = 4,
    storage_options: dict[str, Any] | None = None,
    output_storage_options: dict[str, Any] | None = None,
    fail_on_partial: bool = True,
    wait_timeout: float | None = None,
    allow_private_image_urls: bool = False,
    resubmit_unknown: bool = False,
    credentials: FalCredentials | None = None,
    max_spend_usd: float | None = None,
    concurrency_limit: str | None = DEFAULT_LIMIT_NAME,
    submit_rate_limit: str | None = None,
    task_retries: int | None = None,
    task_tags: list[str] | None = None,
    manifest_storage_options: dict[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
) -> State[BatchResult]:
    """Generate a video for every row of a manifest and write them to ``output``.

    Re-running the same manifest into the same output pays only for what is
    missing: finished rows are skipped, submitted rows are re-attached to
    their request, and only rows that never reached fal (or whose result
    expired) are submitted.

    Args:
        manifest: CSV, JSON Lines, JSON or Parquet manifest at any fsspec URL.
        output: folder (any fsspec URL) for ``{id}.mp4``, ``{id}.json`` and ``_runs/``.
        prompt: prompt for rows that have none.
        prompt_suffix: text appended to every row's prompt.
        negative_prompt: negative prompt for rows that have none.
        resolution: resolution for rows that have none (720p or 1080p).
        duration: duration for rows that have none (5 or 10).
        seed: seed for rows that have none.
        max_concurrency: rows in flight at once in this run.
        storage_options: fsspec options for the manifest and images.
        output_storage_options: fsspec options for ``output`` (default: ``storage_options``).
        fail_on_partial: end Failed when any row failed (the report is written first).
        wait_timeout: seconds to wait for one job before cancelling it.
        allow_private_image_urls: let images on private addresses be fetched (http(s),
            ftp, sftp, webhdfs and every other protocol whose URL names a host).
        resubmit_unknown: submit again rows whose earlier submit may have reached fal
            without its answer being recorded (this may pay for a second video).
        credentials: a :class:`FalCredentials` block; else ``FAL_KEY`` from the environment.
        max_spend_usd: a cap on this run's spend at list prices (see
            :mod:`pika_tasks.pricing`).  When the rows to submit cost more, the
            run starts nothing and ends Failed (the report says why); while it
            runs, a row whose price would pass the cap is not submitted (a
            re-attached row whose result expired must be submitted again).
        concurrency_limit: the Prefect global concurrency limit that bounds requests
            in flight across every run and worker (``prefect gcl create fal-pika
            --limit N``); when it does not exist, only ``max_concurrency`` bounds them.
        submit_rate_limit: a global limit with slot decay that paces submits, or None.
        task_retries: retries of each task on transient errors (default: the tasks' own).
        task_tags: tags for this run's task runs, e.g. ``["fal"]`` so that a tag
            concurrency limit bounds them.  None (the default) runs them untagged:
            ``concurrency_limit`` already bounds the rows, and a tagged task run
            asks the Prefect API for slots before it starts, which under load
            delays every task start of the run.
        manifest_storage_options: fsspec options for the manifest alone (default:
            ``storage_options``); scale-out shards live at the output location.
        on_progress: called with a :class:`~pika_tasks.progress.BatchProgress`
            after planning and whenever a row finishes (in-process runs only).

    Returns:
        A Completed state with a :class:`BatchResult`, or Failed when rows failed
        and ``fail_on_partial`` is set, or when the run was refused for its budget.

    Events:
        ``pika.video.completed`` or ``pika.video.failed`` for every row finished
        in the run (see :mod:`pika_tasks.events`).

    Example:
        >>> image_to_video_batch("s3://bucket/in/manifest.csv", "s3://bucket/out")  # doctest: +SKIP
    """
    settings = credentials.get_settings() if credentials else PikaSettings()
    settings.require_key()
    storage = storage_options or {}
    defaults = RowDefaults(
        prompt=prompt,
        prompt_suffix=prompt_suffix,
        negative_prompt=negative_prompt,
        resolution=resolution,
        duration=duration,
        seed=seed,
    )
    # One client, so one connection pool and TLS context, for every task of the run.
    async with open_client(credentials, settings) as client:
        batch = _Batch(
            out=OutputLocation(
                output, output_storage_options if output_storage_options is not None else storage
            ),
            storage_options=storage,
            credentials=credentials,
            settings=settings,
            prices=PriceTable.from_settings(settings),
            wait_timeout=wait_timeout,
            resubmit_unknown=resubmit_unknown,
            slots=FalSlots(concurrency_limit, max_concurrency, submit_rate_limit),
            client=client,
            task_retries=task_retries,
            task_tags=list(task_tags or []),
            budget=Budget(max_spend_usd),
        )
        return await _run_batch(
            batch,
            _RunInputs(
                manifest=manifest,
                output=output,
                defaults=defaults,
                manifest_storage_options=manifest_storage_options
                if manifest_storage_options is not None
                else storage,
                max_concurrency=max_concurrency,
                limits=ImageLimits(allow_private_addresses=allow_private_image_urls),
                fail_on_partial=fail_on_partial,
                on_progress=on_progress,
            ),
        )


@dataclass
class _RunInputs:
    """What the flow was asked to do, beyond what :class:`_Batch` shares with the rows."""

    manifest: str
    output: str
    defaults: RowDefaults
    manifest_storage_options: dict[str, Any]
    max_concurrency: int
    limits: ImageLimits
    fail_on_partial: bool
    on_progress: ProgressCallback | None


async def _run_batch(batch: _Batch, inputs: _RunInputs) -> State[BatchResult]:
    """Plan every row, generate the videos, write the report: the flow's body."""
    logger = get_run_logger()
    manifest, output = inputs.manifest, inputs.output
    parsed = await asyncio.to_thread(
        read_manifest,
        manifest,
        defaults=inputs.defaults,
        storage_options=inputs.manifest_storage_options,
    )
    outcomes: list[RowOutcome] = invalid_row_outcomes(parsed.errors)
    for error in parsed.errors:
        logger.error("manifest %s", error)

    tracker = ProgressTracker(
        len(parsed.rows) + len(parsed.errors),
        inputs.on_progress,
        lambda: batch.budget.spent_usd,
    )
    tracker.start()
    run_id, run_label = flow_run.get_id(), flow_run.get_name()

    def finished(outcome: RowOutcome) -> RowOutcome:
        output_url = batch.out.video_url(outcome.id) if outcome.id else None
        emit_row_event(
            outcome,
            output_url=output_url,
            flow_run_id=run_id,
            flow_run_name=run_label,
            manifest=manifest,
        )
        tracker.finished(outcome)
        return outcome

    for invalid in outcomes:
        finished(invalid)

    async def plan(row: ManifestRow) -> _PlannedRow | RowOutcome:
        return await _plan_row(row, batch, inputs.limits)

    # One listing of the output folder, not one per row (that grows with the square).
    batch.stale_partials = await asyncio.to_thread(
        stale_partials, batch.out.url, batch.out.storage_options
    )
    plans: list[_PlannedRow] = []
    for planned in await _map_bounded(plan, parsed.rows, inputs.max_concurrency):
        if isinstance(planned, RowOutcome):
            logger.error("%s", planned.error)
            outcomes.append(finished(planned))
        else:
            plans.append(planned)
    counts = {action: sum(p.action is action for p in plans) for action in Action}
    logger.info(
        "%d rows: %d to submit, %d to re-attach, %d done already, %d invalid",
        len(parsed.rows) + len(parsed.errors),
        counts[Action.SUBMIT],
        counts[Action.REATTACH],
        counts[Action.SKIP],
        len(outcomes),
    )

    to_submit = [p for p in plans if p.action is Action.SUBMIT]
    planned_usd = total_usd(batch.prices.cost(p.row.resolution, p.row.duration) for p in to_submit)
    refusal = None
    if not batch.budget.allows(planned_usd):
        refusal = (
            f"not started: the {len(to_submit)} rows to submit cost {usd(planned_usd)} at list "
            f"prices, more than max_spend_usd {usd(batch.budget.limit_usd or 0.0)}"
        )
        logger.error("%s; nothing was submitted", refusal)

    if refusal is None and any(p.action not in (Action.SKIP, Action.UNKNOWN) for p in plans):
        await batch.slots.check(logger)
    total = max(1, len(plans))
    progress_id = await acreate_progress_artifact(0.0, description=f"Rows of {manifest}")
    done = 0
    shown = 0
    progress_lock = asyncio.Lock()

    async def generate(planned: _PlannedRow) -> RowOutcome:
        nonlocal done, shown
        # Rows done already hold no slot; the others hold one from submit to fetch.
        if planned.action in (Action.SKIP, Action.UNKNOWN):
            result = await _generate(planned, batch)
        else:
            async with batch.slots.slot():
                result = await _generate(planned, batch)
        done += 1
        async with progress_lock:
            # One update at a time, each with the latest count: the bar never goes back.
            # Whole percents only: a big batch makes ~100 API calls, not one per row.
            if int(100 * done / total) > int(100 * shown / total) or done == total:
                shown = done
                await aupdate_progress_artifact(progress_id, 100.0 * done / total)
        return finished(result)

    if refusal is None:
        outcomes.extend(await _map_bounded(generate, plans, batch.slots.local_limit))
    else:
        outcomes.extend(finished(_refused(p, refusal)) for p in plans)
    outcomes.sort(key=lambda o: o.row_number)

    run_name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{flow_run.get_name() or 'local'}"
    report_url = await asyncio.to_thread(batch.out.write_report, run_name, outcomes)
    result = summarize(outcomes, report_url)
    await acreate_table_artifact(
        [
            {
                "row": o.row_number,
                "id": o.id,
                "status": o.status,
                "output": o.output,
                "seconds": o.seconds,
                "error": o.error,
            }
            for o in outcomes
        ],
        description="Rows of this run",
    )
    await acreate_markdown_artifact(
        _summary_markdown(result, manifest, output), description="Summary"
    )
    message = (
        f"{result.succeeded} succeeded, {result.failed} failed, {result.skipped} skipped "
        f"of {result.total} rows; report: {report_url}"
    )
    if refusal is not None:
        message = f"{refusal}; {message}"
    logger.info(message)
    if refusal is not None or (result.failed and inputs.fail_on_partial):
        return Failed(message=message, data=result)
    return Completed(message=message, data=result)
