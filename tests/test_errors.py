"""The error tree: every exception the package raises is a PikaError from one module,
is_transient says which are worth retrying, and each survives pickling (Prefect
pickles task failures) with its attributes."""

from __future__ import annotations

import inspect
import pickle

import pytest

import pika_tasks.errors as errors_module
from pika_tasks import budget, images, manifest, pipeline
from pika_tasks.errors import (
    AuthenticationError,
    BudgetExceededError,
    BudgetRefusedError,
    ClaimLostError,
    DownloadTimeoutError,
    FalHTTPError,
    FalValidationError,
    ImageError,
    ImageTooLargeError,
    ImageUnavailableError,
    JobFailedError,
    ManifestError,
    MissingKeyError,
    PikaError,
    RateLimitError,
    ReportError,
    RequestAbortedError,
    RequestNotFoundError,
    ResultExpiredError,
    ServerError,
    SubmitOutcomeUnknownError,
    TransportError,
    WaitTimeoutError,
    is_transient,
)

# One instance of every error in the tree, with what is_transient must say of it.
EXAMPLES: list[tuple[PikaError, bool]] = [
    (MissingKeyError(), False),
    (FalHTTPError("teapot", status_code=418, request_id="r1"), False),
    (AuthenticationError("locked", status_code=403, detail="Exhausted balance"), False),
    (FalValidationError("bad input", status_code=422, detail=[{"loc": ["body"]}]), False),
    (RateLimitError("queue full", status_code=429, retry_after=2.0), True),
    (RequestAbortedError("gone", status_code=499, error_type="client_cancelled"), False),
    (ServerError("busy", status_code=503, error_type="runner_scheduling_failure"), True),
    (ServerError("your deadline", status_code=504, retryable=False), False),
    (RequestNotFoundError("unknown", status_code=404, request_id="r2"), False),
    (ResultExpiredError("expired", status_code=410, request_id="r3"), False),
    (TransportError("connection reset"), True),
    (DownloadTimeoutError("too slow"), False),
    (SubmitOutcomeUnknownError("lost answer", request_id="r4"), False),
    (JobFailedError("failed", request_id="r5", error_type="runner_server_error"), False),
    (WaitTimeoutError("late", request_id="r6"), False),
    (ImageError("s3://b/a.png", "not found"), False),
    (ImageTooLargeError("s3://b/a.png", "is larger than the limit of 10 bytes"), False),
    (ImageUnavailableError("ftp://h/a.png", "cannot be read: 421"), True),
    (ManifestError("no image column"), False),
    (BudgetExceededError("row-1", 0.2, 0.9, 1.0), False),
    (BudgetRefusedError("not started: 5 rows cost $1.00"), False),
    (ClaimLostError("a: taken over by flow run 'two'"), False),
    (ReportError("cannot read the run report"), False),
]


def error_classes() -> set[type[BaseException]]:
    return {
        value
        for value in vars(errors_module).values()
        if inspect.isclass(value) and issubclass(value, BaseException)
    }


def test_the_examples_cover_every_error_of_the_tree() -> None:
    assert {type(error) for error, _ in EXAMPLES} | {PikaError} == error_classes()


def test_every_error_is_a_pika_error_named_in_the_tree_drawing() -> None:
    doc = errors_module.__doc__ or ""
    for cls in error_classes():
        assert issubclass(cls, PikaError), cls
        assert f" {cls.__name__} " in doc or cls is PikaError, f"{cls.__name__} is not drawn"


@pytest.mark.parametrize(("error", "transient"), EXAMPLES, ids=lambda e: type(e).__name__)
def test_is_transient_covers_every_error(error: PikaError, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(("error", "transient"), EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_error_survives_pickling(error: PikaError, transient: bool) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
    assert is_transient(copy) is transient


def test_an_image_error_never_shows_a_urls_secrets() -> None:
    error = ImageUnavailableError("https://u:pw@cdn.example/a.png?sig=s3cret", "timed out")
    assert error.image == "https://cdn.example/a.png"
    assert "s3cret" not in str(error)
    assert "pw" not in str(error)


def test_the_old_import_places_of_public_errors_still_work() -> None:
    assert images.ImageError is ImageError
    assert images.ImageUnavailableError is ImageUnavailableError
    assert budget.BudgetExceededError is BudgetExceededError
    assert budget.BudgetRefusedError is BudgetRefusedError
    assert manifest.ManifestError is ManifestError
    assert pipeline.ReportError is ReportError
