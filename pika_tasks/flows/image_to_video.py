"""The batch flow: a manifest of images in, one video per row and a run report out.

The flow is Prefect wiring around the row pipeline (:mod:`pika_tasks.pipeline`):
rows stream from the manifest through planning, submit, wait and fetch (each a
Prefect task run) to the report, with artifacts, events and cancellation hooks.

Example:
    Offline, against the bundled emulator (what ``pika-tasks run --local`` does)::

        import asyncio

        from pika_tasks.flows import image_to_video_batch

        result = asyncio.run(image_to_video_batch("examples/manifest.csv", "out/example"))
        print(result.succeeded, result.report_url)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from pika_tasks.budget import Budget
from pika_tasks.claims import ClaimBook, Holder
from pika_tasks.concurrency import FalSlots
from pika_tasks.credentials import FalCredentials
from pika_tasks.events import emit_row_event
from pika_tasks.flows._artifacts import RowTable, SheetCollector, publish_summary
from pika_tasks.flows._cancellation import cancel_remote_requests
from pika_tasks.flows._faults import alone
from pika_tasks.flows._lineage import VideoLedger
from pika_tasks.flows._log_volume import completed_lines_dropped
from pika_tasks.flows._progress_bar import ProgressBar
from pika_tasks.flows._runs import flow_run_is_over
from pika_tasks.flows._steps import TaskSteps
from pika_tasks.images import ImageLimits
from pika_tasks.keys import artifact_key
from pika_tasks.manifest import ManifestError, ManifestRow, RowDefaults, RowError, iter_manifest
from pika_tasks.pipeline import (
    BatchLimits,
    BatchResult,
    FirstPass,
    Location,
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
from pika_tasks.progress import ProgressCallback, ProgressTracker
from pika_tasks.records import OutputLocation
from pika_tasks.settings import PikaSettings
from pika_tasks.tasks import fetch_video, open_client, submit_image_to_video, wait_for_completion

__all__ = ["BatchResult", "image_to_video_batch"]


class _ManifestStream:
    """The manifest's rows; an error past the first row ends the stream, kept for the report."""

    def __init__(self, source: Location, defaults: RowDefaults) -> None:
        self.source = source
        self.defaults = defaults
        self.error: ManifestError | None = None

    def open(self) -> Iterator[ManifestRow | RowError]:
        """A fresh pass over the manifest (the first pass and the run each take one)."""
        return iter_manifest(
            self.source.url, defaults=self.defaults, storage_options=self.source.storage_options
        )

    def rows(self, items: Iterator[ManifestRow | RowError]) -> Iterator[ManifestRow | RowError]:
        """``items``; a ManifestError ends them (rows read so far still run)."""
        try:
            yield from items
        except ManifestError as error:
            self.error = error


