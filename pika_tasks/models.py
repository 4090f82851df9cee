"""Data models: the Pika 2.2 API's schemas and the handle we pass between tasks.

The API models follow ``pika-v2.2-image-to-video.openapi.yaml`` field for
field.  Input is checked here, before any HTTP call, so a bad value fails
fast with a message naming the field and the allowed values.

Example:
    >>> from pika_tasks.models import ImageToVideoInput
    >>> ImageToVideoInput(image_url="https://x/a.png", prompt="a cat").resolution
    '720p'
    >>> ImageToVideoInput(image_url="https://x/a.png", prompt="a cat", resolution="4k")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for ImageToVideoInput
    resolution
      Input should be '720p' or '1080p' [type=literal_error, input_value='4k', input_type=str]
    ...
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DURATIONS",
    "RESOLUTIONS",
    "CancelResponse",
    "DownloadInfo",
    "DownloadedFile",
    "Duration",
    "File",
    "ImageToVideoInput",
    "ImageToVideoOutput",
    "Priority",
    "QueueState",
    "QueueStatus",
    "RequestHandle",
    "RequestOptions",
    "Resolution",
]

Resolution = Literal["720p", "1080p"]
Duration = Literal[5, 10]
QueueState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
Priority = Literal["normal", "low"]

RESOLUTIONS: tuple[Resolution, ...] = ("720p", "1080p")
DURATIONS: tuple[Duration, ...] = (5, 10)


class ImageToVideoInput(BaseModel):
    """Request body of a Pika 2.2 image-to-video job (``PikaV22ImageToVideoInput``)."""

    model_config = ConfigDict(extra="forbid")

    image_url: str = Field(description="URL of the image to use as the first frame.")
    prompt: str = Field(description="Motion and style to apply to the image.")
    negative_prompt: str = Field(default="", description="What to steer away from.")
    resolution: Resolution = Field(default="720p", description="720p or 1080p.")
    duration: Duration = Field(default=5, description="Length in seconds: 5 or 10.")
    seed: int | None = Field(default=None, description="Random seed, or None.")


class File(BaseModel):
    """A file fal produced (``File``)."""

    model_config = ConfigDict(extra="allow")

    url: str
    content_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None


class ImageToVideoOutput(BaseModel):
    """Result of a completed job (``PikaV22ImageToVideoOutput``)."""

    model_config = ConfigDict(extra="allow")

    video: File


class QueueStatus(BaseModel):
    """A status answer of the queue (``QueueStatus``), plus the fields the live queue adds.

    A failed job is COMPLETED with ``error`` set: see :attr:`failed`.
    """

    model_config = ConfigDict(extra="allow")

    status: QueueState
    request_id: str
    response_url: str | None = None
    status_url: str | None = None
    cancel_url: str | None = None
    logs: list[dict[str, Any]] | dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    queue_position: int | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def done(self) -> bool:
        """True once the job is COMPLETED, successfully or not."""
        return self.status == "COMPLETED"

    @property
    def failed(self) -> bool:
        """True when the job COMPLETED with an error."""
        return self.done and self.error is not None


class CancelResponse(BaseModel):
    """Answer to a cancel: the spec's ``success`` plus the live queue's ``status``.

    ``status`` is ``CANCELLATION_REQUESTED``, ``ALREADY_COMPLETED`` or ``NOT_FOUND``.
    """

    model_config = ConfigDict(extra="allow")

    success: bool | None = None
    status: str | None = None


class RequestHandle(BaseModel):
    """What a submit returns and the later steps need: small and serialisable.

    The three URLs are followed as given: fal serves them under the owner/app
    prefix, not under the endpoint path, so they must never be rebuilt.
    """

    model_config = ConfigDict(frozen=True)

    request_id: str
    status_url: str
    response_url: str
    cancel_url: str
    endpoint_id: str
    queue_position: int | None = None


class RequestOptions(BaseModel):
    """Optional per-request settings, sent as fal's headers and query parameters."""

    model_config = ConfigDict(extra="forbid")

    start_timeout: float | None = Field(
        default=None, gt=0, description="X-Fal-Request-Timeout: seconds fal may take to start."
    )
    priority: Priority | None = Field(default=None, description="X-Fal-Queue-Priority.")
    object_expiry_seconds: int | None = Field(
        default=None,
        gt=0,
        description="X-Fal-Object-Lifecycle-Preference: how long fal keeps the video.",
    )
    webhook_url: str | None = Field(default=None, description="fal_webhook: called when done.")


class DownloadInfo(BaseModel):
    """What a download streamed: byte count, content type and SHA-256."""

    size: int
    content_type: str | None = None
    sha256: str


class DownloadedFile(DownloadInfo):
    """A video written to a storage location, with fal's metadata for it."""

    path: str
    video: File | None = None
