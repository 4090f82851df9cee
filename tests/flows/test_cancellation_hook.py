"""The cancellation hook runs where Prefect runs it (often the worker): it must use
the run's own queue settings, which deployments give the run as job variables."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.states import Cancelled
from support import png_bytes, point_at, report_lines

from pika_tasks.client import PikaClient
from pika_tasks.flows import image_to_video_batch
from pika_tasks.flows._cancellation import cancel_remote_requests, settings_for_run
from pika_tasks.models import ImageToVideoInput, RequestHandle
from pika_tasks.records import OutputLocation, RowRecord


def a_run(job_variables: dict[str, object]) -> FlowRun:
    return FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="r", job_variables=job_variables)


def test_the_runs_job_variables_override_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "worker-key")
    monkeypatch.setenv("PIKA_QUEUE_URL", "https://queue.fal.run")
    monkeypatch.setenv("PIKA_READ_TIMEOUT", "12")
    run = a_run(
        {"env": {"PIKA_QUEUE_URL": "http://127.0.0.1:8000", "PIKA_MAX_RETRIES": "1", "X": None}}
    )
    settings = settings_for_run(run)
    assert settings.queue_url == "http://127.0.0.1:8000"
    assert settings.max_retries == 1
    assert settings.read_timeout == 12  # not in the run's env: this process's value
    assert settings.fal_key is not None and settings.fal_key.get_secret_value() == "worker-key"


def test_a_run_without_job_variables_uses_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "worker-key")
    monkeypatch.setenv("PIKA_QUEUE_URL", "http://queue.example")
    assert settings_for_run(a_run({})).queue_url == "http://queue.example"


@pytest.mark.timeout(60)
async def test_a_job_fal_finished_stays_to_fetch_and_another_runs_record_is_left_alone(
    make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A cancelled run's hook cancels its unfinished requests, but:

    - a job fal already finished (the cancel answers ALREADY_COMPLETED) is paid for: its
      record stays ``submitted``, so the next run fetches its video instead of paying again;
    - a job an earlier cancel already stopped (ALREADY_COMPLETED too, but with an error:
      no video) is recorded cancelled, to be submitted again;
    - a row another run took over meanwhile keeps that run's record;
    - run twice (Prefect may), the hook cancels nothing more and reports the same.
    """
    emu = make_emulator(runners=1, job_seconds=0.1, fps=4)
    point_at(emu, monkeypatch)
    run = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4(), name="ending", parameters={})
    run.parameters = {"output": str(tmp_path / "out")}
    out = OutputLocation(str(tmp_path / "out"))
    arguments = ImageToVideoInput(
        image_url="data:image/png;base64," + base64.b64encode(png_bytes()).decode(),
        prompt="zoom in",
    )
    async with PikaClient() as client:
        done = await client.submit(arguments)
        await client.wait(done)
        emu.pause()  # the rest stay queued
        queued, taken = await client.submit(arguments), await client.submit(arguments)
        cut_short = await client.submit(arguments)
        # Cancelled by a hook that died before it could record it.
        assert (await client.cancel(cut_short)).status == "CANCELLATION_REQUESTED"

    def submitted(row_id: str, handle: RequestHandle, run_id: str) -> RowRecord:
        return RowRecord(
            id=row_id,
            state="submitted",
            fingerprint="f",
            request=handle,
            flow_run_id=run_id,
            row={"row_number": 1},
        )

    rows = {"done": done, "queued": queued, "taken": taken, "cut_short": cut_short}
    for row_id, handle in rows.items():
        out.save(submitted(row_id, handle, str(run.id)))

    # Another run takes "taken" over while the hook is at work: its record is the one kept.
    other_run = submitted("taken", taken, "another-run").model_copy(update={"state": "succeeded"})
    real_cancel = PikaClient.cancel

    async def cancel_while_another_run_takes_over(self: PikaClient, handle: RequestHandle) -> Any:
        if handle.request_id == queued.request_id:
            out.save(other_run)
        return await real_cancel(self, handle)

    monkeypatch.setattr(PikaClient, "cancel", cancel_while_another_run_takes_over)

    for _ in range(2):
        await cancel_remote_requests(image_to_video_batch, run, Cancelled())

        states = {row_id: out.load(row_id) for row_id in rows}
        assert {k: r.state for k, r in states.items() if r} == {
            "done": "submitted",
            "queued": "cancelled",
            "taken": "succeeded",
            "cut_short": "cancelled",
        }
        assert states["taken"] is not None and states["taken"].flow_run_id == "another-run"
        # "cut_short" before the hook, then "queued": "taken" is no longer this run's.
        assert emu.stats()["cancellations"] == 2
        by_id = {line["id"]: line for line in report_lines(tmp_path / "out")}
        assert {k: line["status"] for k, line in by_id.items()} == {
            "done": "cancelled",
            "queued": "cancelled",
            "cut_short": "cancelled",
        }
        assert "fetches its video" in by_id["done"]["error"]
        assert by_id["cut_short"]["error"] == "flow run cancelled"