@flow(
    name="image-to-video-batch",
    on_cancellation=[cancel_remote_requests],
    on_crashed=[cancel_remote_requests],
)
async def image_to_video_batch(
    manifest: str | Location,
    output: str | Location,
    defaults: RowDefaults | None = None,
    limits: BatchLimits | None = None,
    image_storage_options: dict[str, Any] | None = None,
    fail_on_partial: bool = True,
    allow_private_image_urls: bool = False,
    resubmit_unknown: bool = False,
    credentials: FalCredentials | None = None,
    task_retries: int | None = None,
    task_tags: list[str] | None = None,
    on_progress: ProgressCallback | None = None,
    image_root: str | None = None,
    keyed_artifacts: bool = True,
) -> State[BatchResult]:
    """Generate a video for every row of a manifest and write them to ``output``.

    Rows stream: each is read, checked and started as it comes, so the first
    video starts within seconds and memory stays flat whatever the manifest's
    size.  Re-running the same manifest into the same output pays only for
    what is missing: finished rows are skipped, submitted rows are re-attached
    to their request, and only rows that never reached fal (or whose result
    expired) are submitted.

    Args:
        manifest: CSV, TSV, JSON Lines, JSON or Parquet manifest (compressed or
            not): a URL, or a :class:`~pika_tasks.pipeline.Location` with the
            fsspec options to read it.
        output: folder for ``{id}.mp4``, ``{id}.json`` and ``_runs/``: a URL, or a
            :class:`~pika_tasks.pipeline.Location` with its fsspec options.
        defaults: values for rows that leave fields empty (prompt, prompt
            suffix, negative prompt, resolution, duration, seed).
        limits: rows at fal at once, the spending cap, the Prefect concurrency
            and rate limits, the wait timeout (see :class:`~pika_tasks.pipeline.BatchLimits`).
        image_storage_options: fsspec options for the images (default: the manifest's).
        fail_on_partial: end Failed when any row failed (the report is written first).
        allow_private_image_urls: let images on private addresses be fetched (http(s),
            ftp, sftp, webhdfs and every other protocol whose URL names a host).
        resubmit_unknown: submit again rows whose earlier submit may have reached fal
            without its answer being recorded (this may pay for a second video).
        credentials: a :class:`FalCredentials` block; else ``FAL_KEY`` from the environment.
        task_retries: retries of each task on transient errors (default: the tasks' own).
        task_tags: tags for this run's task runs, e.g. ``["fal"]`` so that a tag
            concurrency limit bounds them.  None (the default) runs them untagged:
            ``limits.concurrency_limit`` already bounds the rows, and a tagged task
            run asks the Prefect API for slots before it starts.
        on_progress: called with a :class:`~pika_tasks.progress.BatchProgress`
            at the start, once the rows are counted, whenever a row moves in
            fal's queue (queued, running, downloading) and whenever a row
            finishes (in-process runs only).
        image_root: confine local images to this folder: a row whose local image
            is elsewhere (after resolving ``..`` and symbolic links; paths,
            ``file://`` and chained URLs alike) fails alone.  For manifests
            written by other people.
        keyed_artifacts: give the run's progress bar, row table and summary the
            output's artifact keys (``pika-progress-…``, ``pika-rows-…``,
            ``pika-summary-…``), so that Prefect's Artifacts page follows the
            output from run to run.  The scale-out flow turns it off for its
            shards, which show theirs on their own run pages, and publishes the
            whole run's table and summary under those keys itself.

    Returns:
        A Completed state with a :class:`BatchResult`, or Failed when rows failed
        and ``fail_on_partial`` is set, or when the run was refused for its budget.

    Events:
        ``pika.video.completed`` or ``pika.video.failed`` for every row finished
        in the run (see :mod:`pika_tasks.events`), and Prefect's
        ``prefect.asset.materialization.succeeded`` for every video written
        (see :mod:`pika_tasks.lineage`).

    Example:
        Skipped as a doctest: it needs a bucket, a Prefect API and a fal key.

        >>> image_to_video_batch("s3://bucket/in/manifest.csv", "s3://bucket/out")  # doctest: +SKIP
    """
    settings = credentials.get_settings() if credentials else PikaSettings()
    settings.require_key()
    source, target = Location.of(manifest), Location.of(output)
    limits = limits or BatchLimits()
    stream = _ManifestStream(source, defaults or RowDefaults())
    # A manifest that cannot be read at all fails the run here, before anything is paid.
    items = stream.rows(await started(stream.open()))
    out = OutputLocation(target.url, target.storage_options)
    # One client, so one set of connection pools and one TLS context, for every task of the run.
    # Three "Finished in state Completed()" lines a row say only what the task runs'
    # states say: not logged, so a row costs fewer API writes (see flows/_log_volume.py).
    quiet_tasks = [task.name for task in (submit_image_to_video, wait_for_completion, fetch_video)]
    # Completions are noticed on a thread of their own: this loop is busy with task runs.
    async with open_client(credentials, settings, follow_in_thread=True) as client:
        slots = FalSlots(limits.concurrency_limit, limits.max_concurrency, limits.submit_rate_limit)
        steps = TaskSteps(
            client=client,
            slots=slots,
            settings=settings,
            credentials=credentials,
            wait_timeout=limits.wait_timeout,
            storage_options=out.storage_options,
            task_retries=task_retries,
            task_tags=list(task_tags or []),
        )
        with completed_lines_dropped(quiet_tasks):
            return await _run(
                stream,
                items,
                out,
                steps,
                limits,
                planner=Planner(
                    out,
                    image_storage_options
                    if image_storage_options is not None
                    else source.storage_options,
                    ImageLimits(
                        allow_private_addresses=allow_private_image_urls, local_root=image_root
                    ),
                    settings.endpoint_id,
                    resubmit_unknown,
                ),
                prices=PriceTable.from_settings(settings),
                wait_timeout=settings.wait_timeout,
                fail_on_partial=fail_on_partial,
                on_progress=on_progress,
                keyed_artifacts=keyed_artifacts,
            )


def _first_set(*values: float | None) -> float:
    return next(value for value in values if value is not None)


