"""Scale-out: one large manifest, run as shards on a work pool, merged into one report.

The manifest is streamed once here; its valid rows are written as shard
manifests under ``{output}/_shards/{run}/`` and each shard runs as its own
run of the batch deployment (``arun_deployment``), so every worker polling the
pool takes a share.  All shards write to the same output and hold slots of the
same global concurrency limit, so fal's account limit holds across machines.

The parent survives the Prefect API's trouble: a shard run whose creation
fails is created again (its idempotency key makes that safe), a shard's state
that cannot be read is read again (and a shard whose report is at the output
is done, whatever the API says), and a shard run that ended without a report
(a crash, a killed process) is reported from what its rows recorded at the
output: videos made, requests submitted and not yet fetched, submits of
unknown outcome, failures.  Only rows with no record of this shard's work are
reported as not run.

The output's keyed artifacts (``pika-summary-…``, ``pika-rows-…``) follow
whole runs: each shard shows its progress bar, table and summary on its own
run page, without keys, and the parent publishes the merged table and a
summary with the contact sheet of the whole run under the output's keys.

Example:
    After ``prefect deploy --all`` (see ``prefect.yaml``)::

        prefect deployment run 'image-to-video-scale-out/scale-out' \\
            --param manifest=s3://bucket/in/big.csv --param output=s3://bucket/out \\
            --param shard_size=250
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, State
from prefect.deployments.flow_runs import arun_deployment
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from pika_tasks.budget import share_cap, total_usd
from pika_tasks.flows._artifacts import RowTable, SheetCollector, publish_summary
from pika_tasks.manifest import ManifestRow, RowDefaults, RowError, iter_manifest
from pika_tasks.pipeline import (
    BatchLimits,
    BatchResult,
    Location,
    ManifestScan,
    ReportWriter,
    RowOutcome,
    invalid_row_outcome,
    read_report,
    started,
)
from pika_tasks.pricing import PriceTable
from pika_tasks.records import OutputLocation, RowRecord
from pika_tasks.settings import PikaSettings
from pika_tasks.shards import (
    merged_run_name,
    renumber,
    reports_of_runs,
    shard_run_name,
    write_shards,
)
from pika_tasks.storage import filesystem, join

__all__ = ["DEFAULT_BATCH_DEPLOYMENT", "image_to_video_scale_out", "recorded_outcome"]

DEFAULT_BATCH_DEPLOYMENT = "image-to-video-batch/batch"
POLL_SECONDS = 3.0
"""Seconds between two looks at the shard runs' states."""
LAUNCH_PATIENCE = 300.0
"""How long the creation of a shard run is tried again when the Prefect API fails it."""

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass
class _Shard:
    """One shard: its manifest, its rows, its deployment run (once created)."""

    name: str
    url: str
    ids: list[str]
    run: FlowRun | None = None
    launched_at: datetime | None = None
    launch_error: str | None = None

    def state(self) -> str:
        if self.run is None:
            return "never created"
        return (self.run.state.name or "unknown") if self.run.state else "unknown"

    def finished(self) -> bool:
        return self.run is None or bool(self.run.state and self.run.state.is_final())


def _paid_here(record: RowRecord, run_id: str, since: datetime | None) -> bool:
    """Whether the run ``run_id``, launched at ``since``, sent a submit fal may have queued.

    fal may have queued a submit that has a request, or whose answer never came
    (``submitting``); one it refused (failed, with no request) was not paid.
    Records written before they named the submitting run are judged by time:
    a submit sent since the launch (on the worker's clock against the API's).
    """
    if record.request is None and record.state != "submitting":
        return False
    if record.submitted_by is not None:
        return record.submitted_by == run_id
    if since is None or record.submitted_at is None:
        return False
    try:
        return datetime.fromisoformat(record.submitted_at) >= since
    except ValueError:
        return False


