"""The three Prefect tasks of a fal queue job: submit, wait for completion, fetch.

Each task is a thin wrapper over :class:`~pika_tasks.client.PikaClient` that
adds what Prefect is for: tags that tag and global concurrency limits can
bound, readable run names and logs in the run's logger.  All three are async
and can be called from sync flows too.

Retries: the client retries transient failures itself; the tasks do not
retry on top of it (``retries=0``, see :mod:`pika_tasks.retry_policy`).  A
task given retries (``task.with_options(retries=N)``) retries only what
:func:`~pika_tasks.errors.is_transient` accepts.

Example:
    Compose them in your own flow (here against the bundled emulator, see
    ``pika-tasks emulator``)::

        from prefect import flow
        from pika_tasks import fetch_video, submit_image_to_video, wait_for_completion

        @flow
        async def one_video(image_url: str, prompt: str, out: str) -> str:
            handle = await submit_image_to_video({"image_url": image_url, "prompt": prompt})
            await wait_for_completion(handle)
            video = await fetch_video(handle, f"{out}/{handle.request_id}.mp4")
            return video.path
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task, exponential_backoff

from pika_tasks.client import PikaClient
from pika_tasks.credentials import FalCredentials
from pika_tasks.errors import WaitTimeoutError, is_transient
from pika_tasks.models import (
    DownloadedFile,
    ImageToVideoInput,
    ImageToVideoOutput,
    QueueStatus,
    RequestHandle,
    RequestOptions,
)
from pika_tasks.pipeline import copy_video
from pika_tasks.retry_policy import TASK_RETRIES
from pika_tasks.settings import PikaSettings

__all__ = [
    "FAL_TAG",
    "fetch_video",
    "open_client",
    "retry_on_transient",
    "submit_image_to_video",
    "wait_for_completion",
]

#: Tags on every task, so ``prefect concurrency-limit create fal N`` bounds them all.
FAL_TAG = "fal"


async def retry_on_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """A ``retry_condition_fn``: retry only errors that :func:`is_transient` accepts.

    Validation errors, authentication errors, failed jobs and a submit whose
    outcome is unknown are never retried: retrying them fails again or pays twice.
    Async, so it works from both of Prefect's task engines (the sync engine
    awaits it; in the async one ``State.result`` must be awaited).
    """
    try:
        await state.aresult()
    except Exception as error:
        return is_transient(error)
    return False


def open_client(
    credentials: FalCredentials | None = None,
    settings: PikaSettings | None = None,
    *,
    follow_in_thread: bool = False,
) -> PikaClient:
    """A client from a credentials block, explicit settings or the environment (in that order).

    ``follow_in_thread``: see :class:`~pika_tasks.client.PikaClient`; for a
    flow whose event loop runs many task runs at once.
    """
    if credentials is not None:
        settings = credentials.get_settings()
    return PikaClient(settings, follow_in_thread=follow_in_thread)


def _client_for(
    client: PikaClient | None, credentials: FalCredentials | None, settings: PikaSettings | None
) -> contextlib.AbstractAsyncContextManager[PikaClient]:
    """The caller's open client (left open), or a new one closed after the task."""
    if client is not None:
        return contextlib.nullcontext(client)
    return open_client(credentials, settings)


def _label(handle: RequestHandle | None, label: str | None) -> str:
    return label or (handle.request_id if handle else "request")


def _run_name(verb: str) -> Callable[..., str]:
    """A task run name: the verb and the label, else the request id (never "None")."""

    def name(parameters: dict[str, Any]) -> str:
        handle = parameters.get("handle")
        known = handle if isinstance(handle, RequestHandle) else None
        return f"{verb} {_label(known, parameters.get('label'))}"

    return name


_TASK_DEFAULTS: dict[str, Any] = {
    # One layer of retries, in the client; these apply when a user opts in to more.
    "retries": TASK_RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_transient,
    "cache_policy": NO_CACHE,
    "tags": [FAL_TAG],
}


