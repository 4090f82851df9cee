"""pika-tasks: Prefect tasks and flows for Pika 2.2 image-to-video on fal's queue.

The client, models, settings and errors import nothing from Prefect; the
Prefect pieces (block, tasks, flows) load on first use, so a service that only
needs :class:`PikaClient` does not pay for importing Prefect.

Example:
    >>> import pika_tasks
    >>> pika_tasks.ImageToVideoInput(image_url="https://x/a.png", prompt="zoom in").duration
    5
"""

import importlib
from typing import TYPE_CHECKING, Any

from pika_tasks.errors import (
    AuthenticationError,
    DownloadTimeoutError,
    FalHTTPError,
    FalValidationError,
    JobFailedError,
    MissingKeyError,
    PikaError,
    RateLimitError,
    RequestAbortedError,
    RequestNotFoundError,
    ResultExpiredError,
    ServerError,
    SubmitOutcomeUnknownError,
    TransportError,
    WaitTimeoutError,
    is_transient,
)
from pika_tasks.models import (
    CancelResponse,
    DownloadedFile,
    DownloadInfo,
    File,
    ImageToVideoInput,
    ImageToVideoOutput,
    QueueStatus,
    RequestHandle,
    RequestOptions,
)
from pika_tasks.settings import PikaSettings

if TYPE_CHECKING:
    from pika_tasks.client import PikaClient
    from pika_tasks.credentials import FalCredentials
    from pika_tasks.flows import image_to_video_batch
    from pika_tasks.manifest import RowDefaults
    from pika_tasks.pipeline import BatchLimits, BatchResult, Location
    from pika_tasks.tasks import fetch_video, submit_image_to_video, wait_for_completion

# Public names that live in modules importing Prefect (or httpx), loaded on first use.
_LAZY = {
    "PikaClient": "pika_tasks.client",
    "FalCredentials": "pika_tasks.credentials",
    "BatchLimits": "pika_tasks.pipeline",
    "BatchResult": "pika_tasks.pipeline",
    "Location": "pika_tasks.pipeline",
    "RowDefaults": "pika_tasks.manifest",
    "image_to_video_batch": "pika_tasks.flows",
    "fetch_video": "pika_tasks.tasks",
    "submit_image_to_video": "pika_tasks.tasks",
    "wait_for_completion": "pika_tasks.tasks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pika_tasks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BatchLimits",
    "BatchResult",
    "CancelResponse",
    "DownloadInfo",
    "DownloadTimeoutError",
    "DownloadedFile",
    "FalCredentials",
    "FalHTTPError",
    "FalValidationError",
    "File",
    "ImageToVideoInput",
    "ImageToVideoOutput",
    "JobFailedError",
    "Location",
    "MissingKeyError",
    "PikaClient",
    "PikaError",
    "PikaSettings",
    "QueueStatus",
    "RateLimitError",
    "RequestAbortedError",
    "RequestHandle",
    "RequestNotFoundError",
    "RequestOptions",
    "ResultExpiredError",
    "RowDefaults",
    "ServerError",
    "SubmitOutcomeUnknownError",
    "TransportError",
    "WaitTimeoutError",
    "__version__",
    "fetch_video",
    "image_to_video_batch",
    "is_transient",
    "submit_image_to_video",
    "wait_for_completion",
]
