"""Scale-out: one large manifest, run as shards on a work pool, merged into one report.

The manifest is streamed once here; its valid rows are written as shard
manifests under ``{output}/_shards/{run}/`` and each shard runs as its own
run of the batch deployment (``arun_deployment``), so every worker polling the
pool takes a share.  All shards write to the same output and hold slots of the
same global concurrency limit, so fal's account limit holds across machines.

Example:
    After ``prefect deploy --all`` (see ``prefect.yaml``)::

        prefect deployment run 'image-to-video-scale-out/scale-out' \\
            --param manifest=s3://bucket/in/big.csv --param output=s3://bucket/out \\
            --param shard_size=250
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import FlowRun, State
from prefect.deployments.flow_runs import arun_deployment
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from pika_tasks.manifest import ManifestRow, RowDefaults, RowError, iter_manifest
from pika_tasks.pipeline import (
    BatchResult,
    Location,
    ReportWriter,
    RowOutcome,
    invalid_row_outcome,
    read_report,
    report_name,
    started,
)
from pika_tasks.shards import renumber, reports_of_runs, write_shards
from pika_tasks.storage import join

__all__ = ["DEFAULT_BATCH_DEPLOYMENT", "image_to_video_scale_out"]

DEFAULT_BATCH_DEPLOYMENT = "image-to-video-batch/batch"


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
            ``{"limits": {"max_concurrency": 8}}``).
        fail_on_partial: end Failed when any row failed.

    Returns:
        The merged counts; the merged report is ``{output}/_runs/{time}-{run}-merged.jsonl``.

    Example:
        >>> image_to_video_scale_out("s3://b/in/big.csv", "s3://b/out")  # doctest: +SKIP
    """
    logger = get_run_logger()
    source, target = Location.of(manifest), Location.of(output)
    run_name = flow_run.get_name() or "local"
    folder = join(target.url, "_shards", run_name)
    row_numbers: dict[str, int] = {}
    invalid: list[RowError] = []

    def valid_rows(items: Iterator[ManifestRow | RowError]) -> Iterator[ManifestRow]:
        for item in items:
            if isinstance(item, RowError):
                invalid.append(item)
            else:
                row_numbers[item.id] = item.row_number
                yield item

    # The manifest streams once into shards: one shard's rows in memory at a time.
    items = await started(
        iter_manifest(source.url, defaults=defaults, storage_options=source.storage_options)
    )
    shards = await asyncio.to_thread(
        write_shards, valid_rows(items), folder, shard_size, target.storage_options
    )
    logger.info("%d valid rows in %d shards under %s", len(row_numbers), len(shards), folder)

    names = [f"{run_name}-shard-{number:04d}" for number in range(len(shards))]
    parameters = {
        "output": target.model_dump(),
        "image_storage_options": image_storage_options
        if image_storage_options is not None
        else source.storage_options,
        # The parent decides: a failed shard is reported here, not as its own failure.
        "fail_on_partial": False,
        **(shard_parameters or {}),
    }
    runs: list[FlowRun] = await asyncio.gather(
        *(
            arun_deployment(
                deployment,
                parameters={
                    **parameters,
                    "manifest": {"url": url, "storage_options": target.storage_options},
                },
                flow_run_name=name,
                as_subflow=True,
            )
            for url, name in zip(shards, names, strict=True)
        )
    )
    reports = await asyncio.to_thread(reports_of_runs, target.url, names, target.storage_options)
    merged = report_name(f"{run_name}-merged")
    with ReportWriter(target.url, merged, target.storage_options) as report:
        for error in invalid:
            report.add(invalid_row_outcome(error))
        reported: set[str] = set()
        for run, name in zip(runs, names, strict=True):
            state = run.state.name if run.state else "unknown"
            if name not in reports:
                logger.error("shard run %s ended %s without a report", name, state)
                continue
            shard = await asyncio.to_thread(read_report, reports[name], target.storage_options)
            for outcome in renumber(shard.rows, row_numbers):
                report.add(outcome)
                reported.add(outcome.id or "")
        # Rows of shards that never reported are not lost: they are failures to run again.
        for row_id, row_number in row_numbers.items():
            if row_id not in reported:
                report.add(
                    RowOutcome(
                        id=row_id,
                        row_number=row_number,
                        status="failed",
                        error="its shard run did not finish",
                    )
                )
        result = await asyncio.to_thread(report.close)
    message = (
        f"{len(shards)} shards: {result.succeeded} succeeded, {result.failed} failed, "
        f"{result.skipped} skipped of {result.total} rows; report: {result.report_url}"
    )
    logger.info(message)
    if result.failed and fail_on_partial:
        return Failed(message=message, data=result)
    return Completed(message=message, data=result)
