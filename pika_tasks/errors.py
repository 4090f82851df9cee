"""The exceptions pika-tasks raises.

Every error is a :class:`PikaError`; catch that to catch them all::

    PikaError
    ├── MissingKeyError            no FAL_KEY anywhere
    ├── FalHTTPError               fal answered with an error status
    │   ├── AuthenticationError    401 / 403 (bad key, locked account)
    │   ├── FalValidationError     422, carries fal's ``detail`` list
    │   ├── RateLimitError         429, queue full (transient)
    │   ├── RequestAbortedError    499, fal says the caller went away or cancelled
    │   ├── ServerError            5xx, carries ``X-Fal-Error-Type`` (transient
    │   │                          unless fal says it is final)
    │   └── RequestNotFoundError   404 / 410: unknown request
    │       └── ResultExpiredError the result or the video is gone
    ├── TransportError             the network failed where a retry is safe (transient)
    ├── DownloadTimeoutError       a video download passed its overall deadline
    ├── SubmitOutcomeUnknownError  a submit was sent but its answer was lost
    ├── JobFailedError             the job COMPLETED with an ``error``
    └── WaitTimeoutError           the job did not complete before the deadline

Every :class:`FalHTTPError` names the request it concerns in ``request_id``:
the handle's id, or else the ``x-fal-request-id`` fal put on its answer,
which is what fal's dashboard and support know a request by.

:func:`is_transient` says which errors are worth retrying.  The client
retries those itself on idempotent calls; the Prefect tasks use the same
function as their ``retry_condition_fn``.  A submit is never retried once
it may have reached fal: a lost answer becomes
:class:`SubmitOutcomeUnknownError`, because fal has no idempotency key and
a second POST can bill a second video.

Example:
    >>> from pika_tasks.errors import RateLimitError, is_transient
    >>> is_transient(RateLimitError("queue full", status_code=429))
    True
"""

from __future__ import annotations

from typing import Any

_MISSING_KEY_HELP = (
    "No fal API key was found. Set the FAL_KEY environment variable (or put "
    "FAL_KEY=... in a .env file), pass fal_key=... to PikaSettings, or load a "
    "FalCredentials block. To run offline without a key, use the built-in "
    "emulator: `pika-tasks run MANIFEST --out DIR --local`."
)


class PikaError(Exception):
    """Base class of every error raised by pika-tasks."""


class MissingKeyError(PikaError):
    """No fal API key is configured."""

    def __init__(self, message: str = _MISSING_KEY_HELP) -> None:
        super().__init__(message)


class FalHTTPError(PikaError):
    """fal answered with an HTTP error status.

    Attributes:
        status_code: the HTTP status.
        error_type: fal's ``error_type`` (body or ``X-Fal-Error-Type`` header).
        detail: fal's ``detail`` (text, or the list of a 422).
        request_id: the request the error concerns, when known: the handle's id,
            or else the ``x-fal-request-id`` of fal's answer.
        retry_after: seconds from a ``Retry-After`` header, when present.
        retryable: fal's own word on retrying (``X-Fal-Retryable``, or False for a
            504 whose ``X-Fal-Request-Timeout-Type`` is ``user``); None when fal
            did not say.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_type: str | None = None,
        detail: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.detail = detail
        self.request_id = request_id
        self.retry_after = retry_after
        self.retryable = retryable


class AuthenticationError(FalHTTPError):
    """401 or 403: the key is wrong, or the account is locked (e.g. exhausted balance)."""


class FalValidationError(FalHTTPError):
    """422: fal refused the input. ``detail`` is fal's list of ``{loc, msg, type}``."""


class RateLimitError(FalHTTPError):
    """429: the queue is full or we are sending too fast. Transient."""


class RequestAbortedError(FalHTTPError):
    """499: fal reports the request aborted: its caller disconnected before the
    answer (``client_disconnected``) or cancelled it (``client_cancelled``).

    Not transient, and never resent: fal stopped handling this request on
    purpose.  On a submit, fal may still have queued the job: look it up by
    ``request_id`` before submitting again.
    """


class ServerError(FalHTTPError):
    """5xx from fal's infrastructure (``error_type`` says which), or from a gateway.

    Transient, except when fal marks the answer final (``retryable`` is False:
    ``X-Fal-Retryable: false``, or a 504 whose ``X-Fal-Request-Timeout-Type``
    is ``user``, which means the caller's own start deadline passed).
    """


class RequestNotFoundError(FalHTTPError):
    """404 / 410: fal does not know this request (or no longer does)."""


class ResultExpiredError(RequestNotFoundError):
    """The result or its video has expired; the row must be generated again."""


class TransportError(PikaError):
    """The connection failed or timed out on a call that is safe to retry. Transient."""


class DownloadTimeoutError(PikaError):
    """A download did not finish within its overall deadline (``download_timeout``).

    Not transient: a file too big or a link too slow for the deadline fails
    the same way again; raise the deadline instead.
    """


class SubmitOutcomeUnknownError(PikaError):
    """The submit request was sent but its answer was lost.

    Lost includes a bare 502/504 page from a gateway in front of fal, which
    may come after the gateway handed the request on.  fal may or may not
    have queued (and billed) the job.  Do not resubmit blindly: look for the
    request in fal's dashboard or usage first.

    Attributes:
        request_id: fal's ``x-fal-request-id`` when an answer carried one
            (a lost answer or a gateway page has none).
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class JobFailedError(PikaError):
    """The job reached COMPLETED with an ``error``: fal ran it and it failed."""

    def __init__(
        self, message: str, *, request_id: str | None = None, error_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.error_type = error_type


class WaitTimeoutError(PikaError):
    """The job did not complete before the wait deadline."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (RateLimitError, ServerError, TransportError)


def is_transient(error: BaseException) -> bool:
    """True when retrying the same call later may succeed.

    fal can veto a retry of an otherwise transient answer (``retryable=False``).
    """
    return isinstance(error, TRANSIENT_ERRORS) and getattr(error, "retryable", None) is not False