@task(name="submit-image-to-video", task_run_name=_run_name("submit"), **_TASK_DEFAULTS)
async def submit_image_to_video(
    arguments: ImageToVideoInput | Mapping[str, Any],
    *,
    options: RequestOptions | None = None,
    credentials: FalCredentials | None = None,
    settings: PikaSettings | None = None,
    label: str = "video",
    client: PikaClient | None = None,
) -> RequestHandle:
    """Queue one image-to-video job and return its handle.

    Input is validated before anything is sent.  The task retries only when
    fal answered that it did not queue the job (429, 5xx) or the connection
    was never made; a lost answer raises
    :class:`~pika_tasks.errors.SubmitOutcomeUnknownError` and is not retried.

    Args:
        arguments: the job input (``image_url``, ``prompt``, ...).
        options: fal request options (start timeout, priority, expiry, webhook).
        credentials: a :class:`FalCredentials` block; else ``FAL_KEY`` from the environment.
        settings: explicit settings, used when no block is given.
        label: a name for the task run and its logs (e.g. the row id).
        client: an open :class:`PikaClient` to send with (left open), so that
            many tasks share one connection pool; it must belong to the event
            loop the task runs on.  Default: a client of its own.

    Example:
        Skipped as a doctest: it pays fal for a video (tests/tasks runs it on the emulator).

        >>> handle = await submit_image_to_video(  # doctest: +SKIP
        ...     {"image_url": "https://example.com/cat.png", "prompt": "slow zoom in"}
        ... )
    """
    payload = (
        arguments
        if isinstance(arguments, ImageToVideoInput)
        else ImageToVideoInput.model_validate(dict(arguments))
    )
    async with _client_for(client, credentials, settings) as pika:
        handle = await pika.submit(payload, options=options)
    # At DEBUG: the wait task's line names the request, and every line is an API write.
    get_run_logger().debug(
        "%s: queued as %s (position %s)", label, handle.request_id, handle.queue_position
    )
    return handle


def _describe_status(status: QueueStatus) -> str:
    if status.status == "IN_QUEUE":
        return f"in queue at position {status.queue_position}"
    if status.status == "IN_PROGRESS":
        return "in progress"
    return "failed" if status.failed else "completed"


@task(name="wait-for-completion", task_run_name=_run_name("wait"), **_TASK_DEFAULTS)
async def wait_for_completion(
    handle: RequestHandle,
    *,
    timeout: float | None = None,
    cancel_on_timeout: bool = True,
    credentials: FalCredentials | None = None,
    settings: PikaSettings | None = None,
    label: str | None = None,
    client: PikaClient | None = None,
    prefetch_result: bool = False,
    on_status: Callable[[QueueStatus], object] | None = None,
) -> QueueStatus:
    """Wait until the job completes, logging its progress and the runner's logs.

    Listens to fal's status stream and falls back to polling when it drops.
    When ``timeout`` passes (or the task is cancelled) the remote request is
    cancelled too, unless ``cancel_on_timeout`` is False, so a job nobody
    waits for does not go on to be billed.

    Args:
        handle: what :func:`submit_image_to_video` returned.
        timeout: seconds to wait; defaults to the ``wait_timeout`` setting.
        cancel_on_timeout: cancel the remote request when the wait is given up.
        credentials: a :class:`FalCredentials` block; else ``FAL_KEY`` from the environment.
        settings: explicit settings, used when no block is given.
        label: a name for the task run and its logs (default: the request id).
        client: an open :class:`PikaClient` to send with (left open), so that
            many tasks share one connection pool; it must belong to the event
            loop the task runs on.  Default: a client of its own.
        prefetch_result: ask for the job's result the moment it completes, on
            ``client``, for a later ``client.result`` (or :func:`fetch_video`
            with the same client) to take: the result request goes out before
            this task run has finished reporting its state.
        on_status: also called with each new status (e.g. to show the queue
            position live); it runs in the task's event loop: keep it quick.

    Returns:
        The COMPLETED status (with ``metrics``).

    Raises:
        JobFailedError: the job completed with an error.
        WaitTimeoutError: the deadline passed.

    Example:
        Skipped as a doctest: it waits on a job at fal (tests/tasks runs it on the emulator).

        >>> status = await wait_for_completion(handle, timeout=600)  # doctest: +SKIP
    """
    logger = get_run_logger()
    name = _label(handle, label)
    seen_logs = 0
    last_step: tuple[str, int | None] | None = None
    runner: list[str] = []

    def report(status: QueueStatus) -> None:
        nonlocal seen_logs, last_step
        step = (status.status, status.queue_position)
        if step != last_step and status.status != "COMPLETED":
            # Steps go to DEBUG: every log line is an API write the user pays for (Prefect
            # Cloud rate-limits them), and the task run's own states already say when the
            # wait started and ended.
            logger.debug("%s: %s", name, _describe_status(status))
        last_step = step
        if on_status is not None:
            on_status(status)
        logs = status.logs if isinstance(status.logs, list) else []
        runner.extend(str(entry.get("message", entry)) for entry in logs[seen_logs:])
        seen_logs = max(seen_logs, len(logs))

    async with _client_for(client, credentials, settings) as pika:
        try:
            final = await pika.wait(
                handle, timeout=timeout, on_status=report, prefetch_result=prefetch_result
            )
        except (WaitTimeoutError, asyncio.CancelledError):
            if cancel_on_timeout:
                # The client's cancel is answered even while this task is being cancelled.
                with contextlib.suppress(Exception):
                    answer = await pika.cancel(handle)
                    logger.warning("%s: gave up waiting; cancel: %s", name, answer.status)
            raise
        except BaseException:
            if runner:
                logger.info("%s: runner: %s", name, _joined(runner))
            raise
    inference = (final.metrics or {}).get("inference_time", 0.0)
    # One line per job, the runner's own log folded in: one API write, not one per line.
    logger.info(
        "%s: %s completed (inference %.1fs)%s",
        name,
        handle.request_id,
        inference,
        f"; runner: {_joined(runner)}" if runner else "",
    )
    return final


