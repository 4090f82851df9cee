"""The emulator's configuration: one frozen dataclass with a default for every field.

Example:
    >>> from pika_tasks.emulator._config import EmulatorConfig
    >>> config = EmulatorConfig(runners=4, job_seconds=0.5)
    >>> config.runners, config.fps
    (4, 24)
    >>> config.replace(fast=True).fast
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pika_tasks.emulator._rules import FaultRule

ENDPOINT_ID = "fal-ai/pika/v2.2/image-to-video"
"""The model endpoint the emulator serves (owner/app/path)."""

APP_PREFIX = "fal-ai/pika"
"""The owner/app prefix under which the live queue serves status, result and cancel."""

QUEUE_ROUTES: frozenset[str] = frozenset({"submit", "status", "status_stream", "result", "cancel"})
"""Route names of the queue API."""

STORAGE_ROUTES: frozenset[str] = frozenset({"storage_initiate", "storage_upload"})
"""Route names of the storage upload API."""

FILE_ROUTE = "file"
"""Route name of file downloads (videos and uploaded files)."""

ALL_ROUTES: frozenset[str] = QUEUE_ROUTES | STORAGE_ROUTES | {FILE_ROUTE}
"""Every route name that counts requests and can take injected faults."""

DEFAULT_FAULT_ROUTES: frozenset[str] = QUEUE_ROUTES | {FILE_ROUTE}
"""Routes the fault rates apply to unless ``fault_routes`` says otherwise."""

CancelRunning = Literal["stop", "finish"]


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulated queue behaves. Every field has a default.

    Attributes:
        runners: jobs IN_PROGRESS at once (fal gives a new account 2).
        job_seconds: how long a job stays IN_PROGRESS (at least as long as
            its video takes to render).
        job_jitter: +- fraction of ``job_seconds``, decided per job from ``seed``.
        seed: seed of every random decision (jitter, faults, motion) and of the
            key webhooks are signed with.
        require_key: when set, ``Authorization: Key <it>`` is required (else 401).
        fast: load-test mode: each distinct video is rendered once and reused,
            fetched images are cached, and rendering uses one thread.
        fps: frame rate of rendered videos; a video has ``duration * fps`` frames.
        error_rate_5xx: fraction of answers per route replaced by a 503.
        error_rate_429: fraction of answers per route replaced by a 429.
        fault_routes: route names the two rates above apply to (default: the
            queue routes and file downloads; see :data:`ALL_ROUTES`).
        drop_download_rate: fraction of video downloads cut part-way.
        job_failure_rate: fraction of jobs that COMPLETE with an error.
        runner_failure_rate: fraction of jobs whose first runner fails part-way:
            the job goes back to IN_QUEUE once, then runs to completion.
        result_ttl_seconds: results and their videos expire (404) this long
            after completion; ``None`` keeps them for the server's lifetime.
        min_video_bytes: pad each MP4 (with a valid ``free`` box) to at least
            this many bytes; the padding is generated while streaming.
        image_max_bytes: largest input image accepted (fetched, uploaded or data URI).
        image_fetch_timeout: total time allowed to fetch an http(s) ``image_url``.
        keepalive_seconds: interval of ``: ping`` comments on an idle status stream.
        retry_after_seconds: value of the ``Retry-After`` header on a 429.
        cancel_running: what a runner does when its running job is cancelled:
            ``"stop"`` ends it as a cancelled job at once, ``"finish"`` ignores
            the signal and completes normally (fal allows both).
        faults: scripted faults armed at start, as :class:`~pika_tasks.emulator._rules.FaultRule`
            objects or their ``ROUTE=FAULT`` texts;
            more can be added while the server runs (``POST /_emulator/faults``).
        webhook_retry_span: seconds over which the 10 retries of an undelivered
            webhook are spread, each wait twice the one before (fal: two hours).
        webhook_timeout: seconds a webhook receiver has to answer each delivery.
    """

    runners: int = 2
    job_seconds: float = 3.0
    job_jitter: float = 0.0
    seed: int = 0
    require_key: str | None = None
    fast: bool = False
    fps: int = 24
    error_rate_5xx: float = 0.0
    error_rate_429: float = 0.0
    fault_routes: frozenset[str] | None = None
    drop_download_rate: float = 0.0
    job_failure_rate: float = 0.0
    runner_failure_rate: float = 0.0
    result_ttl_seconds: float | None = None
    min_video_bytes: int = 0
    image_max_bytes: int = 25_000_000
    image_fetch_timeout: float = 10.0
    keepalive_seconds: float = 15.0
    retry_after_seconds: float = 1.0
    cancel_running: CancelRunning = "stop"
    render_threads: int | None = field(default=None)
    faults: tuple[FaultRule, ...] = ()
    webhook_retry_span: float = 7200.0
    webhook_timeout: float = 15.0

    def __post_init__(self) -> None:
        if self.runners < 1:
            raise ValueError(f"runners must be at least 1, got {self.runners!r}")
        if self.job_seconds < 0:
            raise ValueError(f"job_seconds must not be negative, got {self.job_seconds!r}")
        if not 0.0 <= self.job_jitter < 1.0:
            raise ValueError(f"job_jitter must be in [0, 1), got {self.job_jitter!r}")
        if not 1 <= self.fps <= 120:
            raise ValueError(f"fps must be between 1 and 120, got {self.fps!r}")
        for name in (
            "error_rate_5xx",
            "error_rate_429",
            "drop_download_rate",
            "job_failure_rate",
            "runner_failure_rate",
        ):
            _check_rate(name, getattr(self, name))
        if self.result_ttl_seconds is not None and self.result_ttl_seconds <= 0:
            raise ValueError("result_ttl_seconds must be positive or None")
        if self.min_video_bytes < 0:
            raise ValueError("min_video_bytes must not be negative")
        if self.image_max_bytes < 1 or self.image_fetch_timeout <= 0:
            raise ValueError("image_max_bytes and image_fetch_timeout must be positive")
        if self.keepalive_seconds <= 0 or self.retry_after_seconds < 0:
            raise ValueError("keepalive_seconds must be positive, retry_after_seconds >= 0")
        if self.cancel_running not in ("stop", "finish"):
            raise ValueError("cancel_running must be 'stop' or 'finish'")
        if self.render_threads is not None and self.render_threads < 1:
            raise ValueError("render_threads must be at least 1 or None")
        if self.webhook_retry_span < 0 or self.webhook_timeout <= 0:
            raise ValueError("webhook_retry_span must be >= 0 and webhook_timeout positive")
        self._check_faults()
        if self.fault_routes is not None:
            routes = frozenset(_as_iterable(self.fault_routes))
            unknown = routes - ALL_ROUTES
            if unknown:
                raise ValueError(
                    f"unknown fault_routes {sorted(unknown)}; known: {sorted(ALL_ROUTES)}"
                )
            object.__setattr__(self, "fault_routes", routes)

    def _check_faults(self) -> None:
        # Imported here: the rules module needs this one's route names.
        from pika_tasks.emulator._rules import FaultRule

        rules = tuple(
            FaultRule.parse(rule) if isinstance(rule, str) else rule for rule in self.faults
        )
        if not all(isinstance(rule, FaultRule) for rule in rules):
            raise ValueError("faults must be FaultRule objects or 'ROUTE=FAULT' texts")
        object.__setattr__(self, "faults", rules)

    @property
    def faulty_routes(self) -> frozenset[str]:
        """The routes the 5xx and 429 rates apply to."""
        return DEFAULT_FAULT_ROUTES if self.fault_routes is None else self.fault_routes

    def replace(self, **overrides: Any) -> EmulatorConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **overrides) if overrides else self


def _as_iterable(value: Iterable[str] | str) -> Iterable[str]:
    return [value] if isinstance(value, str) else value


def build_config(config: EmulatorConfig | None = None, **overrides: Any) -> EmulatorConfig:
    """``config`` (or the defaults) with ``overrides`` applied.

    Raises:
        TypeError: an override names no field of :class:`EmulatorConfig`.
    """
    return (config or EmulatorConfig()).replace(**overrides)
