"""Counters the emulator keeps, served as JSON at ``GET /_emulator/stats``.

Example:
    >>> from pika_tasks.emulator._stats import Stats
    >>> stats = Stats()
    >>> stats.count_request("status")
    >>> stats.as_dict(in_progress=0, queued=0)["requests"]
    {'status': 1}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Stats:
    """What happened since start (or the last reset).

    ``completed`` counts every job that reached COMPLETED; ``succeeded`` and
    ``failed`` split it (cancelled and timed-out jobs count as failed).
    """

    submissions: int = 0
    cancellations: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    max_in_progress: int = 0
    started: int = 0
    completed: int = 0
    succeeded: int = 0
    failed: int = 0
    failures_by_type: Counter[str] = field(default_factory=Counter)
    bytes_served: int = 0
    downloads: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    submit_options: Counter[str] = field(default_factory=Counter)
    renders: int = 0
    render_cache_hits: int = 0
    render_seconds: float = 0.0
    expired_results: int = 0
    webhooks_sent: int = 0
    webhooks_failed: int = 0
    webhook_retries: int = 0

    def reset(self) -> None:
        """Zero every counter, in place (other objects hold this instance)."""
        fresh = Stats()
        for item in fields(self):
            setattr(self, item.name, getattr(fresh, item.name))

    def count_request(self, route: str) -> None:
        """Count one request to ``route``."""
        self.requests[route] += 1

    def count_fault(self, kind: str) -> None:
        """Count one injected fault of ``kind``."""
        self.faults[kind] += 1

    def note_in_progress(self, in_progress: int) -> None:
        """Record the number of running jobs after a start."""
        self.started += 1
        self.max_in_progress = max(self.max_in_progress, in_progress)

    def note_completed(self, error_type: str | None) -> None:
        """Record a job reaching COMPLETED, with its error type if it failed."""
        self.completed += 1
        if error_type is None:
            self.succeeded += 1
        else:
            self.failed += 1
            self.failures_by_type[error_type] += 1

    def as_dict(self, *, in_progress: int, queued: int) -> dict[str, Any]:
        """The JSON view, with the live gauges passed in."""
        return {
            "submissions": self.submissions,
            "cancellations": self.cancellations,
            "requests": dict(self.requests),
            "in_progress": in_progress,
            "max_in_progress": self.max_in_progress,
            "queued": queued,
            "started": self.started,
            "completed": self.completed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failures_by_type": dict(self.failures_by_type),
            "bytes_served": self.bytes_served,
            "downloads": self.downloads,
            "uploads": self.uploads,
            "upload_bytes": self.upload_bytes,
            "faults": dict(self.faults),
            "rejected": dict(self.rejected),
            "submit_options": dict(self.submit_options),
            "renders": self.renders,
            "render_cache_hits": self.render_cache_hits,
            "render_seconds": round(self.render_seconds, 3),
            "expired_results": self.expired_results,
            "webhooks": {
                "sent": self.webhooks_sent,
                "failed": self.webhooks_failed,
                "retries": self.webhook_retries,
            },
        }
