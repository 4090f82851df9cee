"""A row's calls to fal made straight on a :class:`~pika_tasks.client.PikaClient`.

:class:`ClientSteps` is the :class:`~pika_tasks.pipeline.RowSteps` for code
that runs rows without Prefect (scripts, services, tests of the pipeline):
fal's slot is a plain semaphore and each step is one client call.  The batch
flow uses its Prefect tasks instead; both copy videos with :func:`copy_video`.

Example:
    >>> import asyncio
    >>> from pika_tasks.client import PikaClient
    >>> from pika_tasks.settings import PikaSettings
    >>> async def bound() -> int:
    ...     async with PikaClient(PikaSettings(fal_key="k")) as client:
    ...         return ClientSteps(client, max_concurrency=2).max_concurrency
    >>> asyncio.run(bound())
    2
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from pika_tasks.client import PikaClient
from pika_tasks.models import (
    DownloadedFile,
    ImageToVideoInput,
    ImageToVideoOutput,
    QueueStatus,
    RequestHandle,
)
from pika_tasks.storage import atomic_writer_async

__all__ = ["ClientSteps", "copy_video"]


async def copy_video(
    client: PikaClient,
    handle: RequestHandle,
    destination: str,
    *,
    storage_options: dict[str, Any] | None = None,
    output: ImageToVideoOutput | None = None,
) -> DownloadedFile:
    """Stream the job's video to ``destination`` (any fsspec URL), atomically.

    Args:
        client: an open client.
        handle: the job.
        destination: where the MP4 goes; nothing appears there unless the copy completes.
        storage_options: fsspec options for ``destination``.
        output: the job's result when the caller has it already; else fal is asked.

    Returns:
        The path, size, content type, SHA-256 and fal's file metadata.
    """
    if output is None:
        output = await client.result(handle)
    async with atomic_writer_async(destination, storage_options) as sink:
        info = await client.download(output.video.url, sink.writer, write_in_thread=True)
    return DownloadedFile(path=destination, video=output.video, **info.model_dump())


@dataclass
class ClientSteps:
    """Rows' calls to fal on one open client, at most ``max_concurrency`` at fal at once.

    Args:
        client: an open :class:`~pika_tasks.client.PikaClient`.
        max_concurrency: rows holding fal's slot at once (submit to completion).
        wait_timeout: seconds to wait for one job (default: the client's setting).
        storage_options: fsspec options for the videos' destination.
    """

    client: PikaClient
    max_concurrency: int = 4
    wait_timeout: float | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(max(1, self.max_concurrency))

    def slot(self) -> AbstractAsyncContextManager[Any]:
        """One of ``max_concurrency`` slots."""
        return self._slots

    async def pace_submit(self) -> None:
        """No pacing: fal queues what exceeds the account's concurrency."""

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        """Upload an image to fal's storage."""
        return await self.client.upload(data, content_type=content_type, file_name=file_name)

    async def submit(self, arguments: ImageToVideoInput, label: str) -> RequestHandle:
        """Queue the job."""
        return await self.client.submit(arguments)

    async def wait(self, handle: RequestHandle, label: str) -> QueueStatus:
        """Wait for the job; its result is asked for the moment it completes."""
        return await self.client.wait(handle, timeout=self.wait_timeout, prefetch_result=True)

    async def result(self, handle: RequestHandle) -> ImageToVideoOutput:
        """The job's output."""
        return await self.client.result(handle)

    async def fetch(
        self,
        handle: RequestHandle,
        destination: str,
        label: str,
        output: ImageToVideoOutput | None,
    ) -> DownloadedFile:
        """Copy the video to ``destination``."""
        return await copy_video(
            self.client, handle, destination, storage_options=self.storage_options, output=output
        )
