"""A job: one submitted request, its state, logs and outcome, and how it reads as JSON.

States follow the live queue: IN_QUEUE -> IN_PROGRESS -> COMPLETED, with
IN_PROGRESS -> IN_QUEUE when a runner fails.  There is no FAILED state: a
failed job is COMPLETED with ``error`` and ``error_type``, and its result
answers with the model's error status and body.

Example:
    >>> from pika_tasks.emulator._jobs import RequestUrls
    >>> RequestUrls.build("http://127.0.0.1:8000/", "abc").status_url
    'http://127.0.0.1:8000/fal-ai/pika/requests/abc/status'
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pika_tasks.emulator._config import APP_PREFIX
from pika_tasks.models import ImageToVideoInput, Priority, QueueState

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


@dataclass(frozen=True)
class RequestUrls:
    """The three URLs of a request, under the owner/app prefix of a base URL."""

    status_url: str
    response_url: str
    cancel_url: str

    @classmethod
    def build(cls, base_url: str, request_id: str) -> RequestUrls:
        """URLs of ``request_id`` on the server reached at ``base_url``."""
        root = f"{base_url.rstrip('/')}/{APP_PREFIX}/requests/{request_id}"
        return cls(status_url=f"{root}/status", response_url=root, cancel_url=f"{root}/cancel")


@dataclass(frozen=True)
class SubmitOptions:
    """Per-request options from the submit's headers and query.

    Attributes:
        webhook_url: ``fal_webhook`` query parameter.
        start_timeout: ``X-Fal-Request-Timeout``: seconds the job may wait to start.
        priority: ``X-Fal-Queue-Priority``: ``low`` waits behind ``normal``.
        object_expiry_seconds: from ``X-Fal-Object-Lifecycle-Preference``: video lifetime.
        no_retry: ``X-Fal-No-Retry``: a failed runner fails the job instead of re-queueing.
        store_io: ``X-Fal-Store-IO`` (recorded only).
        max_queue_length: ``fal_max_queue_length`` query parameter: 429 when longer.
        headers: the ``X-Fal-*`` headers as received.
    """

    webhook_url: str | None = None
    start_timeout: float | None = None
    priority: Priority = "normal"
    object_expiry_seconds: float | None = None
    no_retry: bool = False
    store_io: bool = True
    max_queue_length: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobError:
    """How a job failed: the status fields and the result answer.

    Attributes:
        error_type: ``error_type`` of the COMPLETED status.
        message: ``error`` of the COMPLETED status.
        status_code: HTTP status of the result.
        body: JSON body of the result.
        headers: extra headers of the result.
    """

    error_type: str
    message: str
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobVideo:
    """The video a job produced."""

    file_name: str
    file_size: int


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(eq=False)
class Job:
    """One request, from submit to expiry.

    Attributes:
        request_id: the request id (a random UUID).
        seq: submission number on this server (keys the job's fault decisions).
        input: the validated input.
        options: headers and query options of the submit.
        base_url: base URL the job was submitted through (for the webhook).
        seed: the seed used (the input's, or one derived from the input).
        state: IN_QUEUE, IN_PROGRESS or COMPLETED.
        attempts: how many runners picked the job up.
        submitted_at: monotonic submit time.
        started_at: monotonic start of the current (or last) attempt.
        completed_at: monotonic completion time.
        logs: runner logs, ``{message, level, source, timestamp}``.
        video: the produced video, on success.
        error: the failure, on error.
        result_expires_at: monotonic time the result expires, or ``None``.
        cancel_requested: a cancel arrived while the job was running.
        gateway_request_id: the id of the job's last attempt: the request id at
            first, a new one each time a failed runner sends the job back to the queue.
        webhook_attempts: each delivery attempt of the webhook, ``{attempt, outcome, at}``.
    """

    request_id: str
    seq: int
    input: ImageToVideoInput
    options: SubmitOptions
    base_url: str
    seed: int
    state: QueueState = "IN_QUEUE"
    attempts: int = 0
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    completed_at: float | None = None
    logs: list[dict[str, str]] = field(default_factory=list)
    video: JobVideo | None = None
    error: JobError | None = None
    result_expires_at: float | None = None
    cancel_requested: bool = False
    inference_time: float | None = None
    gateway_request_id: str = ""
    webhook_attempts: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Event | None = field(default=None, repr=False)
    _cancel: asyncio.Event | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.gateway_request_id:
            self.gateway_request_id = self.request_id

    def log(self, message: str, level: LogLevel = "INFO") -> None:
        """Append a runner log line."""
        self.logs.append(
            {"message": message, "level": level, "source": "USER", "timestamp": _now_iso()}
        )

    # -- change notification (status streams wait on these) -------------------

    def watch(self) -> asyncio.Event:
        """An event set at the job's next change."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    @property
    def watched(self) -> bool:
        """Whether something waits for the job's next change."""
        return self._changed is not None

    def notify(self) -> None:
        """Wake whatever waits for a change of this job."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- cancellation of a running job ----------------------------------------

    @property
    def cancel_signal(self) -> asyncio.Event:
        """Set when a cancel arrives while the job runs."""
        if self._cancel is None:
            self._cancel = asyncio.Event()
        return self._cancel

    # -- JSON views ------------------------------------------------------------

    def status_body(
        self, base_url: str, *, queue_position: int | None, with_logs: bool
    ) -> dict[str, Any]:
        """The status JSON as the live queue shapes it for the current state."""
        urls = RequestUrls.build(base_url, self.request_id)
        body: dict[str, Any] = {"status": self.state, "request_id": self.request_id}
        if self.state == "IN_QUEUE":
            body["queue_position"] = queue_position if queue_position is not None else 0
        body["response_url"] = urls.response_url
        body["status_url"] = urls.status_url
        body["cancel_url"] = urls.cancel_url
        if self.state != "IN_QUEUE":
            # Present even when not asked for: fal's own client reads data["logs"].
            body["logs"] = list(self.logs) if with_logs else None
        if self.state == "COMPLETED":
            body["metrics"] = {"inference_time": self.inference_time}
            if self.error is not None:
                body["error"] = self.error.message
                body["error_type"] = self.error.error_type
        return body

    def output_body(self, base_url: str) -> dict[str, Any]:
        """The model output of a successful job (``PikaV22ImageToVideoOutput``)."""
        if self.video is None:
            raise ValueError(f"job {self.request_id} has no video")
        return {
            "video": {
                "url": f"{base_url.rstrip('/')}/files/{self.video.file_name}",
                "content_type": "video/mp4",
                "file_name": self.video.file_name,
                "file_size": self.video.file_size,
            }
        }

    def describe(self) -> dict[str, Any]:
        """Everything recorded about the job, for ``GET /_emulator/requests/{id}``."""
        return {
            "request_id": self.request_id,
            "gateway_request_id": self.gateway_request_id,
            "seq": self.seq,
            "status": self.state,
            "attempts": self.attempts,
            "seed": self.seed,
            "input": self.input.model_dump(),
            "priority": self.options.priority,
            "webhook_url": self.options.webhook_url,
            "start_timeout": self.options.start_timeout,
            "object_expiry_seconds": self.options.object_expiry_seconds,
            "no_retry": self.options.no_retry,
            "store_io": self.options.store_io,
            "headers": dict(self.options.headers),
            "cancel_requested": self.cancel_requested,
            "error_type": self.error.error_type if self.error else None,
            "video": self.video.file_name if self.video else None,
            "logs": list(self.logs),
            "webhook_attempts": list(self.webhook_attempts),
        }
