"""The fal key never shows: not in a log line, an artifact, an event, a run report, a
sidecar, an exception (message, repr, attributes or chained causes), a ``repr``, nor
the output of ``pika-tasks run``, on success and on every failure path.

Each test uses a recognisable fake key (:data:`~reliability_support.KEY`), makes
sure it was really sent (the emulator requires it, or refuses it with a 401), then
gathers every text the run left behind and searches it.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from pydantic import SecretStr
from reliability_support import (
    OTHER_KEY,
    echo_queue,
    silent_server,
)
from secret_trail import Trail, flow_run_id_of, prefect_trail, texts_of
from support import (
    KEY,
    free_port,
    noise_png,
    pika_command,
    png_bytes,
    process_env,
    report_lines,
    run_batch,
    settings_for,
    write_manifest,
)

from pika_tasks import (
    AuthenticationError,
    BatchLimits,
    FalCredentials,
    FalValidationError,
    JobFailedError,
    MissingKeyError,
    PikaClient,
    RequestOptions,
    ResultExpiredError,
    SubmitOutcomeUnknownError,
    TransportError,
    WaitTimeoutError,
    fetch_video,
    submit_image_to_video,
    wait_for_completion,
)
from pika_tasks.errors import PikaError
from pika_tasks.settings import PikaSettings

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(150)]


def image_uri() -> str:
    """A small PNG as a data URI."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


def credentials_for(emu: Any, key: str = KEY) -> FalCredentials:
    """A credentials block pointing at ``emu``."""
    return FalCredentials(key=SecretStr(key), queue_url=emu.url, storage_url=emu.url)


def assert_no_leak(trail: Trail) -> None:
    """The key shows nowhere in ``trail``; print what was searched."""
    leaks = trail.leaks()
    print(f"\nsearched for the key: {trail.counts}; found in: {leaks or 'nothing'}")
    assert not leaks, f"the key shows in {sorted(set(leaks))}"


async def test_representations_never_show_the_key() -> None:
    """repr, str and dumps of settings, credentials and client hide the key."""
    settings = PikaSettings(fal_key=SecretStr(KEY), queue_url="http://127.0.0.1:9")
    credentials = FalCredentials(key=SecretStr(KEY), queue_url="http://127.0.0.1:9")
    client = PikaClient(settings)
    trail = Trail()
    for where, text in [
        ("settings", repr(settings)),
        ("settings", str(settings)),
        ("settings", settings.model_dump_json()),
        ("settings", str(settings.model_dump())),
        ("credentials", repr(credentials)),
        ("credentials", str(credentials)),
        ("credentials", credentials.model_dump_json()),
        ("credentials", str(credentials.model_dump(mode="json"))),
        ("credentials", repr(credentials.get_settings())),
        ("client", repr(client)),
        ("client", str(vars(client))),
        *(("client", text) for text in texts_of(vars(client).values())),
    ]:
        trail.add(f"repr:{where}", text)
    assert_no_leak(trail)
    # Yet the key is there for the one place that needs it.
    assert client.settings.require_key().get_secret_value() == KEY
    await client.aclose()
    with pytest.raises(MissingKeyError) as missing:
        PikaClient(PikaSettings(fal_key=SecretStr(""), queue_url="http://127.0.0.1:9"))
    assert "FAL_KEY" in str(missing.value)


async def _expect(trail: Trail, error_type: type[BaseException], call: Any) -> BaseException:
    """Await ``call``, which must raise ``error_type``; add the error to ``trail``."""
    with pytest.raises(error_type) as info:
        await call
    trail.add_error(error_type.__name__, info.value)
    return info.value