def _joined(lines: list[str], limit: int = 4000) -> str:
    """The runner's log lines as one, the newest kept when they are long."""
    text = " | ".join(lines)
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


@task(name="fetch-video", task_run_name=_run_name("fetch"), **_TASK_DEFAULTS)
async def fetch_video(
    handle: RequestHandle,
    destination: str,
    *,
    storage_options: dict[str, Any] | None = None,
    credentials: FalCredentials | None = None,
    settings: PikaSettings | None = None,
    label: str | None = None,
    client: PikaClient | None = None,
    output: ImageToVideoOutput | None = None,
) -> DownloadedFile:
    """Fetch the job's result and stream its video to ``destination`` (any fsspec URL).

    The video is streamed in chunks (never whole in memory) to a temporary
    name and moved into place only when complete, so an interrupted fetch
    never leaves a file at ``destination``.  A dropped connection resumes
    where it stopped.

    Args:
        handle: what :func:`submit_image_to_video` returned.
        destination: where to write the MP4, e.g. ``s3://bucket/videos/a.mp4``.
        storage_options: fsspec options for ``destination``.
        credentials: a :class:`FalCredentials` block; else ``FAL_KEY`` from the environment.
        settings: explicit settings, used when no block is given.
        label: a name for the task run and its logs (default: the request id).
        client: an open :class:`PikaClient` to send with (left open), so that
            many tasks share one connection pool; it must belong to the event
            loop the task runs on.  Default: a client of its own.
        output: the job's result when the caller has it already (e.g. fetched
            the moment the wait ended); else the task asks fal for it.

    Returns:
        The path, size, content type, SHA-256 and fal's file metadata.

    Example:
        Skipped as a doctest: it downloads a job's video (tests/tasks runs it on the emulator).

        >>> video = await fetch_video(handle, "s3://bucket/videos/a.mp4")  # doctest: +SKIP
    """
    async with _client_for(client, credentials, settings) as pika:
        video = await copy_video(
            pika, handle, destination, storage_options=storage_options, output=output
        )
    # At DEBUG: the task run's state, the row's record and its event all say it; a log
    # line per video would be one more API write per row.
    get_run_logger().debug(
        "%s: wrote %s (%d bytes)", _label(handle, label), destination, video.size
    )
    return video
