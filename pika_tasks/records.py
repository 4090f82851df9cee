"""What a batch leaves at its output location, and how a re-run reads it back.

For each row ``{id}``::

    {output}/{id}.mp4     the video, written atomically
    {output}/{id}.json    the row's record: inputs, fingerprint, request, outcome
    {output}/_runs/*.jsonl  one report per run (see :mod:`pika_tasks.pipeline`)

The record is written just before a submit (state ``submitting``) and again
right after it (``submitted``, with the request), before any waiting, so a
run that dies at any point can be resumed without paying twice: a later run
skips rows that are done, re-attaches to rows that were submitted, and only
submits rows that never reached the queue (or whose result expired).

fal has no idempotency key, so one window cannot be closed: a run killed
after fal accepted a submit but before its answer was recorded (or a submit
whose answer was lost) leaves a ``submitting`` record.  Whether fal queued
that job is unknown; such rows are reported and not submitted again unless
the caller says so (``resubmit_unknown``).

Example:
    >>> from pika_tasks.records import OutputLocation, RowRecord
    >>> out = OutputLocation("memory://records-doc")
    >>> out.save(RowRecord(id="a", state="failed", fingerprint="f", error="boom"))
    >>> out.load("a").error
    'boom'
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from pika_tasks.models import File, RequestHandle
from pika_tasks.storage import exists, filesystem, join, read_text, write_text_atomic

__all__ = [
    "OutputLocation",
    "RecordState",
    "RowRecord",
    "fingerprint",
    "utc_now",
]

RecordState = Literal["submitting", "submitted", "succeeded", "failed", "cancelled"]


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def fingerprint(inputs: dict[str, Any]) -> str:
    """A stable SHA-256 of a row's generation inputs (canonical JSON).

    >>> fingerprint({"b": 1, "a": 2}) == fingerprint({"a": 2, "b": 1})
    True
    """
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class RowRecord(BaseModel):
    """The sidecar ``{id}.json``: everything known about one row's video."""

    id: str
    state: RecordState
    fingerprint: str
    row: dict[str, Any] = Field(default_factory=dict)
    request: RequestHandle | None = None
    flow_run_id: str | None = None
    # The run that sent the submit; unlike flow_run_id, kept when another run re-attaches.
    submitted_by: str | None = None
    seed: int | None = None
    submitted_at: str | None = None
    completed_at: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    video: File | None = None
    output: str | None = None
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    error: str | None = None


class OutputLocation:
    """The output folder of a batch, on any fsspec filesystem."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/") or url
        self.storage_options = storage_options or {}

    def __repr__(self) -> str:
        return f"OutputLocation({self.url!r})"

    def video_url(self, row_id: str) -> str:
        """Where a row's MP4 goes."""
        return join(self.url, f"{row_id}.mp4")

    def record_url(self, row_id: str) -> str:
        """Where a row's sidecar record goes."""
        return join(self.url, f"{row_id}.json")

    def load(self, row_id: str) -> RowRecord | None:
        """The row's record, or None when there is none (or it is unreadable)."""
        url = self.record_url(row_id)
        if not exists(url, self.storage_options):
            return None
        try:
            return RowRecord.model_validate_json(read_text(url, self.storage_options))
        except ValueError:
            # A record we cannot read is treated as absent: the row is redone.
            return None

    def save(self, record: RowRecord) -> None:
        """Write the row's record atomically and durably.

        Durably (on a local disk, the file reaches the disk before its name): a
        record lost to a power cut after fal queued its job would let the next
        run pay for the row again.
        """
        write_text_atomic(
            self.record_url(record.id),
            record.model_dump_json(indent=2),
            self.storage_options,
            durable=True,
        )

    def video_exists(self, record: RowRecord | None) -> bool:
        """True when the record's video is at its place with the recorded size."""
        if record is None or record.output is None:
            return False
        fs, path = filesystem(record.output, self.storage_options)
        try:
            return bool(fs.size(path) == record.size)
        except FileNotFoundError:
            return False

    def records(self) -> list[RowRecord]:
        """Every readable row record at this location."""
        fs, path = filesystem(self.url, self.storage_options)
        if not fs.exists(path):
            return []
        names = [posixpath.basename(p) for p in fs.ls(path, detail=False) if p.endswith(".json")]
        found = (self.load(name.removesuffix(".json")) for name in sorted(names))
        return [record for record in found if record is not None]

    def recorded_ids(self) -> set[str]:
        """The ids of every row with a record here, from one listing of the folder."""
        fs, path = filesystem(self.url, self.storage_options)
        try:
            names = fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError:
            return set()
        finally:
            # A listing cached now would answer later existence checks with old news.
            fs.invalidate_cache(path)
        return {
            posixpath.basename(name).removesuffix(".json")
            for name in names
            if name.endswith(".json")
        }
