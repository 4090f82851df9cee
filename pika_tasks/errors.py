"""Every exception pika-tasks raises, in one tree.

Every error is a :class:`PikaError`; catch that to catch them all::

    PikaError
    ├── MissingKeyError              no FAL_KEY anywhere
    ├── FalHTTPError                 fal answered with an error status
    │   ├── AuthenticationError      401 / 403 (bad key, locked account)
    │   ├── FalValidationError       422, carries fal's ``detail`` list
    │   ├── RateLimitError           429, queue full (transient)
    │   ├── RequestAbortedError      499, fal says the caller went away or cancelled
    │   ├── ServerError              5xx, carries ``X-Fal-Error-Type`` (transient
    │   │                            unless fal says it is final)
    │   └── RequestNotFoundError     404 / 410: unknown request
    │       └── ResultExpiredError   the result or the video is gone
    ├── TransportError               the network failed where a retry is safe (transient)
    │   └── ImageUnavailableError    (also an ImageError) an image could not be read
    │                                for now: network, 429/5xx, a store's own refusal
    ├── DownloadTimeoutError         a video download passed its overall deadline
    ├── SubmitOutcomeUnknownError    a submit was sent but its answer was lost
    ├── JobFailedError               the job COMPLETED with an ``error``
    ├── WaitTimeoutError             the job did not complete before the deadline
    ├── ImageError                   an image cannot be used (reason in the message)
    │   ├── ImageTooLargeError       its file is over ``ImageLimits.max_bytes``
    │   └── ImageUnavailableError    (see above)
    ├── ManifestError                the manifest cannot be read at all
    ├── BudgetExceededError          one row's price would take the spend past the cap
    ├── BudgetRefusedError           the whole run's certain price is over the cap
    ├── ClaimLostError               another run took a row over before this one paid
    └── ReportError                  a run report cannot be read

Every :class:`FalHTTPError` names the request it concerns in ``request_id``:
the handle's id, or else the ``x-fal-request-id`` fal put on its answer,
which is what fal's dashboard and support know a request by.

:func:`is_transient` says which errors are worth retrying: 429s, 5xx answers
fal did not mark final, and :class:`TransportError` (with
:class:`ImageUnavailableError`); every other error in the tree is final.  The
client retries transient errors itself on calls that are safe to repeat (the
numbers are in :mod:`pika_tasks.retry_policy`).  A submit is never retried
once it may have reached fal: a lost answer becomes
:class:`SubmitOutcomeUnknownError`, because fal has no idempotency key and a
second POST can bill a second video.

Errors travel between processes (Prefect pickles task failures): each one
unpickles with its attributes.

A few modules use private exceptions as signals between their own functions
(a manifest field's problem, a download whose ``Range`` was ignored); none
leaves its module.

Example:
    >>> from pika_tasks.errors import RateLimitError, is_transient
    >>> is_transient(RateLimitError("queue full", status_code=429))
    True
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pika_tasks._locations import display_location

__all__ = [
    "TRANSIENT_ERRORS",
    "AuthenticationError",
    "BudgetExceededError",
    "BudgetRefusedError",
    "ClaimLostError",
    "DownloadTimeoutError",
    "FalHTTPError",
    "FalValidationError",
    "ImageError",
    "ImageTooLargeError",
    "ImageUnavailableError",
    "JobFailedError",
    "ManifestError",
    "MissingKeyError",
    "PikaError",
    "RateLimitError",
    "ReportError",
    "RequestAbortedError",
    "RequestNotFoundError",
    "ResultExpiredError",
    "ServerError",
    "SubmitOutcomeUnknownError",
    "TransportError",
    "WaitTimeoutError",
    "is_transient",
]

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

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only attributes are not in ``args``: rebuild from both.
        return (_rebuild, (type(self), self.args, self.__dict__))


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


class ImageError(PikaError):
    """The image cannot be used: missing, not an image, too large, refused address...

    Attributes:
        image: the image's location, without secrets (http(s) URLs lose their
            query string, URLs naming a host their user info).
        reason: what is wrong with it.

    Example:
        >>> str(ImageError("https://cdn.example/a.png?sig=s3cret", "not found (HTTP 404)"))
        'https://cdn.example/a.png: not found (HTTP 404)'
    """

    def __init__(self, image: str, reason: str) -> None:
        self.image = display_location(image)
        self.reason = reason
        super().__init__(f"{self.image}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from our own arguments, not from the formatted message.
        return (type(self), (self.image, self.reason))


class ImageTooLargeError(ImageError):
    """The image's file is larger than ``ImageLimits.max_bytes``."""


