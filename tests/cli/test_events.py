"""Prefect events of finished rows, read back from the test API server, and the automation
documented in docs/cli.md: accepted by the server and matching exactly the failure events."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.events.schemas.events import ReceivedEvent
from pydantic import SecretStr
from support import point_at, wait_until_async, write_manifest

from pika_tasks.events import describe_row
from pika_tasks.flows import image_to_video_batch
from pika_tasks.pipeline import RowOutcome
from pika_tasks.progress import BatchProgress

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(120)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def documented_automation() -> dict[str, Any]:
    """The example automation of docs/cli.md, as ``prefect automation create`` reads it."""
    found = re.search(r"```yaml\n(name: pika-video-failed\n.*?)```", DOCS.read_text(), re.S)
    assert found, "docs/cli.md has no pika-video-failed automation"
    loaded: dict[str, Any] = yaml.safe_load(found.group(1))
    return loaded


async def read_row_events(flow_run_id: str, count: int) -> list[ReceivedEvent]:
    """The run's ``pika.video.*`` events, once ``count`` of them are stored."""
    wanted = EventFilter(
        event=EventNameFilter(prefix=["pika.video."]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    async with get_client() as client:

        async def stored() -> list[ReceivedEvent]:
            events = (await client.read_events(wanted, limit=50)).events
            return events if len(events) >= count else []

        # The server stores events in batches.
        return await wait_until_async(stored, f"{count} row events", 45, interval=0.2)


async def test_rows_emit_events_and_report_progress(
    make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.1, fps=4)
    point_at(emu, monkeypatch)
    manifest = write_manifest(tmp_path, ["ok,images/0.png,zoom in", "bad,images/missing.png,pan"])
    out = tmp_path / "out"
    seen: list[BatchProgress] = []

    state = await image_to_video_batch(
        str(manifest), str(out), on_progress=seen.append, return_state=True
    )
    flow_run_id = str(state.state_details.flow_run_id)

    events = await read_row_events(flow_run_id, count=2)
    assert sorted(event.event for event in events) == ["pika.video.completed", "pika.video.failed"]
    completed = next(event for event in events if event.event == "pika.video.completed")
    failed = next(event for event in events if event.event == "pika.video.failed")

    assert completed.resource.id == "pika.video.ok"
    assert completed.resource["pika.output"] == str(out / "ok.mp4")
    assert completed.resource["pika.row-number"] == "1"
    record = json.loads((out / "ok.json").read_text())
    assert completed.payload["request_id"] == record["request"]["request_id"]
    assert completed.payload["cost_usd"] == 0.2
    assert completed.payload["seconds"] > 0 and completed.payload["error"] is None
    assert failed.resource.id == "pika.video.bad"
    assert failed.resource["pika.row-number"] == "2"
    assert "missing.png" in failed.payload["error"] and failed.payload["cost_usd"] == 0.0
    for event in (completed, failed):
        roles = {related.id: related.role for related in event.related}
        assert roles[f"prefect.flow-run.{flow_run_id}"] == "flow-run"
        assert "flow" in roles.values()  # added by Prefect from the run's context

    # The rows start before they are counted: the total arrives once the first pass ends.
    assert seen[0] == BatchProgress(total=None)
    last = seen[-1]
    assert (last.total, last.done, last.succeeded, last.failed, last.remaining) == (2, 2, 1, 1, 0)
    assert last.spend_usd == 0.2
    counted = next(n for n, p in enumerate(seen) if p.total is not None)
    assert [p.total for p in seen] == [None] * counted + [2] * (len(seen) - counted)
    # Each finished row is reported once; the other reports are rows moving at fal.
    assert sorted(p.row.id for p in seen if p.row and p.row.id) == ["bad", "ok"]

    # The documented automation fires on the failure and only on it.
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.events.schemas.events import ReceivedEvent as ServerEvent

    trigger = EventTrigger.model_validate(documented_automation()["trigger"])
    assert trigger.covers(ServerEvent.model_validate(failed.model_dump(mode="json")))
    assert not trigger.covers(ServerEvent.model_validate(completed.model_dump(mode="json")))


@pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")
async def test_documented_automation_is_accepted_by_the_server() -> None:
    from prefect.automations import AutomationCore
    from prefect.blocks.notifications import SlackWebhook

    block_id = await SlackWebhook(url=SecretStr("https://hooks.slack.com/services/T0/B0/X")).asave(
        "pika-alerts-docs-test", overwrite=True
    )
    document = documented_automation()
    document["actions"][0]["block_document_id"] = str(block_id)
    async with get_client() as client:
        automation_id = await client.create_automation(AutomationCore.model_validate(document))
        try:
            stored = await client.read_automation(automation_id)
            assert stored is not None
            assert stored.name == "pika-video-failed"
            assert stored.trigger.expect == {"pika.video.failed"}  # type: ignore[union-attr]
            assert stored.actions[0].type == "send-notification"
        finally:
            await client.delete_automation(automation_id)


def test_skipped_rows_emit_nothing() -> None:
    skipped = RowOutcome(id="a", row_number=1, status="skipped", output="/out/a.mp4")
    assert describe_row(skipped, output_url="/out/a.mp4") is None
    invalid = RowOutcome(id=None, row_number=7, status="failed", error="row 7, field 'id': ...")
    event = describe_row(invalid, output_url=None, flow_run_id="f")
    assert event is not None and event.resource["prefect.resource.id"] == "pika.video.row-7"
