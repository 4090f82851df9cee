"""Scale-out: one large manifest, run as shards on a work pool, merged into one report.

The manifest is validated once here; its valid rows are written as shard
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
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import FlowRun, State
from prefect.deployments.flow_runs import arun_deployment
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from pika_tasks.flows.image_to_video import BatchResult, summarize
from pika_tasks.manifest import RowDefaults, read_manifest
from pika_tasks.models import Duration, Resolution
from pika_tasks.records import OutputLocation, RowOutcome, invalid_row_outcomes
from pika_tasks.shards import read_report, renumber, reports_of_runs, write_shards
from pika_tasks.storage import join

DEFAULT_BATCH_DEPLOYMENT = "image-to-video-batch/batch"


@flow(name="image-to-video-scale-out")
async def image_to_video_scale_out(
    manifest: str,
    output: str,
    deployment: str = DEFAULT_BATCH_DEPLOYMENT,
    shard_size: int = 500,
    prompt: str | None = None,
    prompt_suffix: str = "",
    negative_prompt: str | None = None,
    resolution: Resolution | None = None,
    duration: Duration | None = None,
    seed: int | None = None,
    storage_options: dict[str, Any] | None = None,
    output_storage_options: dict[str, Any] | None = None,
    shard_parameters: dict[str, Any] | None = None,
    fail_on_partial: bool = True,
) -> State[BatchResult]:
    """Split ``manifest`` into shards, run each on the batch deployment, merge the reports.

    Args:
        manifest: the manifest, at any fsspec URL (see the batch flow).
        output: where every shard writes its videos, records and reports.
        deployment: the batch deployment each shard runs on, ``flow-name/deployment-name``.
        shard_size: rows per shard (and so per deployment run).
        prompt: prompt for rows that have none.
        prompt_suffix: text appended to every row's prompt.
        negative_prompt: negative prompt for rows that have none.
        resolution: resolution for rows that have none.
        duration: duration for rows that have none.
        seed: seed for rows that have none.
        storage_options: fsspec options for the manifest and images.
        output_storage_options: fsspec options for ``output`` (default: ``storage_options``).
        shard_parameters: more parameters for every shard run (e.g. ``max_concurrency``).
        fail_on_partial: end Failed when any row failed.

    Returns:
        The merged counts; the merged report is ``{output}/_runs/{time}-{run}-merged.jsonl``.
    """
    logger = get_run_logger()
    storage = storage_options or {}
    out_options = output_storage_options if output_storage_options is not None else storage
    out = OutputLocation(output, out_options)
    defaults = RowDefaults(
        prompt=prompt,
        prompt_suffix=prompt_suffix,
        negative_prompt=negative_prompt,
        resolution=resolution,
        duration=duration,
        seed=seed,
    )
    parsed = await asyncio.to_thread(
        read_manifest, manifest, defaults=defaults, storage_options=storage
    )
    outcomes = invalid_row_outcomes(parsed.errors)
    run_name = flow_run.get_name() or "local"
    folder = join(output, "_shards", run_name)
    shards = await asyncio.to_thread(write_shards, parsed.rows, folder, shard_size, out_options)
    logger.info("%d valid rows in %d shards under %s", len(parsed.rows), len(shards), folder)

    names = [f"{run_name}-shard-{number:04d}" for number in range(len(shards))]
    parameters = {
        "output": output,
        "storage_options": storage,
        "output_storage_options": out_options,
        "manifest_storage_options": out_options,
        # The parent decides: a failed shard is reported here, not as its own failure.
        "fail_on_partial": False,
        **(shard_parameters or {}),
    }
    runs: list[FlowRun] = await asyncio.gather(
        *(
            arun_deployment(
                deployment,
                parameters={**parameters, "manifest": url},
                flow_run_name=name,
                as_subflow=True,
            )
            for url, name in zip(shards, names, strict=True)
        )
    )
    reports = await asyncio.to_thread(reports_of_runs, out, names)
    row_numbers = {row.id: row.row_number for row in parsed.rows}
    reported: set[str] = set()
    for run, name in zip(runs, names, strict=True):
        state = run.state.name if run.state else "unknown"
        if name not in reports:
            logger.error("shard run %s ended %s without a report", name, state)
            continue
        shard_outcomes = await asyncio.to_thread(read_report, reports[name], out_options)
        outcomes.extend(renumber(shard_outcomes, row_numbers))
        reported.update(o.id for o in shard_outcomes if o.id)
    # Rows of shards that never reported are not lost: they are failures to run again.
    outcomes.extend(
        RowOutcome(
            id=row.id,
            row_number=row.row_number,
            status="failed",
            error="its shard run did not finish",
        )
        for row in parsed.rows
        if row.id not in reported
    )
    outcomes.sort(key=lambda o: o.row_number)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    report_url = await asyncio.to_thread(out.write_report, f"{stamp}-{run_name}-merged", outcomes)
    result = summarize(outcomes, report_url)
    message = (
        f"{len(shards)} shards: {result.succeeded} succeeded, {result.failed} failed, "
        f"{result.skipped} skipped of {result.total} rows; report: {report_url}"
    )
    logger.info(message)
    if result.failed and fail_on_partial:
        return Failed(message=message, data=result)
    return Completed(message=message, data=result)
