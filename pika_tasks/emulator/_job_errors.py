"""How failed jobs read: the COMPLETED status's ``error``/``error_type`` and the result answer.

======================  ======  ==============================================
error_type              result  when
======================  ======  ==============================================
image_load_error        422     the input is not a readable image
file_download_error     422     ``image_url`` could not be fetched
image_too_large         422     the image exceeds ``image_max_bytes``/pixels
internal_server_error   500     ``job_failure_rate`` picked the job
runner_disconnected     503     its runner failed and ``X-Fal-No-Retry`` was set
request_timeout         504     it did not start within ``X-Fal-Request-Timeout``
request_cancelled       400     it was cancelled (while queued, or running
                                with ``cancel_running="stop"``)
======================  ======  ==============================================

Model errors (422, 500) carry fal's ``detail``; infrastructure errors (503,
504) the flat ``{detail, error_type}`` with an ``X-Fal-Error-Type`` header.

Example:
    >>> from pika_tasks.emulator._job_errors import cancelled
    >>> cancelled().status_code, cancelled().error_type
    (400, 'request_cancelled')
"""

from __future__ import annotations

from pika_tasks.emulator._images import ImageInputError
from pika_tasks.emulator._jobs import JobError

_INPUT_PREVIEW = 200


def _preview(url: str) -> str:
    return url if len(url) <= _INPUT_PREVIEW else url[:_INPUT_PREVIEW] + "..."


def image_failure(error: ImageInputError, image_url: str) -> JobError:
    """The model refused the input image: 422 with a ``detail`` list, like a validation error."""
    return JobError(
        error_type=error.error_type,
        message=error.message,
        status_code=422,
        body={
            "detail": [
                {
                    "loc": ["body", "image_url"],
                    "msg": error.message,
                    "type": error.error_type,
                    "input": _preview(image_url),
                }
            ]
        },
        headers={"X-Fal-Retryable": "false"},
    )


def internal_failure() -> JobError:
    """The model crashed while generating (an injected job failure)."""
    message = "Internal error while generating the video."
    return JobError(
        error_type="internal_server_error",
        message=message,
        status_code=500,
        body={"detail": message},
    )


def _infra(status_code: int, error_type: str, message: str, **headers: str) -> JobError:
    return JobError(
        error_type=error_type,
        message=message,
        status_code=status_code,
        body={"detail": message, "error_type": error_type},
        headers={"X-Fal-Error-Type": error_type, **headers},
    )


def runner_disconnected() -> JobError:
    """The runner failed and the request asked not to be retried."""
    return _infra(503, "runner_disconnected", "The runner disconnected while processing.")


def start_timeout(seconds: float) -> JobError:
    """The request waited longer than its ``X-Fal-Request-Timeout`` to start."""
    return _infra(
        504,
        "request_timeout",
        f"The request did not start within {seconds:g} s.",
        **{"X-Fal-Request-Timeout-Type": "user"},
    )


def cancelled() -> JobError:
    """The request was cancelled before it produced a result."""
    message = "The request was cancelled."
    return JobError(
        error_type="request_cancelled",
        message=message,
        status_code=400,
        body={"detail": message, "error_type": "request_cancelled"},
        headers={"X-Fal-Error-Type": "request_cancelled"},
    )


def emulator_bug(error: BaseException) -> JobError:
    """Rendering failed in an unexpected way (a bug, reported as a 500)."""
    message = f"Internal error while generating the video ({type(error).__name__})."
    return JobError(
        error_type="internal_server_error",
        message=message,
        status_code=500,
        body={"detail": message},
    )
