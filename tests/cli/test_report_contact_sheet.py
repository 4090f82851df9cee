"""``pika-tasks report OUTPUT --contact-sheet sheet.jpg``: the same picture as the run's
summary artifact, from the run's report and the videos in OUTPUT, after the run is over."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from support import point_at, run_batch, write_manifest
from typer.testing import CliRunner

from pika_tasks.cli import EXIT_OK, EXIT_USAGE, app
from pika_tasks.contact_sheet import sheet_labels

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(240)]

SHEET = re.compile(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)")


async def summary_sheet(flow_run_id: Any) -> bytes:
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    summary = next(a for a in found if a.type == "markdown")
    match = SHEET.search(str(summary.data))
    assert match, "the summary has no contact sheet"
    return base64.b64decode(match.group(1))


def report(*args: str) -> Any:
    return CliRunner().invoke(app, ["report", *args])


async def test_report_writes_the_runs_contact_sheet(
    make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    point_at(make_emulator(runners=4, job_seconds=0.1, fps=4), monkeypatch)
    manifest = write_manifest(
        tmp_path, ["a,images/0.png,zoom in", "b,images/1.png,pan", "c,images/2.png,orbit"]
    )
    out = tmp_path / "out"
    state, _ = await run_batch(str(manifest), str(out))
    shown = await summary_sheet(state.state_details.flow_run_id)

    sheet = tmp_path / "sheet.jpg"
    done = report(str(out), "--contact-sheet", str(sheet))
    assert done.exit_code == EXIT_OK, done.output
    assert sheet.read_bytes() == shown  # the very picture the summary showed
    assert Image.open(sheet).format == "JPEG"

    # --json keeps stdout for JSON; a video deleted since is left off, with a warning.
    (out / "b.mp4").unlink()
    partial = tmp_path / "partial.jpg"
    as_json = report(str(out), "--json", "--contact-sheet", str(partial))
    assert as_json.exit_code == EXIT_OK, as_json.output
    assert json.loads(as_json.stdout)["runs"][-1]["succeeded"] == 3
    assert "row 2 left off the contact sheet" in as_json.stderr
    assert sheet_labels(partial.read_bytes()) == ["1 · a", "3 · c"]
    assert Image.open(io.BytesIO(partial.read_bytes())).height < Image.open(sheet).height

    # A latest run that wrote no video has no sheet to make: a usage error, no file.
    _, refetched = await run_batch(str(manifest), str(out))  # b's video fetched again
    _, idle = await run_batch(str(manifest), str(out))
    assert (refetched.succeeded, idle.skipped) == (1, 3)
    nothing = tmp_path / "nothing.jpg"
    refused = report(str(out), "--contact-sheet", str(nothing))
    assert refused.exit_code == EXIT_USAGE and not nothing.exists()
    assert "wrote no video" in refused.stderr
    never = report(str(tmp_path / "never-ran"), "--contact-sheet", str(nothing))
    assert never.exit_code == EXIT_USAGE and not nothing.exists()
