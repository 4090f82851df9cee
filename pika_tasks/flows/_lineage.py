"""The batch flow's asset lineage: one materialization event per video written.

A row's report line says where its video is and what it cost, not its image,
size or checksum; :class:`VideoLedger` notes those as the row goes (its image
when it is planned, its file when the fetch returns) and hands them over once
the row has finished, so lineage costs no read of a record.  It holds only
the rows in flight.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from pika_tasks.events import emit_described
from pika_tasks.lineage import (
    VideoWritten,
    describe_materialization,
    describe_reference,
)
from pika_tasks.manifest import ManifestRow
from pika_tasks.models import (
    DownloadedFile,
    ImageToVideoInput,
    ImageToVideoOutput,
    QueueStatus,
    RequestHandle,
)
from pika_tasks.pipeline import RowOutcome, RowSteps

__all__ = ["VideoLedger"]


class _NotingSteps:
    """A run's :class:`RowSteps` whose fetches are noted in a ledger."""

    def __init__(self, steps: RowSteps, ledger: VideoLedger) -> None:
        self._steps = steps
        self._ledger = ledger

    def slot(self) -> AbstractAsyncContextManager[Any]:
        return self._steps.slot()

    async def pace_submit(self) -> None:
        await self._steps.pace_submit()

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        return await self._steps.upload(data, content_type, file_name)

    async def submit(self, arguments: ImageToVideoInput, label: str) -> RequestHandle:
        return await self._steps.submit(arguments, label)

    async def wait(self, handle: RequestHandle, label: str) -> QueueStatus:
        return await self._steps.wait(handle, label)

    async def result(self, handle: RequestHandle) -> ImageToVideoOutput:
        return await self._steps.result(handle)

    async def fetch(
        self,
        handle: RequestHandle,
        destination: str,
        label: str,
        output: ImageToVideoOutput | None,
    ) -> DownloadedFile:
        video = await self._steps.fetch(handle, destination, label, output)
        self._ledger.fetched(label, video)
        return video


class VideoLedger:
    """What each video's materialization event needs, noted while its row is in flight.

    Args:
        manifest: the run's manifest (an upstream asset of every video).
    """

    def __init__(self, manifest: str) -> None:
        self.manifest = manifest
        self._images: dict[str, str] = {}
        self._files: dict[str, DownloadedFile] = {}
        self._referenced = False

    def noted(self, row: ManifestRow) -> ManifestRow:
        """Note the row's image (as it goes to be planned); return the row."""
        self._images[row.id] = row.image
        return row

    def fetched(self, row_id: str, video: DownloadedFile) -> None:
        """Note the row's video file."""
        self._files[row_id] = video

    def watch(self, steps: RowSteps) -> RowSteps:
        """``steps``, with every video they fetch noted here."""
        return _NotingSteps(steps, self)

    def finished(self, outcome: RowOutcome) -> None:
        """Forget the row; if it wrote a video, emit that video's materialization.

        The manifest's reference goes out once, before the first materialization.
        """
        if outcome.id is None:
            return
        image = self._images.pop(outcome.id, None)
        video = self._files.pop(outcome.id, None)
        if outcome.status != "succeeded" or video is None:
            return
        if not self._referenced:
            self._referenced = True
            emit_described(describe_reference(self.manifest))
        written = VideoWritten(
            row_id=outcome.id,
            row_number=outcome.row_number,
            output=outcome.output or video.path,
            size=video.size,
            sha256=video.sha256,
            cost_usd=outcome.cost_usd,
            image=image,
            content_type=video.content_type,
            request_id=outcome.request_id,
        )
        emit_described(describe_materialization(written, manifest=self.manifest))
