"""Splitting a manifest into shard manifests, and merging the shards' run reports.

The scale-out flow validates the whole manifest once, writes its valid rows
as JSON Lines shards (with final prompts and absolute image locations, so a
shard needs no defaults and no folder of its own), runs each shard as its own
deployment run, and merges the shards' reports into one, with the original
row numbers.

Example:
    >>> from pika_tasks.manifest import ManifestRow
    >>> from pika_tasks.shards import shard_rows, write_shards
    >>> rows = [ManifestRow(row_number=n, id=f"r{n}", image=f"/i/{n}.png", prompt="zoom in",
    ...                     negative_prompt="", resolution="720p", duration=5, seed=None,
    ...                     metadata={}) for n in range(1, 6)]
    >>> [len(shard) for shard in shard_rows(rows, 2)]
    [2, 2, 1]
    >>> write_shards(rows, "memory://shards-doc", 2)
    ['memory://shards-doc/shard-0000.jsonl', 'memory://shards-doc/shard-0001.jsonl', 'memory://shards-doc/shard-0002.jsonl']
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pika_tasks.manifest import ManifestRow
from pika_tasks.records import OutputLocation, RowOutcome
from pika_tasks.storage import join, read_text, write_text_atomic


def shard_rows(rows: Sequence[ManifestRow], shard_size: int) -> list[list[ManifestRow]]:
    """Consecutive groups of at most ``shard_size`` rows."""
    size = max(1, shard_size)
    return [list(rows[start : start + size]) for start in range(0, len(rows), size)]


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
    rows: Sequence[ManifestRow],
    folder: str,
    shard_size: int,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Write the rows as shard manifests under ``folder``; return their URLs."""
    urls = []
    for number, shard in enumerate(shard_rows(rows, shard_size)):
        url = join(folder, f"shard-{number:04d}.jsonl")
        write_text_atomic(url, "".join(shard_line(row) + "\n" for row in shard), storage_options)
        urls.append(url)
    return urls


def read_report(url: str, storage_options: dict[str, Any] | None = None) -> list[RowOutcome]:
    """The lines of one run report."""
    text = read_text(url, storage_options)
    return [RowOutcome.model_validate_json(line) for line in text.splitlines() if line.strip()]


def reports_of_runs(out: OutputLocation, run_names: Sequence[str]) -> dict[str, str]:
    """The report URL of each named run found at ``out`` (a run's report ends with its name)."""
    found: dict[str, str] = {}
    for url in out.reports():
        for name in run_names:
            if url.endswith(f"-{name}.jsonl"):
                found[name] = url
    return found


def renumber(outcomes: list[RowOutcome], row_numbers: dict[str, int]) -> list[RowOutcome]:
    """Give outcomes of shard rows their row numbers in the original manifest."""
    return [
        outcome.model_copy(
            update={"row_number": row_numbers.get(outcome.id or "", outcome.row_number)}
        )
        for outcome in outcomes
    ]
