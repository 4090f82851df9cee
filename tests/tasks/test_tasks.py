"""The three tasks against the emulator over loopback: their bodies through ``.fn`` (no Prefect
run), and what Prefect adds (retries, sync flows, run names) in flows on the test API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.logging import disable_run_logger
from prefect.utilities.timeout import timeout_async
from support import png_bytes, probe_video, settings_for, settled_task_runs

from pika_tasks import (
    FalValidationError,
    JobFailedError,
    RequestHandle,
    ServerError,
    WaitTimeoutError,
    fetch_video,
    submit_image_to_video,
    wait_for_completion,
)
from pika_tasks.storage import TEMP_MARKER

on_prefect = pytest.mark.usefixtures("prefect_harness")
"""For the tests of what Prefect does with the tasks."""


def data_uri() -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


def no_retry_delay(task: Any) -> Any:
    return task.with_options(retry_delay_seconds=0, retry_jitter_factor=None)


async def test_three_tasks_make_a_video_of_the_requested_size(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(job_seconds=0.2, fps=4)
    settings = settings_for(emu)

    with disable_run_logger():
        handle = await submit_image_to_video.fn(
            {"image_url": data_uri(), "prompt": "slow zoom in", "resolution": "1080p"},
            settings=settings,
        )
        status = await wait_for_completion.fn(handle, settings=settings)
        destination = f"{tmp_path}/{handle.request_id}.mp4"
        video = await fetch_video.fn(handle, destination, settings=settings)

    assert isinstance(handle, RequestHandle)
    assert "/fal-ai/pika/requests/" in handle.status_url
    assert status.status == "COMPLETED"
    data = Path(video.path).read_bytes()
    assert len(data) == video.size
    info = probe_video(data)
    assert (info["codec"], info["width"], info["height"]) == ("h264", 1920, 1080)
    assert info["frames"] == 5 * 4
    assert video.content_type == "video/mp4"
    assert emu.stats()["submissions"] == 1


@on_prefect
def test_tasks_work_from_a_sync_flow(emulator: Any, tmp_path: Path) -> None:
    settings = settings_for(emulator)

    @flow
    def sync_flow() -> int:
        # A sync flow runs async tasks through .submit(); .result() waits for each.
        handle = submit_image_to_video.submit(
            {"image_url": data_uri(), "prompt": "pan left"}, settings=settings
        ).result()
        wait_for_completion.submit(handle, settings=settings).result()
        video = fetch_video.submit(handle, str(tmp_path / "v.mp4"), settings=settings)
        return video.result().size

    assert sync_flow() == (tmp_path / "v.mp4").stat().st_size > 0


async def test_invalid_input_fails_before_any_request(emulator: Any) -> None:
    settings = settings_for(emulator)

    with disable_run_logger(), pytest.raises(ValueError, match="duration") as caught:
        await submit_image_to_video.fn(
            {"image_url": data_uri(), "prompt": "x", "duration": 7}, settings=settings
        )
    assert "5 or 10" in str(caught.value)
    assert emulator.stats()["submissions"] == 0


@on_prefect
async def test_submit_retries_only_what_fal_refused_to_queue(make_emulator: Any) -> None:
    # Every submit answered 503: fal did not queue anything, so retrying is safe.
    emu = make_emulator(error_rate_5xx=1.0, fault_routes={"submit"}, fps=4)
    settings = settings_for(emu, max_retries=0)
    task = no_retry_delay(submit_image_to_video).with_options(retries=2)

    @flow
    async def submit_once() -> None:
        await task({"image_url": data_uri(), "prompt": "x"}, settings=settings)

    with pytest.raises(ServerError):
        await submit_once()
    assert emu.stats()["requests"]["submit"] == 3  # the first try and two task retries


@on_prefect
async def test_job_failures_are_not_retried(make_emulator: Any) -> None:
    emu = make_emulator(job_failure_rate=1.0, job_seconds=0.1, fps=4)
    settings = settings_for(emu)
    wait = no_retry_delay(wait_for_completion).with_options(retries=3)

    @flow
    async def failing() -> None:
        handle = await submit_image_to_video(
            {"image_url": data_uri(), "prompt": "x"}, settings=settings
        )
        await wait(handle, settings=settings)

    with pytest.raises(JobFailedError):
        await failing()
    assert emu.stats()["submissions"] == 1


@pytest.mark.parametrize("cancel", [True, False], ids=["cancelled", "left-running"])
async def test_a_wait_deadline_cancels_the_remote_request_unless_told_not_to(
    cancel: bool, make_emulator: Any
) -> None:
    emu = make_emulator(job_seconds=30, fps=4)
    settings = settings_for(emu)

    with disable_run_logger():
        handle = await submit_image_to_video.fn(
            {"image_url": data_uri(), "prompt": "x"}, settings=settings
        )
        with pytest.raises(WaitTimeoutError):
            await wait_for_completion.fn(
                handle, timeout=0.3, cancel_on_timeout=cancel, settings=settings
            )
    assert emu.stats()["cancellations"] == (1 if cancel else 0)


async def test_prefects_task_timeout_still_cancels_the_remote_request(make_emulator: Any) -> None:
    """Prefect's ``timeout_seconds`` cancels a task through an anyio scope, which
    cancels again at every await: the remote cancel must still be answered, and the
    task's own client closed, before the task ends, or the job goes on to be billed."""
    emu = make_emulator(job_seconds=30, fps=4)
    settings = settings_for(emu)
    with disable_run_logger():
        handle = await submit_image_to_video.fn(
            {"image_url": data_uri(), "prompt": "x"}, settings=settings
        )
        before = asyncio.all_tasks()
        with pytest.raises(TimeoutError), timeout_async(0.3):  # what the task engine uses
            await wait_for_completion.fn(handle, settings=settings)
    left_running = [task for task in asyncio.all_tasks() - before if not task.done()]
    assert left_running == []
    assert emu.stats()["cancellations"] == 1


