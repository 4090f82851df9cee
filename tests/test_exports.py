"""The public surface, pinned: each public module's ``__all__`` is exactly the names
below, every name in it exists, and every package says what it exports.  A change
to the public API shows up here, on purpose (as in httpx's test_exported_members)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pika_tasks"

PUBLIC_NAMES: dict[str, list[str]] = {
    "pika_tasks": [
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
    ],
    "pika_tasks.errors": [
        "AuthenticationError",
        "BudgetExceededError",
        "BudgetRefusedError",
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
        "TRANSIENT_ERRORS",
        "TransportError",
        "WaitTimeoutError",
        "is_transient",
    ],
    "pika_tasks.settings": [
        "DEFAULT_ENDPOINT_ID",
        "DEFAULT_QUEUE_URL",
        "DEFAULT_STORAGE_URL",
        "PikaSettings",
    ],
    "pika_tasks.models": [
        "CancelResponse",
        "DURATIONS",
        "DownloadInfo",
        "DownloadedFile",
        "Duration",
        "File",
        "ImageToVideoInput",
        "ImageToVideoOutput",
        "Priority",
        "QueueState",
        "QueueStatus",
        "RESOLUTIONS",
        "RequestHandle",
        "RequestOptions",
        "Resolution",
    ],
    "pika_tasks.retry_policy": [
        "MAX_RETRY_AFTER",
        "RetryPolicy",
        "TASK_RETRIES",
    ],
    "pika_tasks.images": [
        "DEFAULT_LIMITS",
        "DeliveredImage",
        "ImageCheck",
        "ImageError",
        "ImageLimits",
        "ImageSource",
        "ImageTooLargeError",
        "ImageUnavailableError",
        "Uploader",
        "check_image",
        "deliver_image",
        "deliver_image_url",
        "inspect_image",
    ],
    "pika_tasks.manifest": [
        "KNOWN_COLUMNS",
        "MAX_ID_LENGTH",
        "MAX_PROMPT_CHARS",
        "MAX_ROW_CHARS",
        "MAX_SEED",
        "Manifest",
        "ManifestError",
        "ManifestFormat",
        "ManifestRow",
        "RowDefaults",
        "RowError",
        "auto_id",
        "check_id",
        "is_safe_id",
        "iter_manifest",
        "read_manifest",
    ],
    "pika_tasks.pipeline": [
        "Action",
        "BatchLimits",
        "BatchResult",
        "ClientSteps",
        "DEFAULT_LIMIT_NAME",
        "FirstPass",
        "HeldElsewhere",
        "Location",
        "ManifestScan",
        "Planner",
        "RUNS_FOLDER",
        "ReportError",
        "ReportWriter",
        "RowClaims",
        "RowContext",
        "RowOutcome",
        "RowPlan",
        "RowStatus",
        "RowSteps",
        "RunReport",
        "copy_video",
        "decide",
        "invalid_row_outcome",
        "read_report",
        "read_reports",
        "report_name",
        "report_urls",
        "row_fingerprint",
        "run_row",
        "scan_manifest",
        "started",
        "stream_rows",
    ],
    "pika_tasks.budget": [
        "Budget",
        "BudgetExceededError",
        "BudgetRefusedError",
        "total_usd",
        "usd",
    ],
    "pika_tasks.client": [
        "PikaClient",
    ],
    "pika_tasks.tasks": [
        "FAL_TAG",
        "fetch_video",
        "open_client",
        "retry_on_transient",
        "submit_image_to_video",
        "wait_for_completion",
    ],
    "pika_tasks.credentials": [
        "FalCredentials",
        "LOGO_URL",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_the_public_names_are_pinned(module: str) -> None:
    assert sorted(importlib.import_module(module).__all__) == PUBLIC_NAMES[module]


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_every_exported_name_exists(module: str) -> None:
    loaded = importlib.import_module(module)
    missing = [name for name in loaded.__all__ if not hasattr(loaded, name)]
    assert missing == []


def test_the_package_lists_every_name_it_gives() -> None:
    import pika_tasks

    assert dir(pika_tasks) == sorted(pika_tasks.__all__)


def test_every_package_has_all() -> None:
    packages = sorted(
        ".".join(("pika_tasks", *path.parent.relative_to(PACKAGE).parts)).rstrip(".")
        for path in PACKAGE.rglob("__init__.py")
    )
    without = [name for name in packages if not hasattr(importlib.import_module(name), "__all__")]
    assert without == []
