"""Shards without Prefect: the rows split in order into shard manifests that read back as the
same rows, the shards' reports found by run name, and row numbers given back."""

from __future__ import annotations

import json
import uuid

import fsspec

from pika_tasks.manifest import ManifestRow, read_manifest
from pika_tasks.pipeline import ReportWriter, RowOutcome
from pika_tasks.shards import renumber, reports_of_runs, shard_line, write_shards


def rows(count: int) -> list[ManifestRow]:
    return [
        ManifestRow(row_number=n, id=f"r{n}", image=f"/in/{n}.png", prompt=f"zoom {n}")
        for n in range(1, count + 1)
    ]


def test_rows_are_split_in_order_and_read_back_the_same() -> None:
    folder = f"memory://shards-{uuid.uuid4().hex[:8]}"
    urls = write_shards(iter(rows(5)), folder, 2)
    assert [url.rsplit("/", 1)[1] for url in urls] == [
        "shard-0000.jsonl",
        "shard-0001.jsonl",
        "shard-0002.jsonl",
    ]
    back = [[row.id for row in read_manifest(url).rows] for url in urls]
    assert back == [["r1", "r2"], ["r3", "r4"], ["r5"]]
    assert read_manifest(urls[1]).rows[0].prompt == "zoom 3"
    fsspec.filesystem("memory").rm(folder, recursive=True)


def test_no_rows_make_no_shards_and_a_size_below_one_means_one() -> None:
    folder = f"memory://shards-{uuid.uuid4().hex[:8]}"
    assert write_shards([], folder, 10) == []
    assert len(write_shards(rows(3), folder, 0)) == 3
    fsspec.filesystem("memory").rm(folder, recursive=True)


def test_a_shard_line_carries_final_values_over_metadata() -> None:
    row = ManifestRow(
        row_number=4,
        id="a",
        image="s3://bucket/in/a.png",
        prompt="slow zoom",
        resolution="1080p",
        metadata={"note": "kept", "prompt": "a column named like a field"},
    )
    line = json.loads(shard_line(row))
    assert line["note"] == "kept"
    assert (line["prompt"], line["resolution"], line["duration"]) == ("slow zoom", "1080p", 5)
    assert line["image"] == "s3://bucket/in/a.png" and "row_number" not in line


def test_reports_are_found_by_run_name_and_rows_get_their_numbers_back() -> None:
    out = f"memory://shard-reports-{uuid.uuid4().hex[:8]}/out"
    for name in ("shard-a", "shard-b"):
        with ReportWriter(out, name) as report:
            report.add(RowOutcome(id="x", row_number=1, status="succeeded"))
            report.close()
    found = reports_of_runs(out, ["shard-b", "shard-c"])
    assert list(found) == ["shard-b"] and found["shard-b"].endswith("-shard-b.jsonl")

    outcomes = [
        RowOutcome(id="r1", row_number=1, status="succeeded"),
        RowOutcome(id="r2", row_number=2, status="failed"),
    ]
    renumbered = renumber(outcomes, {"r1": 41, "r2": 57})
    assert [(o.id, o.row_number, o.status) for o in renumbered] == [
        ("r1", 41, "succeeded"),
        ("r2", 57, "failed"),
    ]
    assert renumber(outcomes, {})[1].row_number == 2  # an unknown id keeps its number
    fsspec.filesystem("memory").rm(out.rsplit("/", 1)[0], recursive=True)