def recorded_outcome(
    row_id: str,
    row_number: int,
    record: RowRecord | None,
    *,
    run_id: str | None,
    run_label: str,
    launched_at: datetime | None,
    video_exists: bool,
    prices: PriceTable,
) -> RowOutcome:
    """A row's report line from its record, for a run that ended without writing its report.

    Args:
        row_id: the row's id.
        row_number: its row in the manifest.
        record: its record at the output location, if any.
        run_id: the flow run that was to make it.
        run_label: how the report names that run (its name and how it ended).
        launched_at: when that run was created (a submit sent since was paid by it).
        video_exists: whether the record's video is at its place.
        prices: list prices, for what the run paid.

    Example:
        >>> from pika_tasks.records import RowRecord
        >>> recorded_outcome("a", 1, None, run_id="r", run_label="shard 0 (Crashed)",
        ...                  launched_at=None, video_exists=False, prices=PriceTable()).error
        'not run: shard 0 (Crashed) ended before it made this row (nothing was paid for it)'
    """
    outcome = RowOutcome(id=row_id, row_number=row_number, status="failed")
    if record is None or run_id is None or record.flow_run_id != run_id:
        if record is not None and record.state == "succeeded" and video_exists:
            return outcome.model_copy(update={"status": "skipped", "output": record.output})
        return outcome.model_copy(
            update={
                "error": f"not run: {run_label} ended before it made this row "
                "(nothing was paid for it)"
            }
        )
    paid = _paid_here(record, run_id, launched_at)
    row = record.row
    cost = prices.cost(row.get("resolution", "720p"), row.get("duration", 5)) if paid else 0.0
    request_id = record.request.request_id if record.request else None
    outcome = outcome.model_copy(
        update={
            "action": "submit" if paid else "reattach",
            "request_id": request_id,
            "cost_usd": cost,
        }
    )
    if record.state == "succeeded" and video_exists:
        return outcome.model_copy(update={"status": "succeeded", "output": record.output})
    if record.state == "submitted":
        error = (
            f"submitted to fal (request {request_id}), but {run_label} ended before the video "
            "was fetched; run again to fetch it (the request is re-attached, not paid again)"
        )
    elif record.state == "submitting":
        error = (
            f"{run_label} ended while this row's submit was in flight: it may have reached "
            "fal without its answer being recorded; check your fal request history, then run "
            "again with resubmit_unknown=True (--resubmit-unknown) to submit it again"
        )
    elif record.state == "cancelled":
        return outcome.model_copy(update={"status": "cancelled", "error": record.error})
    elif record.state == "succeeded":
        error = f"its video is missing at {record.output}; run again to make it"
    else:
        error = record.error or f"failed in {run_label}"
    return outcome.model_copy(update={"error": error})


async def _launch(
    shard: _Shard, deployment: str, parameters: dict[str, Any], key: str, logger: Logger
) -> None:
    """Create the shard's run; API errors are retried (the idempotency key makes it safe)."""
    deadline = time.monotonic() + LAUNCH_PATIENCE
    pause = 2.0
    while True:
        shard.launched_at = datetime.now(UTC)
        try:
            shard.run = await arun_deployment(
                deployment,
                parameters=parameters,
                flow_run_name=shard.name,
                idempotency_key=key,
                as_subflow=True,
                timeout=0,
            )
            return
        except Exception as error:
            shard.launch_error = str(error) or type(error).__name__
            if time.monotonic() + pause > deadline:
                logger.error("shard run %s could not be created: %s", shard.name, error)
                return
            logger.warning(
                "shard run %s could not be created (%s); trying again", shard.name, error
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)


async def _wait_for(shards: list[_Shard], output: Location, logger: Logger) -> None:
    """Until every shard run ended (or wrote its report): the API's trouble is waited out."""
    warned = False
    while pending := [s for s in shards if not s.finished()]:
        ids: list[UUID] = [s.run.id for s in pending if s.run is not None]
        try:
            async with get_client() as client:
                found = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
                )
        except Exception as error:
            if not warned:
                logger.warning(
                    "the shard runs' states cannot be read now (%s): reading them again, "
                    "and taking a shard's report at the output as its end",
                    error,
                )
                warned = True
            reports = await asyncio.to_thread(
                reports_of_runs, output.url, [s.name for s in pending], output.storage_options
            )
            for shard in pending:
                if shard.name in reports and shard.run is not None:
                    shard.run = shard.run.model_copy(update={"state": Completed()})
        else:
            by_id = {run.id: run for run in found}
            for shard in pending:
                if shard.run is not None and shard.run.id in by_id:
                    shard.run = by_id[shard.run.id]
        if any(not s.finished() for s in shards):
            await asyncio.sleep(POLL_SECONDS)


