"""The inbox: a scheduled flow that processes manifests dropped into a folder.

Every manifest directly in ``inbox`` (CSV, TSV, JSON Lines, JSON, Parquet,
optionally compressed) that has no marker under ``{inbox}/_processed/`` is
run through the batch flow into ``{output}/{manifest name}/``; then a marker
``{inbox}/_processed/{manifest name}.json`` records when and how it ended.
Delete a marker to process that manifest again (finished rows are skipped,
so nothing is paid twice).

Example:
    Deployed on a cron schedule in ``prefect.yaml``; by hand::

        import asyncio
        from pika_tasks.flows.inbox import process_inbox

        asyncio.run(process_inbox("s3://bucket/inbox", "s3://bucket/videos"))
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from prefect import flow, get_run_logger

from pika_tasks.flows.image_to_video import image_to_video_batch
from pika_tasks.pipeline import BatchLimits, BatchResult, Location
from pika_tasks.records import utc_now
from pika_tasks.storage import exists, filesystem, join, write_text_atomic

__all__ = ["PROCESSED_FOLDER", "manifest_stem", "pending_manifests", "process_inbox"]

PROCESSED_FOLDER = "_processed"
MANIFEST_NAME = re.compile(
    r"^[^._][^/]*\.(csv|tsv|jsonl|ndjson|json|parquet)(\.(gz|bz2|xz|zst))?$", re.IGNORECASE
)


def manifest_stem(name: str) -> str:
    """The manifest's name without its format and compression suffixes.

    >>> manifest_stem("2026-11-24 shoot.csv.gz")
    '2026-11-24 shoot'
    """
    return MANIFEST_NAME.sub("", name) or name.split(".", 1)[0]


def pending_manifests(inbox: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """URLs of the manifests in ``inbox`` that have no processed marker, by name."""
    fs, path = filesystem(inbox, storage_options)
    if not fs.exists(path):
        return []
    names = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))
    return [
        join(inbox, name)
        for name in names
        if MANIFEST_NAME.match(name)
        and not exists(join(inbox, PROCESSED_FOLDER, f"{name}.json"), storage_options)
    ]


@flow(name="image-to-video-inbox")
async def process_inbox(
    inbox: str | Location,
    output: str | Location,
    limits: BatchLimits | None = None,
) -> list[str]:
    """Run the batch flow on every new manifest in ``inbox`` and mark it processed.

    Args:
        inbox: folder where manifests are dropped: a URL, or a
            :class:`~pika_tasks.pipeline.Location` with the fsspec options for
            the inbox, its manifests and their images.
        output: folder under which each manifest gets ``{output}/{manifest name}/``:
            a URL or a :class:`~pika_tasks.pipeline.Location`.
        limits: the batch runs' limits (rows at fal at once, spending cap...).

    Returns:
        The manifests processed by this run.

    Example:
        Skipped as a doctest: it needs a bucket, a Prefect API and a fal key.

        >>> asyncio.run(process_inbox("s3://bucket/inbox", "s3://bucket/videos"))  # doctest: +SKIP
    """
    logger = get_run_logger()
    source, target = Location.of(inbox), Location.of(output)
    manifests = pending_manifests(source.url, source.storage_options)
    logger.info("%d new manifests in %s", len(manifests), source.url)
    for manifest in manifests:
        name = posixpath.basename(manifest)
        destination = target.model_copy(update={"url": join(target.url, manifest_stem(name))})
        state = await image_to_video_batch(
            source.model_copy(update={"url": manifest}),
            destination,
            limits=limits,
            return_state=True,
        )
        result = await state.aresult(raise_on_failure=False)
        marker: dict[str, Any] = {
            "manifest": manifest,
            "output": destination.url,
            "finished_at": utc_now(),
            "state": state.name,
            "message": state.message,
        }
        if isinstance(result, BatchResult):
            marker["result"] = result.model_dump()
        write_text_atomic(
            join(source.url, PROCESSED_FOLDER, f"{name}.json"),
            json.dumps(marker, indent=2),
            source.storage_options,
        )
    return manifests
