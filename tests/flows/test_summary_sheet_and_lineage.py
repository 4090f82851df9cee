"""What a batch run leaves in Prefect besides its rows, read back from the test API server:
a keyed summary with a contact sheet, keyed table and progress artifacts that a second run
of the same output shares, and one asset materialization event per video written."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.events.schemas.events import ReceivedEvent
from support import run_batch, write_manifest

from pika_tasks.contact_sheet import MAX_SHEET_BYTES, THUMB_SIZE, sheet_labels
from pika_tasks.keys import artifact_key, asset_key

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(240)]

SHEET = re.compile(r"!\[contact sheet\]\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)")


async def run_artifacts(flow_run_id: Any) -> dict[str, Any]:
    """The run's artifacts by type."""
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.type: artifact for artifact in found}


async def asset_events(flow_run_id: Any, count: int) -> list[ReceivedEvent]:
    """The run's ``prefect.asset.*`` events, once ``count`` are stored (bounded wait)."""
    wanted = EventFilter(
        event=EventNameFilter(prefix=["prefect.asset."]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    deadline = time.monotonic() + 45
    async with get_client() as client:
        while True:
            page = await client.read_events(wanted, limit=50)
            if len(page.events) >= count or time.monotonic() > deadline:
                return page.events
            await asyncio.sleep(0.2)  # the server stores events in batches


async def test_summary_keys_and_asset_events(queue: Any, tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path,
        [
            "c,images/2.png,orbit",
            "a,images/0.png,zoom in",
            "gone,images/missing.png,pan",  # fails: no video, no line on the sheet
            "b,images/1.png,pan left",
        ],
    )
    out = tmp_path / "out"
    state, result = await run_batch(str(manifest), str(out))
    assert result.succeeded == 3
    run_id = state.state_details.flow_run_id
    artifacts = await run_artifacts(run_id)

    # History per pipeline: every artifact is keyed by the output.
    assert artifacts["markdown"].key == artifact_key("summary", str(out))
    assert artifacts["table"].key == artifact_key("rows", str(out))
    assert artifacts["progress"].key == artifact_key("progress", str(out))

    # The contact sheet: an ordinary markdown image, one line per video, in row order.
    found = SHEET.search(str(artifacts["markdown"].data))
    assert found, "the summary has no contact sheet"
    jpeg = base64.b64decode(found.group(1))
    assert len(jpeg) <= MAX_SHEET_BYTES
    picture = Image.open(io.BytesIO(jpeg))
    assert picture.format == "JPEG"
    assert picture.size == (3 * THUMB_SIZE[0] + 16, 3 * (18 + THUMB_SIZE[1] + 4) + 4)
    assert sheet_labels(jpeg) == ["1 · c", "2 · a", "4 · b"]

    # Lineage: one materialization per video written, the manifest referenced once.
    events = await asset_events(run_id, count=4)
    materialized = [e for e in events if e.event == "prefect.asset.materialization.succeeded"]
    referenced = [e for e in events if e.event == "prefect.asset.referenced"]
    assert len(materialized) == 3 and len(referenced) == 1
    assert referenced[0].resource.id == asset_key(str(manifest))
    by_key = {event.resource.id: event for event in materialized}
    assert set(by_key) == {asset_key(str(out / f"{row}.mp4")) for row in "abc"}
    for row, image in (("a", 0), ("b", 1), ("c", 2)):
        event = by_key[f"file://{out / f'{row}.mp4'}"]
        video = (out / f"{row}.mp4").read_bytes()
        assert event.resource.name == row
        assert event.payload["size"] == len(video)
        assert event.payload["sha256"] == hashlib.sha256(video).hexdigest()
        assert event.payload["cost_usd"] == 0.2
        roles = {related.id: related.role for related in event.related}
        assert roles[f"file://{manifest}"] == "asset"
        assert roles[f"file://{tmp_path / 'images' / f'{image}.png'}"] == "asset"
        assert roles["pika-tasks"] == "asset-materialized-by"
        assert roles[f"prefect.flow-run.{run_id}"] == "flow-run"

    # A second run of the same output shares the keys; it wrote no video, so no sheet.
    again, second = await run_batch(str(manifest), str(out), fail_on_partial=False)
    assert second.skipped == 3
    later = await run_artifacts(again.state_details.flow_run_id)
    assert {kind: a.key for kind, a in later.items()} == {
        kind: a.key for kind, a in artifacts.items()
    }
    assert "contact sheet" not in str(later["markdown"].data)
    async with get_client() as client:
        history = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key("summary", str(out))])
            )
        )
    assert {a.flow_run_id for a in history} == {run_id, again.state_details.flow_run_id}
    assert await asset_events(again.state_details.flow_run_id, count=0) == []

    # Another output: other keys.
    other, _ = await run_batch(str(manifest), str(tmp_path / "other"), fail_on_partial=False)
    keys = {a.key for a in (await run_artifacts(other.state_details.flow_run_id)).values()}
    assert keys.isdisjoint({a.key for a in artifacts.values()})
