"""The queue engine: jobs, runners, timing, faults and completion, on one event loop.

Every method runs on the server's event loop (the HTTP handlers call them
directly), so the state needs no locks.  Only rendering leaves the loop, in
the :class:`~pika_tasks.emulator._producer.VideoProducer`'s threads; other
threads read counters through :meth:`Engine.stats_threadsafe`.

A job's life:

1. :meth:`Engine.submit` queues it (``low`` priority behind ``normal``).
2. When fewer than ``runners`` jobs run, the next one starts: IN_PROGRESS.
3. It stays IN_PROGRESS ``job_seconds`` (+- jitter), or until its video is
   rendered if that takes longer; an unreadable image fails it at once.
4. It COMPLETES with a video, or with an error (see
   :mod:`~pika_tasks.emulator._job_errors`); the webhook, if any, is called.

Example:
    >>> from pika_tasks.emulator._config import EmulatorConfig
    >>> from pika_tasks.emulator._engine import Engine
    >>> Engine(EmulatorConfig(runners=3)).stats_snapshot()["in_progress"]
    0
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import httpx

from pika_tasks.emulator import _job_errors as job_errors
from pika_tasks.emulator._config import EmulatorConfig
from pika_tasks.emulator._faults import FaultPlan
from pika_tasks.emulator._files import FileStore, StoredFile
from pika_tasks.emulator._images import ImageInputError
from pika_tasks.emulator._jobs import Job, JobError, JobVideo, SubmitOptions
from pika_tasks.emulator._producer import RenderedVideo, VideoProducer
from pika_tasks.emulator._queue import JobQueue
from pika_tasks.emulator._signing import WebhookSigner
from pika_tasks.emulator._stats import Stats
from pika_tasks.emulator._webhooks import deliver_webhook
from pika_tasks.models import ImageToVideoInput

logger = logging.getLogger(__name__)

T = TypeVar("T")

CancelOutcome = Literal["CANCELLATION_REQUESTED", "ALREADY_COMPLETED"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_INLINE_KEEP = 64


def derived_seed(request: ImageToVideoInput) -> int:
    """The seed used when a request gives none: a hash of its image and prompts.

    The same request therefore always renders the same video.
    """
    text = "\x1f".join([request.image_url, request.prompt, request.negative_prompt])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") >> 1


class Engine:
    """The emulated queue and its runners."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.faults = FaultPlan(config)
        self.files = FileStore()
        self.producer = VideoProducer(config, self.stats)
        self.signer = WebhookSigner(config.seed)
        self.jobs: dict[str, Job] = {}
        self.closing = False
        self.paused = False
        self._queue: JobQueue[Job] = JobQueue()
        self._running: set[Job] = set()
        self._watchers: set[Job] = set()
        self._start_timers: dict[Job, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._uploads: dict[str, tuple[str, str]] = {}
        self._labels: dict[str, str] = {}
        self._upload_count = 0
        self._seq = 0
        self._last_sweep = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._webhook_client: httpx.AsyncClient | None = None

    # -- lifecycle -------------------------------------------------------------

    def bind(self) -> None:
        """Remember the running loop (for :meth:`stats_threadsafe`)."""
        self._loop = asyncio.get_running_loop()

    def begin_shutdown(self) -> None:
        """Stop starting jobs and end every open status stream."""
        self.closing = True
        for job in self.jobs.values():
            job.notify()

    def begin_shutdown_threadsafe(self) -> None:
        """:meth:`begin_shutdown` from any thread (no-op when the loop is not running)."""
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self.begin_shutdown)

    async def aclose(self) -> None:
        """Cancel running work and release threads and connections."""
        self.begin_shutdown()
        for timer in self._start_timers.values():
            timer.cancel()
        self._start_timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._webhook_client is not None:
            await self._webhook_client.aclose()
            self._webhook_client = None
        await self.producer.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Future[Any]) -> None:
        """Forget a finished task; log it if it failed unexpectedly.

        A render can outlive its job (cancelled meanwhile): its outcome,
        including a bad-image error, is then of no interest.
        """
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and not isinstance(error, ImageInputError):
            logger.error("emulator task failed", exc_info=error)

    # -- queries ---------------------------------------------------------------

    def get(self, request_id: str) -> Job | None:
        """The job with this id, or ``None``."""
        return self.jobs.get(request_id)

    def queue_position(self, job: Job) -> int | None:
        """How many jobs start before ``job``, or ``None`` if it is not queued."""
        return self._queue.position(job)

    @property
    def queued(self) -> int:
        """Number of jobs waiting for a runner."""
        return len(self._queue)

    @property
    def in_progress(self) -> int:
        """Number of jobs running now."""
        return len(self._running)

    def result_expired(self, job: Job, now: float | None = None) -> bool:
        """Whether the job's result has expired."""
        now = time.monotonic() if now is None else now
        return job.result_expires_at is not None and now >= job.result_expires_at

    def fault_subject(self, name: str) -> str:
        """A stable label for a random name (request id, file name, upload token).

        Fault decisions are keyed on it, so that they depend on the seed and
        the order of submissions and uploads, not on random ids.
        """
        return self._labels.get(name, name)

    def watch(self, job: Job) -> asyncio.Event:
        """An event set at the job's next change (status, position or logs)."""
        self._watchers.add(job)
        return job.watch()

    # -- submit, start, cancel -------------------------------------------------

    def submit(self, request: ImageToVideoInput, options: SubmitOptions, base_url: str) -> Job:
        """Queue a job and start it if a runner is free."""
        self._seq += 1
        job = Job(
            request_id=str(uuid.uuid4()),
            seq=self._seq,
            input=request,
            options=options,
            base_url=base_url,
            seed=request.seed if request.seed is not None else derived_seed(request),
        )
        self.jobs[job.request_id] = job
        self._labels[job.request_id] = self._labels[f"{job.request_id}.mp4"] = f"job-{job.seq}"
        self.stats.submissions += 1
        for name in options.headers:
            self.stats.submit_options[name] += 1
        if options.webhook_url is not None:
            self.stats.submit_options["fal_webhook"] += 1
        self._queue.push(job, seq=job.seq, priority=options.priority)
        if options.start_timeout is not None:
            loop = asyncio.get_running_loop()
            self._start_timers[job] = loop.call_later(
                options.start_timeout, self._start_deadline_passed, job
            )
        self._dispatch()
        self._sweep()
        return job

    def _dispatch(self) -> None:
        started = False
        while not (self.closing or self.paused) and len(self._running) < self.config.runners:
            job = self._queue.pop()
            if job is None:
                break
            self._start(job)
            started = True
        if started:
            self._notify_queued()

    def pause(self) -> None:
        """Start no more jobs: new and queued jobs wait IN_QUEUE, running ones go on.

        As when fal has no runner to give: nothing is refused, everything waits.
        """
        self.paused = True

    def resume(self) -> None:
        """Start jobs again, as runners allow."""
        self.paused = False
        self._dispatch()

    def expire_results(
        self, request_ids: Iterable[str] | None = None, *, videos_only: bool = False
    ) -> list[str]:
        """Expire now the results and videos of completed jobs (all, or those named).

        What ``result_ttl_seconds`` does after a while, at once: a test of
        expiry need not wait on the clock.  With ``videos_only`` the results
        stay and only the videos go, as a short object lifecycle does
        (``X-Fal-Object-Lifecycle-Preference``).  Returns the ids expired, sorted.
        """
        now = time.monotonic()
        wanted = None if request_ids is None else set(request_ids)
        expired: list[str] = []
        for job in self.jobs.values():
            if job.state != "COMPLETED" or (wanted is not None and job.request_id not in wanted):
                continue
            if not videos_only:
                job.result_expires_at = now
            if job.video is not None:
                stored = self.files.get(job.video.file_name, now=now)
                if stored is not None:
                    stored.expires_at = now
            expired.append(job.request_id)
        return sorted(expired)

    def _notify_queued(self) -> None:
        watchers, self._watchers = self._watchers, set()
        for job in watchers:
            job.notify()

    def _start(self, job: Job) -> None:
        timer = self._start_timers.pop(job, None)
        if timer is not None:
            timer.cancel()
        job.state = "IN_PROGRESS"
        job.attempts += 1
        job.started_at = time.monotonic()
        job.log(f"Runner picked up the request (attempt {job.attempts}).")
        self._running.add(job)
        self.stats.note_in_progress(len(self._running))
        job.notify()
        self._spawn(self._run(job))

    def _start_deadline_passed(self, job: Job) -> None:
        self._start_timers.pop(job, None)
        if job.state == "IN_QUEUE" and self._queue.remove(job):
            assert job.options.start_timeout is not None
            self._finish(job, error=job_errors.start_timeout(job.options.start_timeout))
            self._notify_queued()

    def cancel(self, job: Job) -> CancelOutcome:
        """Cancel ``job``: a queued job is removed, a running one is signalled."""
        if job.state == "COMPLETED":
            return "ALREADY_COMPLETED"
        self.stats.cancellations += 1
        if job.state == "IN_QUEUE":
            self._queue.remove(job)
            self._finish(job, error=job_errors.cancelled())
            self._notify_queued()
        else:
            job.cancel_requested = True
            job.cancel_signal.set()
            job.log("Cancellation requested.", "WARNING")
            job.notify()
        return "CANCELLATION_REQUESTED"

    # -- running ---------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        try:
            await self._attempt(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the job IN_PROGRESS forever
            logger.exception("job %s failed inside the emulator", job.request_id)
            if job.state != "COMPLETED":
                self._finish(job, error=job_errors.emulator_bug(exc))
        finally:
            self._running.discard(job)
            self._dispatch()

    async def _attempt(self, job: Job) -> None:
        assert job.started_at is not None
        seconds = self.faults.job_seconds(job.seq, job.attempts)
        if job.attempts == 1 and self.faults.runner_fails(job.seq):
            self.stats.count_fault("runner_failure")
            if await self._hold(job, None, job.started_at + seconds / 2.0):
                self._finish(job, error=job_errors.cancelled())
            elif job.options.no_retry:
                self._finish(job, error=job_errors.runner_disconnected())
            else:
                await self._requeue(job, pause=min(2.0, max(0.05, seconds / 2.0)))
            return

        doomed = self.faults.job_fails(job.seq)
        produce = None if doomed else self._spawn(self._produce(job))
        if await self._hold(job, produce, job.started_at + seconds):
            self._finish(job, error=job_errors.cancelled())
            return
        if doomed:
            self.stats.count_fault("job_failure")
            self._finish(job, error=job_errors.internal_failure())
            return
        assert produce is not None
        try:
            video: RenderedVideo = await produce
        except ImageInputError as exc:
            self._finish(job, error=job_errors.image_failure(exc, job.input.image_url))
        else:
            self._finish(job, video=video)

    @staticmethod
    def _forget_inline_image(job: Job) -> None:
        """Replace a large ``data:`` URI by a short summary once it has been read.

        Keeps thousands of finished jobs from holding megabytes of base64 each.
        """
        url = job.input.image_url
        if url.startswith("data:") and len(url) > _INLINE_KEEP:
            digest = hashlib.sha256(url.encode()).hexdigest()[:16]
            summary = f"{url[:_INLINE_KEEP]}...({len(url)} characters, sha256 {digest}...)"
            job.input = job.input.model_copy(update={"image_url": summary})

    async def _hold(self, job: Job, produce: asyncio.Future[Any] | None, until: float) -> bool:
        """Keep ``job`` running until ``until`` and ``produce`` is done.

        Returns early when ``produce`` fails.  Returns True when the job was
        cancelled and runners honour cancellation (``cancel_running="stop"``).
        """
        stop_on_cancel = self.config.cancel_running == "stop"
        while True:
            if stop_on_cancel and job.cancel_signal.is_set():
                return True
            if (
                produce is not None
                and produce.done()
                and (produce.cancelled() or produce.exception() is not None)
            ):
                return False
            remaining = until - time.monotonic()
            pending: set[asyncio.Future[Any]] = set()
            if produce is not None and not produce.done():
                pending.add(produce)
            if remaining <= 0 and not pending:
                return False
            if stop_on_cancel:
                pending.add(asyncio.ensure_future(job.cancel_signal.wait()))
            timeout = remaining if remaining > 0 else None
            if pending:
                _, waiting = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for future in waiting:
                    if future is not produce:
                        future.cancel()
            else:
                await asyncio.sleep(remaining)

    async def _requeue(self, job: Job, *, pause: float) -> None:
        """Put a job whose runner failed back in the queue, at its front.

        The job shows IN_QUEUE (position 0) for ``pause`` seconds before it
        can be picked up again, as fal takes a moment to re-dispatch it; its
        runner slot is free meanwhile.
        """
        job.log("Runner disconnected; the request goes back to the queue.", "WARNING")
        job.state = "IN_QUEUE"
        # fal tries the request again under a new gateway id (webhooks report the last).
        job.gateway_request_id = str(uuid.uuid4())
        self._running.discard(job)
        job.notify()
        self._dispatch()
        await asyncio.sleep(pause)
        if job.state == "IN_QUEUE" and not self.closing:
            self._queue.push(job, seq=job.seq, priority=job.options.priority, front=True)
            self._notify_queued()

    async def _produce(self, job: Job) -> RenderedVideo:
        request = job.input
        data = await self.producer.image_bytes(
            request.image_url, lambda url: self.local_file_bytes(url, job.base_url)
        )
        spec = self.producer.spec_for(request)
        motion = self.producer.motion_for(request, job.seed)
        job.log(
            f"Rendering {spec.frames} frames at {spec.width}x{spec.height}, {spec.fps} fps; "
            f"camera: {motion.label}; seed {job.seed}."
        )
        job.notify()
        video = await self.producer.render(data, spec, motion)
        if job.state == "IN_PROGRESS":  # not cancelled meanwhile
            job.log(f"Encoded {video.size} bytes of H.264 in {video.seconds:.2f} s.")
            job.notify()
        return video

    def _finish(
        self, job: Job, *, video: RenderedVideo | None = None, error: JobError | None = None
    ) -> None:
        now = time.monotonic()
        job.state = "COMPLETED"
        job.completed_at = now
        if job.started_at is not None:
            job.inference_time = round(now - job.started_at, 3)
        ttl = self.config.result_ttl_seconds
        job.result_expires_at = now + ttl if ttl is not None else None
        if video is not None:
            name = f"{job.request_id}.mp4"
            file_ttl = job.options.object_expiry_seconds or ttl
            self.files.put(
                name,
                StoredFile(
                    video.data,
                    content_type="video/mp4",
                    zeros=video.zeros,
                    expires_at=now + file_ttl if file_ttl is not None else None,
                    is_video=True,
                ),
            )
            job.video = JobVideo(file_name=name, file_size=video.size)
            job.log("Request completed.")
        else:
            job.error = error or job_errors.internal_failure()
            job.log(job.error.message, "ERROR")
        self.stats.note_completed(job.error.error_type if job.error else None)
        # Safe: a render reads the URL in its first step, before any _finish can run.
        self._forget_inline_image(job)
        timer = self._start_timers.pop(job, None)
        if timer is not None:
            timer.cancel()
        job.notify()
        if job.options.webhook_url is not None:
            self._spawn(self._send_webhook(job, job.options.webhook_url))

    # -- webhook ---------------------------------------------------------------

    async def _send_webhook(self, job: Job, url: str) -> None:
        if self._webhook_client is None:
            self._webhook_client = httpx.AsyncClient(timeout=self.config.webhook_timeout)
        delivered = await deliver_webhook(
            self._webhook_client,
            url,
            job,
            self.signer,
            retry_span=self.config.webhook_retry_span,
            timeout=self.config.webhook_timeout,
        )
        self.stats.webhook_retries += len(job.webhook_attempts) - 1
        if delivered:
            self.stats.webhooks_sent += 1
        else:
            self.stats.webhooks_failed += 1

    # -- files -----------------------------------------------------------------

    def local_file_bytes(self, url: str, base_url: str) -> bytes | None:
        """The bytes of ``url`` if it names a file this emulator serves, else ``None``.

        A URL is ours when its port is the port of ``base_url`` and its host
        is the same host or a loopback name, and its path is under ``/files/``.
        """
        parts, base = urlsplit(url), urlsplit(base_url)
        if not parts.path.startswith("/files/") or parts.port != base.port:
            return None
        if parts.hostname != base.hostname and parts.hostname not in _LOOPBACK:
            return None
        file = self.files.get(unquote(parts.path[len("/files/") :]), now=time.monotonic())
        if file is None:
            return None
        return file.data + bytes(file.zeros) if file.zeros else file.data

    def initiate_upload(self, content_type: str, file_name: str) -> tuple[str, str]:
        """Reserve an upload; returns its token and the stored file's name."""
        token = uuid.uuid4().hex
        name = f"uploads/{token}/{file_name}"
        self._uploads[token] = (content_type, name)
        self._upload_count += 1
        self._labels[token] = self._labels[name] = f"upload-{self._upload_count}"
        return token, name

    def complete_upload(self, token: str, data: bytes, content_type: str | None) -> str | None:
        """Store the bytes of upload ``token``; returns the file name, or ``None`` if unknown."""
        reserved = self._uploads.pop(token, None)
        if reserved is None:
            return None
        declared, name = reserved
        self.files.put(name, StoredFile(data, content_type=content_type or declared))
        self.stats.uploads += 1
        self.stats.upload_bytes += len(data)
        return name

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            self.files.sweep(now)

    # -- counters --------------------------------------------------------------

    def stats_snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data (call on the loop)."""
        return self.stats.as_dict(in_progress=len(self._running), queued=len(self._queue))

    def reset_stats(self) -> None:
        """Zero the counters (jobs and files are kept)."""
        self.stats.reset()
        self.stats.max_in_progress = len(self._running)
        self.faults.reset()

    def stats_threadsafe(self, timeout: float = 10.0) -> dict[str, Any]:
        """:meth:`stats_snapshot` from any thread."""
        return self.call_threadsafe(self.stats_snapshot, timeout)

    def call_threadsafe(self, function: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``function`` on the engine's loop (directly when none runs); return its value."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return function()
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            return function()

        async def call() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout)
