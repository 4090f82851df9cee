"""pika-tasks: Prefect tasks and flows for Pika 2.2 image-to-video on fal's queue."""

from pika_tasks.errors import (
    AuthenticationError,
    FalHTTPError,
    FalValidationError,
    JobFailedError,
    MissingKeyError,
    PikaError,
    RateLimitError,
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

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "CancelResponse",
    "DownloadInfo",
    "DownloadedFile",
    "FalHTTPError",
    "FalValidationError",
    "File",
    "ImageToVideoInput",
    "ImageToVideoOutput",
    "JobFailedError",
    "MissingKeyError",
    "PikaError",
    "PikaSettings",
    "QueueStatus",
    "RateLimitError",
    "RequestHandle",
    "RequestNotFoundError",
    "RequestOptions",
    "ResultExpiredError",
    "ServerError",
    "SubmitOutcomeUnknownError",
    "TransportError",
    "WaitTimeoutError",
    "__version__",
    "is_transient",
]