def _recorded_rows(
    shard: _Shard, out: OutputLocation, row_numbers: dict[str, int], prices: PriceTable
) -> list[RowOutcome]:
    """The shard's rows from their records (blocking: run in a thread)."""
    outcomes = []
    for row_id in shard.ids:
        record = out.load(row_id)
        outcome = recorded_outcome(
            row_id,
            row_numbers[row_id],
            record,
            run_id=str(shard.run.id) if shard.run is not None else None,
            run_label=f"shard run {shard.name} ({shard.state()})",
            launched_at=shard.launched_at,
            video_exists=out.video_exists(record),
            prices=prices,
        )
        if shard.run is None and outcome.status == "failed":
            outcome.error = (
                f"not run: its shard run {shard.name} could not be created "
                f"({shard.launch_error}); nothing was paid for it"
            )
        outcomes.append(outcome)
    return outcomes


def _shard_outcomes(
    shard: _Shard,
    report_url: str | None,
    out: OutputLocation,
    row_numbers: dict[str, int],
    prices: PriceTable,
    logger: Logger,
) -> list[RowOutcome]:
    """The shard's rows for the merged report (blocking: run in a thread).

    From the shard's own report when it completed; otherwise from its rows'
    records: a crashed or cancelled shard's report, if any, is its cancellation
    hook's, which lists only the rows it was making, without what they cost.
    """
    state = shard.run.state if shard.run is not None else None
    if report_url is not None and state is not None and state.is_completed():
        found = read_report(report_url, out.storage_options)
        return renumber(found.rows, row_numbers)
    logger.error(
        "shard run %s ended %s%s: its rows are reported from their records at the output",
        shard.name,
        shard.state(),
        " without a report" if report_url is None else "",
    )
    return _recorded_rows(shard, out, row_numbers, prices)


def _shard_limits(limits: BatchLimits, share: float | None) -> dict[str, Any]:
    """The ``limits`` parameter of one shard: the run's, with its share of the cap."""
    if share is None:
        return {}
    return {"limits": limits.model_copy(update={"max_spend_usd": share}).model_dump(mode="json")}