async def test_client_success_and_failure_paths_never_show_the_key(
    make_emulator: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Every client call, succeeding or failing, keeps the key out of errors and logs."""
    good = make_emulator(require_key=KEY, job_seconds=0.1, fps=4)
    failing = make_emulator(require_key=KEY, job_seconds=0.1, fps=4, job_failure_rate=1.0)
    slow = make_emulator(require_key=KEY, job_seconds=30.0, fps=4)
    refusing = make_emulator(require_key=OTHER_KEY, job_seconds=0.1, fps=4)
    trail = Trail()
    args = {"image_url": image_uri(), "prompt": "slow zoom in"}

    def client_for(emu: Any, **overrides: Any) -> PikaClient:
        return PikaClient(settings_for(emu, **{"max_retries": 1, **overrides}))

    # Success: upload, submit, wait, result, download, cancel of a finished job.
    async with client_for(good) as client:
        uploaded = await client.upload(noise_png(256), content_type="image/png")
        handle = await client.submit({**args, "image_url": uploaded})
        await client.wait(handle, timeout=30)
        output = await client.result(handle)
        chunks: list[bytes] = []
        await client.download(output.video.url, chunks.append)
        assert (await client.cancel(handle)).status == "ALREADY_COMPLETED"
        assert b"".join(chunks)[4:8] == b"ftyp"
        # Failures against the same queue: 422 from fal, then an expired result and video.
        await _expect(
            trail, FalValidationError, client.submit({**args, "duration": 7}, validate=False)
        )
        await _expect(
            trail,
            FalValidationError,
            client.submit(args, options=RequestOptions(webhook_url="ftp://nowhere")),
        )
        assert good.expire(handle.request_id) == [handle.request_id]
        await _expect(trail, ResultExpiredError, client.result(handle))
        await _expect(trail, ResultExpiredError, client.download(output.video.url, chunks.append))
    assert good.stats()["rejected"].get("401", 0) == 0  # the key was sent, and accepted

    async with client_for(failing) as client:
        failed = await client.submit(args)
        await _expect(trail, JobFailedError, client.wait(failed, timeout=30))
        await _expect(trail, JobFailedError, client.result(failed))

    async with client_for(slow) as client:
        waiting = await client.submit(args)
        await _expect(trail, WaitTimeoutError, client.wait(waiting, timeout=0.3))
        await client.cancel(waiting)

    # 401 on every route: the queue wants another key.
    async with PikaClient(settings_for(refusing, OTHER_KEY)) as owner:
        theirs = await owner.submit(args)
    async with client_for(refusing) as client:
        await _expect(trail, AuthenticationError, client.submit(args))
        await _expect(trail, AuthenticationError, client.status(theirs))
        await _expect(trail, AuthenticationError, client.wait(theirs, timeout=10))
        await _expect(trail, AuthenticationError, client.result(theirs))
        await _expect(trail, AuthenticationError, client.cancel(theirs))
        await _expect(trail, AuthenticationError, client.upload(b"x", content_type="image/png"))
    assert refusing.stats()["rejected"]["401"] >= 6

    # Timeouts and refusals of the network.
    async with (
        silent_server() as silent,
        client_for(silent, read_timeout=0.3, connect_timeout=0.3) as client,
    ):
        hanging = theirs.model_copy(update={"status_url": f"{silent.url}/requests/x/status"})
        await _expect(trail, SubmitOutcomeUnknownError, client.submit(args))
        await _expect(trail, TransportError, client.status(hanging))
    nothing_there = f"http://127.0.0.1:{free_port()}"
    async with PikaClient(settings_for(nothing_there, max_retries=0)) as client:
        await _expect(trail, TransportError, client.submit(args))

    trail.add_logs(debug_logs)
    assert trail.counts["error"] >= 16 * 4 and trail.counts["log"] >= 20
    assert_no_leak(trail)


async def test_tasks_in_a_flow_never_show_the_key(
    make_emulator: Any, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    """The three tasks in a flow, with blocks as parameters: nothing in the API shows the key."""
    good = make_emulator(require_key=KEY, job_seconds=0.1, fps=4)
    failing = make_emulator(require_key=KEY, job_seconds=0.1, fps=4, job_failure_rate=1.0)
    slow = make_emulator(require_key=KEY, job_seconds=30.0, fps=4)
    refusing = make_emulator(require_key=OTHER_KEY, job_seconds=0.1, fps=4)
    errors: list[BaseException] = []
    args = {"image_url": image_uri(), "prompt": "pan left"}

    @flow(name="secrets-through-tasks")
    async def videos(
        good: FalCredentials,
        failing: FalCredentials,
        slow: FalCredentials,
        refused: FalCredentials,
        out: str,
    ) -> str:
        handle = await submit_image_to_video(args, credentials=good, label="ok")
        await wait_for_completion(handle, credentials=good, label="ok")
        video = await fetch_video(handle, f"{out}/ok.mp4", credentials=good, label="ok")

        async def attempt(call: Any) -> None:
            try:
                await call
            except PikaError as error:
                errors.append(error)

        webhook = RequestOptions(webhook_url="ftp://nowhere")  # fal answers 422
        await attempt(submit_image_to_video(args, options=webhook, credentials=good))
        doomed = await submit_image_to_video(args, credentials=failing)
        await attempt(wait_for_completion(doomed, credentials=failing))
        stuck = await submit_image_to_video(args, credentials=slow)
        await attempt(wait_for_completion(stuck, timeout=0.3, credentials=slow))
        await attempt(submit_image_to_video(args, credentials=refused))
        return video.path

    state = await videos(
        credentials_for(good),
        credentials_for(failing),
        credentials_for(slow),
        credentials_for(refusing),
        str(tmp_path / "out"),
        return_state=True,
    )
    assert state.is_completed(), state.message
    assert [type(error) for error in errors] == [
        FalValidationError,
        JobFailedError,
        WaitTimeoutError,
        AuthenticationError,
    ]
    assert slow.stats()["cancellations"] == 1  # the timed-out wait cancelled its job
    trail = Trail()
    for error in errors:
        trail.add_error(type(error).__name__, error)
    trail.add_logs(debug_logs)
    trail.add_files(tmp_path / "out")
    await prefect_trail(flow_run_id_of(state), trail, min_task_runs=8)
    assert trail.counts["api-log"] >= 8 and trail.counts["task-run"] >= 8
    assert_no_leak(trail)


async def test_batch_flow_runs_never_show_the_key(
    make_emulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    """Batch runs with failed jobs, a refused key and timeouts: outputs and the API are clean."""
    monkeypatch.delenv("FAL_KEY", raising=False)  # the block's key is the only one
    monkeypatch.setenv("PIKA_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("PIKA_MAX_POLL_INTERVAL", "0.2")
    good = make_emulator(require_key=KEY, job_seconds=0.1, fps=4, job_failure_rate=0.5, seed=3)
    refusing = make_emulator(require_key=OTHER_KEY, job_seconds=0.1, fps=4)
    slow = make_emulator(require_key=KEY, job_seconds=30.0, fps=4)
    rows = [f"r{n},images/{n}.png,zoom in {n}" for n in range(3)]
    manifest = write_manifest(tmp_path, [*rows, "big,images/big.png,orbit", "gone,images/x.png,p"])
    (tmp_path / "images" / "big.png").write_bytes(noise_png(830))  # > 2 MB: uploaded
    trail = Trail()

    runs: list[tuple[str, Any, dict[str, Any]]] = [
        ("mixed", good, {}),
        ("refused", refusing, {}),
        ("timed-out", slow, {"limits": BatchLimits(wait_timeout=0.5)}),
    ]
    for name, emu, extra in runs:
        out = tmp_path / f"out-{name}"
        state, result = await run_batch(
            str(manifest), str(out), credentials=credentials_for(emu), **extra
        )
        lines = report_lines(result.report_url)
        assert len(lines) == 5 and result.failed >= 1
        trail.add_files(out)
        await prefect_trail(flow_run_id_of(state), trail, min_row_events=len(lines))
    stats = good.stats()
    assert 0 < stats["failed"] < stats["submissions"]  # failed jobs and good ones
    assert refusing.stats()["rejected"]["401"] >= 4  # every row and the upload were refused
    assert slow.stats()["cancellations"] >= 1
    trail.add_logs(debug_logs)
    assert trail.counts["artifact"] >= 9 and trail.counts["event"] >= 15
    assert_no_leak(trail)


def test_the_command_never_shows_the_key(make_emulator: Any, tmp_path: Path) -> None:
    """``pika-tasks run`` at DEBUG, succeeding and refused: its output and files are clean."""
    good = make_emulator(require_key=KEY, job_seconds=0.1, fps=4, job_failure_rate=0.5, seed=3)
    refusing = make_emulator(require_key=OTHER_KEY, job_seconds=0.1, fps=4)
    rows = [f"r{n},images/{n}.png,zoom in {n}" for n in range(3)]
    manifest = write_manifest(tmp_path, [*rows, "gone,images/x.png,p"])
    processes: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for name, emu in (("mixed", good), ("refused", refusing)):
        out = tmp_path / f"out-{name}"
        env = process_env(emu, PREFECT_LOGGING_LEVEL="DEBUG")
        command = pika_command("run", str(manifest), "--out", str(out))
        processes[name] = (
            out,
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ),
        )
    trail = Trail()
    for name, (out, process) in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, f"{name}: exit {process.returncode}\n{stderr[-3000:]}"
        assert "Report: " in stdout
        trail.add(f"stdout:{name}", stdout)
        trail.add(f"stderr:{name}", stderr)
        trail.add_files(out)
    assert "fal refused the key" in dict(trail.texts)["stdout:refused"]
    assert good.stats()["failed"] >= 1 and refusing.stats()["rejected"]["401"] >= 3
    assert_no_leak(trail)


# A key echoed back by a misbehaving server (fal does not do this; a proxy, a runner
# that logs its request or an error quoting its input could) is scrubbed wherever it
# would surface: error details, a failed job's error text and the runner's log lines.


@pytest.mark.parametrize("call", ["submit answered 422", "result answered 500"])
async def test_a_key_echoed_in_an_error_list_is_scrubbed(call: str) -> None:
    """A key quoted back in a list of errors is scrubbed from the error and its causes."""
    mode = "validation" if call.startswith("submit") else "failed-job"
    async with (
        echo_queue(mode) as queue,
        PikaClient(settings_for(queue, max_retries=0)) as client,
    ):
        trail = Trail()
        if mode == "validation":
            await _expect(
                trail,
                FalValidationError,
                client.submit({"image_url": "https://x.test/a.png", "prompt": "p"}),
            )
        else:
            handle = await client.submit({"image_url": "https://x.test/a.png", "prompt": "p"})
            await _expect(trail, JobFailedError, client.result(handle))
    assert_no_leak(trail)


async def test_a_key_echoed_in_a_failed_jobs_error_is_scrubbed() -> None:
    """A key quoted back in a failed job's error text is scrubbed from JobFailedError."""
    async with (
        echo_queue() as queue,
        PikaClient(settings_for(queue, max_retries=0)) as client,
    ):
        handle = await client.submit({"image_url": "https://x.test/a.png", "prompt": "p"})
        trail = Trail()
        await _expect(trail, JobFailedError, client.wait(handle, timeout=10))
    assert_no_leak(trail)


async def test_a_key_echoed_in_runner_logs_is_scrubbed(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    """A key quoted back in the runner's logs is scrubbed from the task's log lines."""
    async with echo_queue() as queue:
        credentials = FalCredentials(key=SecretStr(KEY), queue_url=queue.url, storage_url=queue.url)

        @flow(name="secrets-echoed-runner-logs")
        async def watch(credentials: FalCredentials) -> None:
            handle = await submit_image_to_video(
                {"image_url": "https://x.test/a.png", "prompt": "p"}, credentials=credentials
            )
            # The failed job's message is the subject of the test above.
            with contextlib.suppress(JobFailedError):
                await wait_for_completion(handle, credentials=credentials, label="echo")

        state = await watch(credentials, return_state=True)
    trail = Trail()
    trail.add_logs(debug_logs)
    await prefect_trail(flow_run_id_of(state), trail)
    runner_lines = [text for where, text in trail.texts if "runner got headers" in text]
    assert runner_lines, "the runner's log lines were logged"
    assert not [text for text in runner_lines if KEY in text], "runner log lines show the key"
