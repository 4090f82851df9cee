"""The calls a row makes to fal, as this run's Prefect tasks: submit, wait, fetch.

:class:`TaskSteps` is the batch flow's :class:`~pika_tasks.pipeline.RowSteps`:
each row gets its three task runs (submit, wait, fetch: the graph a user sees
in the Prefect UI), all sharing the run's one client and connection pool, and
fal's slot comes from the run's :class:`~pika_tasks.concurrency.FalSlots`.

Prefect keeps every task run's result state in the flow run's context for the
run's whole life, to link a later task's inputs to it, and the assets each task
run passes downstream; at 20,000 rows that is most of a flow process's memory.
A row's results are only ever passed between its own three tasks, so
:meth:`TaskSteps.release` forgets both once the row has finished, and memory
stays flat however many rows a run has.

A :class:`~pika_tasks.progress.RowWatcher` (the run's progress tracker) is told
where each row is at fal: queued once its submit is answered, each status the
wait task sees, downloading once fal is done with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ParamSpec, TypeVar

from prefect.context import FlowRunContext
from prefect.tasks import Task
from prefect.utilities.collections import visit_collection

from pika_tasks.client import PikaClient
from pika_tasks.concurrency import FalSlots
from pika_tasks.credentials import FalCredentials
from pika_tasks.models import (
    DownloadedFile,
    ImageToVideoInput,
    ImageToVideoOutput,
    QueueStatus,
    RequestHandle,
)
from pika_tasks.progress import RowWatcher
from pika_tasks.settings import PikaSettings
from pika_tasks.tasks import fetch_video, submit_image_to_video, wait_for_completion

__all__ = ["TaskSteps"]

P = ParamSpec("P")
R = TypeVar("R")


def _run_task(task: Task[P, R], retries: int | None, tags: list[str]) -> Task[P, R]:
    """The task with this run's tags (replacing its own) and retry setting."""
    if retries is None:
        return task.with_options(tags=set(tags))
    return task.with_options(tags=set(tags), retries=retries)


@dataclass
class TaskSteps:
    """A run's three tasks, its client and its slots, as the row pipeline calls them.

    Args:
        client: the run's open client (one connection pool for every task run).
        slots: the run's share of fal's concurrency.
        settings: the run's settings.
        credentials: the block the run was given, if any.
        wait_timeout: seconds to wait for one job before cancelling it.
        storage_options: fsspec options for the videos' destination.
        task_retries: retries of each task (default: the tasks' own).
        task_tags: tags for the task runs (default: none).
        watcher: told where each row is at fal (default: nobody).
    """

    client: PikaClient
    slots: FalSlots
    settings: PikaSettings
    credentials: FalCredentials | None = None
    wait_timeout: float | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)
    task_retries: int | None = None
    task_tags: list[str] = field(default_factory=list)
    watcher: RowWatcher | None = None
    _results: dict[str, list[object]] = field(default_factory=lambda: defaultdict(list))
    _submit: Task[..., Coroutine[Any, Any, RequestHandle]] = field(init=False)
    _wait: Task[..., Coroutine[Any, Any, QueueStatus]] = field(init=False)
    _fetch: Task[..., Coroutine[Any, Any, DownloadedFile]] = field(init=False)

    def __post_init__(self) -> None:
        # Made once per run: with_options builds a new task object.
        self._submit = _run_task(submit_image_to_video, self.task_retries, self.task_tags)
        self._wait = _run_task(wait_for_completion, self.task_retries, self.task_tags)
        self._fetch = _run_task(fetch_video, self.task_retries, self.task_tags)

    def _keep(self, label: str, result: R) -> R:
        self._results[label].append(result)
        return result

    def slot(self) -> AbstractAsyncContextManager[Any]:
        """One of fal's slots: the run's local bound and the global limit."""
        return self.slots.slot()

    async def pace_submit(self) -> None:
        """Wait for the submit rate limit, if any."""
        await self.slots.pace_submit()

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        """Upload an image to fal's storage."""
        return await self.client.upload(data, content_type=content_type, file_name=file_name)

    async def submit(self, arguments: ImageToVideoInput, label: str) -> RequestHandle:
        """The submit task."""
        handle = await self._submit(
            arguments,
            credentials=self.credentials,
            settings=self.settings,
            label=label,
            client=self.client,
        )
        if self.watcher is not None:
            self.watcher.queued(label, handle.queue_position)
        return self._keep(label, handle)

    async def wait(self, handle: RequestHandle, label: str) -> QueueStatus:
        """The wait task; it asks for the result the moment the job completes."""
        watcher = self.watcher
        status = await self._wait(
            handle,
            timeout=self.wait_timeout,
            credentials=self.credentials,
            settings=self.settings,
            label=label,
            client=self.client,
            prefetch_result=True,
            on_status=None if watcher is None else partial(watcher.status, label),
        )
        if watcher is not None:
            watcher.downloading(label)
        return self._keep(label, status)

    async def result(self, handle: RequestHandle) -> ImageToVideoOutput:
        """The job's output, from the request the wait made at completion."""
        return await self.client.result(handle)

    async def fetch(
        self,
        handle: RequestHandle,
        destination: str,
        label: str,
        output: ImageToVideoOutput | None,
    ) -> DownloadedFile:
        """The fetch task."""
        video = await self._fetch(
            handle,
            destination,
            storage_options=self.storage_options,
            credentials=self.credentials,
            settings=self.settings,
            label=label,
            client=self.client,
            output=output,
        )
        return self._keep(label, video)

    def release(self, label: str) -> None:
        """Forget a finished row's task results in Prefect's run context (see above)."""
        results = self._results.pop(label, [])
        context = FlowRunContext.get()
        if context is None:
            return
        forget: list[int] = []
        for result in results:
            # Prefect links the result and each of its direct members (depth 1).
            visit_collection(result, lambda item: forget.append(id(item)), max_depth=1)
        for key in forget:
            linked = context.run_results.pop(key, None)
            task_run_id = linked[0].state_details.task_run_id if linked else None
            if task_run_id is not None:
                # Every task run also leaves, keyed by its id, the assets it passes
                # downstream (an empty set for most), never given back by Prefect.
                context.task_run_assets.pop(task_run_id, None)