def _remove_folder(url: str, storage_options: dict[str, Any]) -> None:
    fs, path = filesystem(url, storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@flow(name="image-to-video-scale-out")
async def image_to_video_scale_out(
    manifest: str | Location,
    output: str | Location,
    deployment: str = DEFAULT_BATCH_DEPLOYMENT,
    shard_size: int = 500,
    defaults: RowDefaults | None = None,
    image_storage_options: dict[str, Any] | None = None,
    shard_parameters: dict[str, Any] | None = None,
    fail_on_partial: bool = True,
) -> State[BatchResult]:
    """Split ``manifest`` into shards, run each on the batch deployment, merge the reports.

    Args:
        manifest: the manifest, a URL or a :class:`~pika_tasks.pipeline.Location`
            (see the batch flow).
        output: where every shard writes its videos, records and reports.
        deployment: the batch deployment each shard runs on, ``flow-name/deployment-name``.
        shard_size: rows per shard (and so per deployment run).
        defaults: values for rows that leave fields empty (as the batch flow's).
        image_storage_options: fsspec options for the images (default: the manifest's).
        shard_parameters: more parameters for every shard run (e.g.
            ``{"limits": {"max_concurrency": 8}}``).  A ``max_spend_usd`` in its
            ``limits`` caps the whole run: priced over it, no shard is launched;
            under it, each shard gets its share (its rows' price and part of the rest).
        fail_on_partial: end Failed when any row failed.

    Returns:
        The merged counts; the merged report is ``{output}/_runs/{time}-{run}-merged.jsonl``.

    Example:
        Skipped as a doctest: it needs a deployment, its workers and a fal key.

        >>> image_to_video_scale_out("s3://b/in/big.csv", "s3://b/out")  # doctest: +SKIP
    """
    logger = get_run_logger()
    source, target = Location.of(manifest), Location.of(output)
    run_name = flow_run.get_name() or "local"
    run_key = flow_run.get_id() or run_name
    folder = join(target.url, "_shards", run_name)
    row_numbers: dict[str, int] = {}
    invalid: list[RowError] = []
    # A cap covers the whole run: shared out among the shards, never each shard's own.
    limits = BatchLimits.model_validate((shard_parameters or {}).get("limits") or {})
    cap = limits.max_spend_usd
    prices = PriceTable.from_settings(PikaSettings())
    recorded = (
        await asyncio.to_thread(OutputLocation(target.url, target.storage_options).recorded_ids)
        if cap is not None
        else set()
    )
    size = max(1, shard_size)
    scans: list[ManifestScan] = []  # per shard: its rows counted as a run's first pass does

    def valid_rows(items: Iterator[ManifestRow | RowError]) -> Iterator[ManifestRow]:
        written = 0
        for item in items:
            if isinstance(item, RowError):
                invalid.append(item)
                continue
            row_numbers[item.id] = item.row_number
            if written % size == 0:
                scans.append(ManifestScan())
            scans[-1].count(item, recorded_ids=recorded, prices=prices)
            written += 1
            yield item

    # The manifest streams once into shards: one shard's rows in memory at a time.
    items = await started(
        iter_manifest(source.url, defaults=defaults, storage_options=source.storage_options)
    )
    urls = await asyncio.to_thread(
        write_shards, valid_rows(items), folder, shard_size, target.storage_options
    )
    logger.info("%d valid rows in %d shards under %s", len(row_numbers), len(urls), folder)
    caps: list[float | None] = [None] * len(urls)
    if cap is not None:
        whole = ManifestScan(
            new=sum(scan.new for scan in scans),
            new_usd=total_usd(scan.new_usd for scan in scans),
        )
        refusal = whole.over_cap(cap)
        if refusal is not None:
            logger.error("%s; no shard was launched", refusal)
            await asyncio.to_thread(_remove_folder, folder, target.storage_options)
            return Failed(message=refusal)
        caps = list(share_cap(cap, [scan.new_usd for scan in scans]))
    ids = list(row_numbers)
    shards = [
        _Shard(shard_run_name(run_name, number), url, ids[number * size : (number + 1) * size])
        for number, url in enumerate(urls)
    ]

    parameters = {
        "output": target.model_dump(),
        "image_storage_options": image_storage_options
        if image_storage_options is not None
        else source.storage_options,
        # The parent decides: a failed shard is reported here, not as its own failure.
        "fail_on_partial": False,
        # The output's artifact keys follow whole runs: the merged ones are published here.
        "keyed_artifacts": False,
        **(shard_parameters or {}),
    }
    await asyncio.gather(
        *(
            _launch(
                shard,
                deployment,
                {
                    **parameters,
                    "manifest": {"url": shard.url, "storage_options": target.storage_options},
                    **_shard_limits(limits, share),
                },
                f"{run_key}-{shard.name}",
                logger,
            )
            for shard, share in zip(shards, caps, strict=True)
        )
    )
    await _wait_for(shards, target, logger)
    reports = await asyncio.to_thread(
        reports_of_runs, target.url, [s.name for s in shards], target.storage_options
    )
    out = OutputLocation(target.url, target.storage_options)
    table = RowTable()
    sheet = SheetCollector(target.storage_options, logger=logger)
    with ReportWriter(target.url, merged_run_name(run_name), target.storage_options) as report:

        def merge(outcome: RowOutcome) -> None:
            # Every row goes to the merged report and the run's artifacts alike.
            report.add(outcome)
            table.add(outcome)
            sheet.add(outcome)  # videos written only

        for error in invalid:
            merge(invalid_row_outcome(error))
        reported: set[str] = set()
        for shard in shards:
            outcomes = await asyncio.to_thread(
                _shard_outcomes, shard, reports.get(shard.name), out, row_numbers, prices, logger
            )
            for outcome in outcomes:
                merge(outcome)
                reported.add(outcome.id or "")
        # A row missing from its shard's report is not lost: it is a failure to run again.
        for row_id, row_number in row_numbers.items():
            if row_id not in reported:
                merge(
                    RowOutcome(
                        id=row_id,
                        row_number=row_number,
                        status="failed",
                        error="not run: missing from its shard run's report",
                    )
                )
        result = await asyncio.to_thread(report.close)
    await publish_summary(
        result,
        table,
        source.url,
        target.url,
        logger,
        sheet,
        title=f"Image-to-video scale-out: {len(shards)} shards",
    )
    message = (
        f"{len(shards)} shards: {result.succeeded} succeeded, {result.failed} failed, "
        f"{result.skipped} skipped of {result.total} rows; report: {result.report_url}"
    )
    logger.info(message)
    if result.failed and fail_on_partial:
        return Failed(message=message, data=result)
    return Completed(message=message, data=result)