class ImageUnavailableError(ImageError, TransportError):
    """The image could not be read for now: network error, timeout, 429, 5xx, or a
    store's own error (an FTP server's refusal...).  Transient: worth retrying."""


class ManifestError(PikaError):
    """The manifest cannot be read at all: missing, unknown format, no ``image`` column...

    Problems of single rows are not raised: they become
    :class:`~pika_tasks.manifest.RowError` items of
    :attr:`Manifest.errors <pika_tasks.manifest.Manifest.errors>` and the other
    rows are still used.
    """


def _usd(amount: float | Decimal) -> str:
    # As pika_tasks.budget.usd writes it; budget sits above this module.
    return f"${float(amount):,.2f}"


def _exact(amount: float | Decimal) -> Decimal:
    # str() first: Decimal(0.2) would carry the binary float's error.
    return amount if isinstance(amount, Decimal) else Decimal(str(amount))


class BudgetExceededError(PikaError):
    """A row was not submitted because its price would take the spend past the cap.

    Attributes:
        label: the row (or job) that was refused.
        amount_usd: its price.
        spent_usd: what was already committed.
        limit_usd: the cap.

    Example:
        >>> str(BudgetExceededError("row-7", 0.2, 0.9, 1.0))
        'row-7: not submitted: its $0.20 would take the spend to $1.10, over the cap of $1.00'
    """

    def __init__(self, label: str, amount_usd: float, spent_usd: float, limit_usd: float) -> None:
        self.label = label
        self.amount_usd = amount_usd
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        super().__init__(
            f"{label}: not submitted: its {_usd(amount_usd)} would take the spend to "
            f"{_usd(_exact(spent_usd) + _exact(amount_usd))}, over the cap of {_usd(limit_usd)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from our own arguments, not from the formatted message.
        return (type(self), (self.label, self.amount_usd, self.spent_usd, self.limit_usd))


class BudgetRefusedError(PikaError):
    """The whole run was refused: the rows certain to be submitted cost more than the cap.

    Every row that would have been submitted fails with this reason; nothing is paid.

    Example:
        >>> str(BudgetRefusedError("not started: 5 rows cost $1.00"))
        'not started: 5 rows cost $1.00'
    """


class ClaimLostError(PikaError):
    """Another run took the row's claim over before this run submitted it.

    A claim goes stale when its lease is not renewed in time (a stalled
    process, a store refusing writes).  The run that took it over makes the
    row; this one does not submit it.

    Example:
        >>> str(ClaimLostError("a: taken over by flow run 'two'"))
        "a: taken over by flow run 'two'"
    """


class ReportError(PikaError):
    """A run report cannot be read, or there is none where one was expected."""


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], attributes: dict[str, Any]) -> Any:
    """An error of ``cls`` with ``args`` and ``attributes``, its ``__init__`` skipped."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(attributes)
    return error


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (RateLimitError, ServerError, TransportError)


def is_transient(error: BaseException) -> bool:
    """True when retrying the same call later may succeed.

    fal can veto a retry of an otherwise transient answer (``retryable=False``).

    Example:
        >>> is_transient(ServerError("busy", status_code=503))
        True
        >>> is_transient(ServerError("start deadline passed", status_code=504, retryable=False))
        False
        >>> is_transient(ImageUnavailableError("s3://b/a.png", "cannot be read: timed out"))
        True
        >>> is_transient(ImageError("s3://b/a.png", "not found"))
        False
    """
    return isinstance(error, TRANSIENT_ERRORS) and getattr(error, "retryable", None) is not False