@on_prefect
async def test_failed_fetch_leaves_no_file_at_the_destination(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(drop_download_rate=1.0, job_seconds=0.1, fps=4)
    settings = settings_for(emu, max_retries=1)
    fetch = no_retry_delay(fetch_video).with_options(retries=1)

    @flow
    async def dropped() -> None:
        handle = await submit_image_to_video(
            {"image_url": data_uri(), "prompt": "x"}, settings=settings
        )
        await wait_for_completion(handle, settings=settings)
        await fetch(handle, str(tmp_path / "v.mp4"), settings=settings)

    with pytest.raises(Exception):  # noqa: B017 - which transport error depends on where it drops
        await dropped()
    assert list(tmp_path.iterdir()) == [], [p.name for p in tmp_path.iterdir()]
    assert not any(TEMP_MARKER in p.name for p in tmp_path.iterdir())


async def test_validation_errors_from_fal_carry_the_detail(emulator: Any) -> None:
    """A 422 from fal (here: input our model would have refused, sent raw) is not retried."""
    from pika_tasks.client import PikaClient

    settings = settings_for(emulator)
    async with PikaClient(settings) as client:
        with pytest.raises(FalValidationError) as caught:
            await client.submit(
                {"image_url": data_uri(), "prompt": "x", "resolution": "4k"}, validate=False
            )
    assert any("resolution" in str(item.get("loc")) for item in caught.value.detail)


@on_prefect
async def test_tasks_share_an_open_client_and_are_named_after_the_request(
    emulator: Any, tmp_path: Path
) -> None:
    import httpx

    from pika_tasks import PikaClient

    sent: list[str] = []

    async def note(request: httpx.Request) -> None:
        sent.append(request.url.path)

    http = httpx.AsyncClient(event_hooks={"request": [note]})
    client = PikaClient(settings_for(emulator), http=http)

    @flow
    async def shared(out: str) -> tuple[Any, str]:
        handle = await submit_image_to_video(
            {"image_url": data_uri(), "prompt": "tilt up"}, client=client
        )
        await wait_for_completion(handle, client=client)
        await fetch_video(handle, f"{out}/v.mp4", client=client)
        from prefect.runtime import flow_run

        return handle, flow_run.get_id() or ""

    try:
        handle, run_id = await shared(str(tmp_path))
        # Every request of the three tasks went through the caller's pool ...
        assert any(path.endswith("/image-to-video") for path in sent)
        assert any(path.endswith(f"/requests/{handle.request_id}") for path in sent)
        assert any("/files/" in path for path in sent)
        # ... which the tasks left open for the caller.
        assert (await client.status(handle)).status == "COMPLETED"
    finally:
        await client.aclose()
        await http.aclose()
    expected = sorted(["submit video", f"wait {handle.request_id}", f"fetch {handle.request_id}"])
    runs = await settled_task_runs(
        run_id, lambda found: sorted(run.name for run in found) == expected
    )
    assert sorted(run.name for run in runs) == expected
