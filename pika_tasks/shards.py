"""Splitting a manifest into shard manifests, and finding the shards' run reports.

The scale-out flow streams the manifest once, writes its valid rows as JSON
Lines shards (with final prompts and absolute image locations, so a shard
needs no defaults and no folder of its own), runs each shard as its own
deployment run, and merges the shards' reports into one, with the original
row numbers.

Example:
    >>> from pika_tasks.manifest import ManifestRow
    >>> from pika_tasks.shards import write_shards
    >>> rows = (ManifestRow(row_number=n, id=f"r{n}", image=f"/i/{n}.png", prompt="zoom in")
    ...         for n in range(1, 6))
    >>> write_shards(rows, "memory://shards-doc", 2)
    ['memory://shards-doc/shard-0000.jsonl', 'memory://shards-doc/shard-0001.jsonl', 'memory://shards-doc/shard-0002.jsonl']
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pika_tasks.manifest import ManifestRow
from pika_tasks.pipeline import RowOutcome, RunReport, report_urls
from pika_tasks.storage import join, write_text_atomic

__all__ = [
    "merged_run_name",
    "renumber",
    "reports_of_runs",
    "shard_line",
    "shard_run_name",
    "whole_runs",
    "write_shards",
]

_SHARD_RUN = re.compile(r"^(?P<parent>.+)-shard-\d{4,}$")
_MERGED = "-merged"


def shard_run_name(parent: str, number: int) -> str:
    """The run name of a scale-out run's shard ``number``.

    >>> shard_run_name("brave-fox", 3)
    'brave-fox-shard-0003'
    """
    return f"{parent}-shard-{number:04d}"


def merged_run_name(parent: str) -> str:
    """The name under which a scale-out run writes the merged report of its shards."""
    return f"{parent}{_MERGED}"


def whole_runs(reports: Sequence[RunReport]) -> list[RunReport]:
    """The reports of whole runs: a scale-out's shard reports are left out where its
    merged report (which holds all of their rows) is there, so no row or dollar is
    counted twice.

    >>> from pika_tasks.pipeline import RunReport
    >>> names = ["20261202T100000.000Z-fox-shard-0000", "20261202T100001.000Z-fox-merged",
    ...          "20261202T100002.000Z-owl-shard-0000", "20261202T100003.000Z-cat"]
    >>> [r.flow_run_name for r in whole_runs([RunReport(name=n, url=n) for n in names])]
    ['fox-merged', 'owl-shard-0000', 'cat']
    """
    names = [report.flow_run_name for report in reports]
    merged = {name.removesuffix(_MERGED) for name in names if name.endswith(_MERGED)}
    return [
        report
        for report in reports
        if not ((shard := _SHARD_RUN.match(report.flow_run_name)) and shard["parent"] in merged)
    ]


def shard_line(row: ManifestRow) -> str:
    """One JSON Lines row of a shard manifest: the row's final values and metadata."""
    values: dict[str, Any] = dict(row.metadata)
    values.update(
        id=row.id,
        image=row.image,
        prompt=row.prompt,
        negative_prompt=row.negative_prompt,
        resolution=row.resolution,
        duration=row.duration,
        seed=row.seed,
    )
    return json.dumps(values, ensure_ascii=False)


def write_shards(
    rows: Iterable[ManifestRow],
    folder: str,
    shard_size: int,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Write the rows as shard manifests under ``folder``, one shard in memory at a time.

    Returns:
        The shards' URLs, in order.
    """
    urls: list[str] = []
    rows = iter(rows)
    while shard := list(itertools.islice(rows, max(1, shard_size))):
        url = join(folder, f"shard-{len(urls):04d}.jsonl")
        write_text_atomic(url, "".join(shard_line(row) + "\n" for row in shard), storage_options)
        urls.append(url)
    return urls


def reports_of_runs(
    output: str, run_names: Sequence[str], storage_options: dict[str, Any] | None = None
) -> dict[str, str]:
    """The report URL of each named run found at ``output`` (a run's report ends with its name)."""
    found: dict[str, str] = {}
    wanted = {f"-{name}.jsonl": name for name in run_names}
    for url in report_urls(output, storage_options):
        for suffix, name in wanted.items():
            if url.endswith(suffix):
                found[name] = url
    return found


def renumber(outcomes: Iterable[RowOutcome], row_numbers: dict[str, int]) -> list[RowOutcome]:
    """Give outcomes of shard rows their row numbers in the original manifest, in their
    errors too (``row 1, field 'image': ...`` names the shard's row).

    >>> line = RowOutcome(id="a", row_number=1, status="failed", error="row 1, field 'image': x")
    >>> [(o.row_number, o.error) for o in renumber([line], {"a": 7})]
    [(7, "row 7, field 'image': x")]
    """
    renumbered = []
    for outcome in outcomes:
        number = row_numbers.get(outcome.id or "", outcome.row_number)
        error = outcome.error
        own = f"row {outcome.row_number},"
        if error is not None and error.startswith(own):
            error = f"row {number}," + error.removeprefix(own)
        renumbered.append(outcome.model_copy(update={"row_number": number, "error": error}))
    return renumbered
