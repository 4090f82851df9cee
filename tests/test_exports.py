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
        "share_cap",
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
    "pika_tasks.claims": [
        "CLAIMS_FOLDER",
        "Claim",
        "ClaimBook",
        "EXCLUSIVE_CREATE_PROTOCOLS",
        "Holder",
        "has_exclusive_create",
    ],
    "pika_tasks.cli": [
        "EXIT_OK",
        "EXIT_ROWS_FAILED",
        "EXIT_USAGE",
        "app",
        "main",
    ],
    "pika_tasks.concurrency": [
        "DEFAULT_LIMIT_NAME",
        "FalSlots",
        "limit_exists",
    ],
    "pika_tasks.contact_sheet": [
        "MAX_SHEET_BYTES",
        "PosterFrames",
        "SHEET_ROWS",
        "contact_sheet",
        "markdown_image",
        "poster_frames",
        "poster_frames_at",
        "sheet_label",
        "sheet_labels",
    ],
    "pika_tasks.emulator": [
        "EmulatorConfig",
        "EmulatorServer",
        "FaultRule",
        "create_app",
        "register_command",
    ],
    "pika_tasks.estimate": [
        "CostEstimate",
        "CostLine",
        "InvalidRow",
        "estimate_batch",
    ],
    "pika_tasks.events": [
        "RowEvent",
        "VIDEO_COMPLETED",
        "VIDEO_FAILED",
        "describe_row",
        "emit_described",
        "emit_row_event",
    ],
    "pika_tasks.flows": [
        "BatchResult",
        "image_to_video_batch",
        "image_to_video_scale_out",
        "process_inbox",
    ],
    "pika_tasks.flows.image_to_video": [
        "BatchResult",
        "image_to_video_batch",
    ],
    "pika_tasks.flows.inbox": [
        "PROCESSED_FOLDER",
        "known_manifests",
        "manifest_stem",
        "output_folder",
        "pending_manifests",
        "process_inbox",
    ],
    "pika_tasks.flows.scale_out": [
        "DEFAULT_BATCH_DEPLOYMENT",
        "image_to_video_scale_out",
        "recorded_outcome",
    ],
    "pika_tasks.keys": [
        "MAX_ASSET_KEY_LENGTH",
        "RESTRICTED",
        "artifact_key",
        "asset_key",
        "public_url",
    ],
    "pika_tasks.lineage": [
        "ASSET_MATERIALIZED",
        "ASSET_REFERENCED",
        "MATERIALIZED_BY",
        "VideoWritten",
        "describe_materialization",
        "describe_reference",
    ],
    "pika_tasks.pricing": [
        "PriceTable",
    ],
    "pika_tasks.progress": [
        "BatchProgress",
        "ProgressCallback",
        "ProgressTracker",
        "RowPhase",
        "RowWatcher",
    ],
    "pika_tasks.records": [
        "OutputLocation",
        "RecordState",
        "RowRecord",
        "fingerprint",
        "utc_now",
    ],
    "pika_tasks.shards": [
        "merged_run_name",
        "renumber",
        "reports_of_runs",
        "shard_line",
        "shard_run_name",
        "whole_runs",
        "write_shards",
    ],
    "pika_tasks.storage": [
        "AsyncSink",
        "TEMP_MARKER",
        "atomic_writer",
        "atomic_writer_async",
        "exists",
        "filesystem",
        "join",
        "protocols_of",
        "read_bytes",
        "read_text",
        "remove_files",
        "stale_partials",
        "temporary_name",
        "write_bytes_atomic",
        "write_text_atomic",
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


def public_modules() -> list[str]:
    """Every module of the package whose dotted path has no ``_private`` part."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            found.append(".".join(parts))
    return sorted(found)


def test_every_public_module_is_pinned() -> None:
    # A new module is private (``_name.py``) or says what it exports, and is pinned here.
    assert [name for name in public_modules() if name not in PUBLIC_NAMES] == []