async def _run(
    stream: _ManifestStream,
    items: Iterator[ManifestRow | RowError],
    out: OutputLocation,
    steps: TaskSteps,
    limits: BatchLimits,
    *,
    planner: Planner,
    prices: PriceTable,
    wait_timeout: float,
    fail_on_partial: bool,
    on_progress: ProgressCallback | None,
    keyed_artifacts: bool,
) -> State[BatchResult]:
    """Stream the rows through the pipeline, then write the report: the flow's body."""
    logger = get_run_logger()
    manifest = stream.source.url
    budget = Budget(limits.max_spend_usd)
    run_id, run_label = flow_run.get_id(), flow_run.get_name()
    await steps.slots.check(logger)
    bar = await ProgressBar.create(
        f"Rows of {manifest}",
        logger,
        key=artifact_key("progress", out.url) if keyed_artifacts else None,
    )
    tracker = ProgressTracker(None, [bar.show, on_progress], lambda: budget.spent_usd)
    steps.watcher = tracker  # rows at fal: queued, running, downloading
    tracker.start()
    table = RowTable()
    sheet = SheetCollector(out.storage_options, logger=logger)
    ledger = VideoLedger(manifest)  # each video written: an asset materialization
    # Counts and prices the rows while the first rows already start.
    first_pass = FirstPass(stream.open, out, prices, budget, logger)
    book = ClaimBook(out, lease_seconds=limits.claim_lease_seconds)
    if not book.atomic:
        logger.warning(
            "%s is on a store without an atomic exclusive create: runs that overlap on this "
            "output can both submit a row (local disks and S3 have one; see docs/reliability.md)",
            out.url,
        )
    ctx = RowContext(
        out=out,
        steps=ledger.watch(steps),
        prices=prices,
        budget=budget,
        image_storage_options=planner.image_storage_options,
        run_id=run_id,
        logger=logger,
        stale_partials=first_pass.stale_partials,
        # Paid submits wait for the first pass when there is a cap: over it, nothing is paid.
        budget_ready=first_pass.paid_submit_allowed if budget.limit_usd is not None else None,
        claims=RowClaims(
            book,
            Holder(flow_run_id=run_id, flow_run_name=run_label),
            run_is_over=flow_run_is_over,
            wait_seconds=_first_set(limits.claim_wait_seconds, limits.wait_timeout, wait_timeout),
            logger=logger,
        ),
        resubmit_unknown=planner.resubmit_unknown,
        # Without a cap nothing waits for the first pass: it starts once a row is at fal.
        on_submitted=first_pass.start,
    )

    async def counted() -> None:
        await first_pass.started.wait()
        try:
            scan = await first_pass.counted()
        except ManifestError:
            return  # the run reads the same file and reports the error
        logger.info(
            "%d rows in %s: %d new, %d with a record at %s, %d invalid",
            scan.rows,
            manifest,
            scan.new,
            scan.rows - scan.new - scan.invalid,
            out.url,
            scan.invalid,
        )
        tracker.set_total(scan.rows)

    with ReportWriter(out.url, flow_run.get_name(), out.storage_options) as report:

        async def finished(outcome: RowOutcome) -> None:
            first_pass.start()  # a row is done: counting no longer delays the first one
            if outcome.id is not None:
                steps.release(outcome.id)
            if outcome.status == "failed" and outcome.action is None:
                logger.error("%s", outcome.error)  # refused by validation or its image
            report.add(outcome)
            table.add(outcome)
            sheet.add(outcome)
            ledger.finished(outcome)
            emit_row_event(
                outcome,
                output_url=out.video_url(outcome.id) if outcome.id else None,
                flow_run_id=run_id,
                flow_run_name=run_label,
                manifest=manifest,
            )
            tracker.finished(outcome)

        await first_pass.list_output()
        if budget.limit_usd is not None:
            first_pass.start()
        counting = asyncio.create_task(counted())
        try:
            await stream_rows(
                items,
                # A row's unforeseen error fails that row alone (see flows/_faults.py).
                plan=lambda row: alone(planner.plan(ledger.noted(row)), row, logger),
                run=lambda plan: alone(run_row(plan, ctx), plan.row, logger),
                on_outcome=finished,
                workers=2 * limits.max_concurrency,  # half at fal, half downloading at most
                lookahead=limits.planning_lookahead,
            )
            first_pass.start()
            await counting
        finally:
            counting.cancel()
            first_pass.cancel()
        result = await asyncio.to_thread(report.close)
    await asyncio.to_thread(book.tidy)  # no claim of this run is left: its folder may go
    await bar.close()
    await steps.slots.aclose()
    await publish_summary(result, table, manifest, out.url, logger, sheet, keyed=keyed_artifacts)
    message = (
        f"{result.succeeded} succeeded, {result.failed} failed, {result.skipped} skipped "
        f"of {result.total} rows; report: {result.report_url}"
    )
    if first_pass.refusal:
        message = f"{first_pass.refusal}; {message}"
    if stream.error is not None:
        message = f"the manifest could not be read to its end: {stream.error}; {message}"
        logger.error("%s", message)
        return Failed(message=message, data=result)
    logger.info(message)
    if first_pass.refusal or (result.failed and fail_on_partial):
        return Failed(message=message, data=result)
    return Completed(message=message, data=result)
