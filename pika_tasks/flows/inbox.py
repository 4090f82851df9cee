"""The inbox: a scheduled flow that processes manifests dropped into a folder.

Every manifest directly in ``inbox`` (CSV, TSV, JSON Lines, JSON, Parquet,
optionally compressed) that has no marker under ``{inbox}/_processed/`` is
run through the batch flow into ``{output}/{stem}/``, its name without the
format and compression suffixes (its whole name when another manifest of the
inbox, waiting or processed, has the same stem: two manifests never share a
folder, where their rows would overwrite each other's videos); then a marker
``{inbox}/_processed/{manifest name}.json`` records when and how it ended.
A manifest whose batch run never ran its rows (no key on the worker, an
unreadable file) or crashed gets no marker: the next run takes it up.
Delete a marker to process that manifest again (finished rows are skipped,
so nothing is paid twice).  Drop a manifest whole (write it elsewhere, then
move it in): a file still being copied may be read half-written.

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
from collections.abc import Iterable
from typing import Any

from prefect import flow, get_run_logger

from pika_tasks.flows.image_to_video import image_to_video_batch
from pika_tasks.pipeline import BatchLimits, BatchResult, Location
from pika_tasks.records import utc_now
from pika_tasks.storage import filesystem, join, write_text_atomic

__all__ = [
    "PROCESSED_FOLDER",
    "known_manifests",
    "manifest_stem",
    "output_folder",
    "pending_manifests",
    "process_inbox",
]

PROCESSED_FOLDER = "_processed"
_SUFFIX = r"\.(csv|tsv|jsonl|ndjson|json|parquet)(\.(gz|bz2|xz|zst))?"
MANIFEST_NAME = re.compile(rf"^[^._][^/]*{_SUFFIX}$", re.IGNORECASE)
_MANIFEST_SUFFIX = re.compile(rf"{_SUFFIX}$", re.IGNORECASE)


def manifest_stem(name: str) -> str:
    """The manifest's name without its format and compression suffixes.

    >>> manifest_stem("2026-11-24 shoot.csv.gz"), manifest_stem("2026.11.24.csv")
    ('2026-11-24 shoot', '2026.11.24')
    """
    return _MANIFEST_SUFFIX.sub("", name) or name


def output_folder(name: str, known: Iterable[str]) -> str:
    """The folder under the output for manifest ``name``: its stem, unless another
    manifest the inbox knows (waiting, or processed before) has the same stem; then
    its whole name, so two manifests never write their rows over each other's.

    >>> output_folder("shoot.csv", ["shoot.csv", "day-2.csv"])
    'shoot'
    >>> output_folder("shoot.json", ["shoot.csv", "shoot.json"])
    'shoot.json'
    """
    stem = manifest_stem(name)
    shared = any(other != name and manifest_stem(other) == stem for other in known)
    return name if shared else stem


def _listed(fs: Any, path: str) -> list[str]:
    if not fs.exists(path):
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))


def _inbox(inbox: str, storage_options: dict[str, Any] | None) -> tuple[list[str], set[str]]:
    """The names of the manifests in ``inbox``, and of those with a processed marker
    (markers stay when their manifests are removed): one listing of each folder."""
    fs, path = filesystem(inbox, storage_options)
    names = [name for name in _listed(fs, path) if MANIFEST_NAME.match(name)]
    markers = _listed(fs, posixpath.join(path, PROCESSED_FOLDER))
    return names, {m.removesuffix(".json") for m in markers if m.endswith(".json")}


def known_manifests(inbox: str, storage_options: dict[str, Any] | None = None) -> set[str]:
    """Names of the manifests in ``inbox`` and of those processed before (their markers
    stay when the manifests are removed)."""
    names, processed = _inbox(inbox, storage_options)
    return {*names, *processed}


def pending_manifests(inbox: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """URLs of the manifests in ``inbox`` that have no processed marker, by name."""
    names, processed = _inbox(inbox, storage_options)
    return [join(inbox, name) for name in names if name not in processed]


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
        The manifests processed (and marked) by this run.  One whose batch run
        never ran its rows (a missing key, an unreadable manifest) or crashed is
        left unmarked, for the next run.

    Example:
        Skipped as a doctest: it needs a bucket, a Prefect API and a fal key.

        >>> asyncio.run(process_inbox("s3://bucket/inbox", "s3://bucket/videos"))  # doctest: +SKIP
    """
    logger = get_run_logger()
    source, target = Location.of(inbox), Location.of(output)
    manifests = pending_manifests(source.url, source.storage_options)
    known = known_manifests(source.url, source.storage_options)
    logger.info("%d new manifests in %s", len(manifests), source.url)
    processed: list[str] = []
    for manifest in manifests:
        name = posixpath.basename(manifest)
        destination = target.model_copy(
            update={"url": join(target.url, output_folder(name, known))}
        )
        state = await image_to_video_batch(
            source.model_copy(update={"url": manifest}),
            destination,
            limits=limits,
            return_state=True,
        )
        result = await state.aresult(raise_on_failure=False)
        if state.is_crashed() or not isinstance(result, BatchResult):
            # It never ran its rows (no key on this worker, an unreadable manifest) or
            # its process died: left unmarked, the next run takes it up (done rows are
            # skipped, submitted ones re-attached: nothing is paid twice).
            logger.error(
                "%s ended %s before its rows were all run (%s): left in the inbox for the next run",
                name,
                state.name,
                state.message or result,
            )
            continue
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
        processed.append(manifest)
    return processed
