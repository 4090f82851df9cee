"""Planning: the cheap first pass prices only what is certain to be paid; the planner reads
each image once and keeps its bytes for the submit."""

from __future__ import annotations

import uuid

import fsspec
from pipeline_support import row
from support import CountingMemoryFileSystem, png_bytes

from pika_tasks.images import ImageLimits
from pika_tasks.manifest import ManifestRow, RowError
from pika_tasks.pipeline import Action, Planner, RowOutcome, RowPlan, row_fingerprint, scan_manifest
from pika_tasks.pricing import PriceTable
from pika_tasks.records import OutputLocation, RowRecord


def test_the_first_pass_prices_rows_without_a_record_and_counts_the_rest() -> None:
    items: list[ManifestRow | RowError] = [
        row(1),
        ManifestRow(row_number=2, id="r2", image="/a.png", prompt="p", resolution="1080p"),
        RowError(row_number=3, field="seed", reason="is not a number"),
        row(4),
    ]
    scan = scan_manifest(items, recorded_ids={"r4"}, prices=PriceTable())
    assert (scan.rows, scan.invalid, scan.new) == (4, 1, 2)
    assert scan.new_usd == 0.65  # 0.20 at 720p + 0.45 at 1080p


async def test_the_planner_reads_an_image_once_and_decides_from_the_record() -> None:
    root = f"countmem://plan-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("countmem")
    fs.pipe(f"{root}/in/a.png", png_bytes())
    out = OutputLocation(f"{root}/out")
    planner = Planner(out, limits=ImageLimits(allow_private_addresses=True))
    item = row(1, image=f"{root}/in/a.png")

    first = await planner.plan(item)
    assert isinstance(first, RowPlan) and first.action is Action.SUBMIT
    assert first.check._data == png_bytes(), "the bytes read are kept for the submit"
    path = f"/{root.removeprefix('countmem://')}/in/a.png"
    assert CountingMemoryFileSystem.reads[path] == 1

    fingerprint = row_fingerprint(item, first.check.sha256, planner.endpoint_id)
    assert first.fingerprint == fingerprint
    out.save(RowRecord(id="r1", state="submitting", fingerprint=fingerprint))
    again = await planner.plan(item)
    assert isinstance(again, RowPlan) and again.action is Action.UNKNOWN


async def test_a_missing_image_fails_its_row_naming_the_field() -> None:
    planner = Planner(None)
    failed = await planner.plan(row(7, image="/no/such/picture.png"))
    assert isinstance(failed, RowOutcome) and failed.status == "failed"
    assert failed.error == "row 7, field 'image': /no/such/picture.png: not found"
