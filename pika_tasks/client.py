"""The async client for Pika 2.2 image-to-video on fal's queue API.

One job takes three steps, each a method of :class:`PikaClient`: ``submit``
queues it, ``wait`` follows its status until it completes, ``result`` fetches
the output; ``download`` then streams the video to any writer.  The client
knows HTTP and nothing of Prefect.

Wire economy: ``wait`` listens to fal's server-sent status stream (one
request for the whole wait) and polls only when the stream is unavailable,
fails or drops, with a delay growing from ``poll_interval`` to
``max_poll_interval``.  A job costs about three requests: submit, stream,
result (the download comes on top).

Errors (see :mod:`pika_tasks.errors` for the tree): an error answer becomes a
:class:`~pika_tasks.errors.FalHTTPError` subclass by status code (401/403
authentication, 404/410 not found or expired, 422 validation, 429 rate limit,
499 aborted, 5xx server error); a network failure on a call that is safe to
repeat becomes :class:`~pika_tasks.errors.TransportError`.  Messages name the
route and the request id (the handle's, or the ``x-fal-request-id`` fal put
on its answer, which finds the request in fal's dashboard); the key never
appears in them, in logs or in ``repr``, and it is sent only to the
configured queue and storage hosts, never to a CDN.

Retries: ``status``, ``result``, ``cancel``, ``download`` and both steps of
``upload`` are idempotent (reads, a PUT, or a POST that only creates an upload
URL), so their transient failures are retried with stamina's jittered
exponential backoff, honouring ``Retry-After``, at most ``max_retries`` times
(the one layer of retries: the numbers are in :mod:`pika_tasks.retry_policy`):
429, fal's infrastructure errors (``runner_*``, ``internal_error``, timeouts
that are not the caller's own), bare gateway pages, connect and read errors.
Never retried: a 504 whose ``X-Fal-Request-Timeout-Type`` is ``user`` (the
start deadline the caller set has passed: final), an answer marked
``X-Fal-Retryable: false``, and a 499 (fal reports the request aborted).
``result`` tells fal's infrastructure from the job: the model's own error
status, or fal's final word on the job, raises
:class:`~pika_tasks.errors.JobFailedError`.  ``download`` resumes with
``Range`` rather than starting over.

Submit safety: fal has no idempotency key, so a second POST of the same job
queues, and bills, a second video.  ``submit`` is retried only when fal
provably did not queue the job:

- the connection was never made (connect error or timeout, TLS handshake,
  no free connection in the pool): the request never left;
- fal's queue itself answered 429 or a 5xx, as its marks show
  (``x-fal-request-id``, ``X-Fal-Error-Type`` or a JSON ``error_type``):
  fal refused the job.

Every other failure after the request may have been sent (a read or write
timeout, a connection reset, a bare 502/504 page from a gateway that may
already have handed the request on, a success answer we cannot read) raises
:class:`~pika_tasks.errors.SubmitOutcomeUnknownError` and is never resent:
the job may exist.  A 499 on a submit is reported as such and not resent
either.  If a submit answer lacks the three URLs, they are built from the
endpoint's owner/app prefix and the request id (from the body, else from
``x-fal-request-id``), which is where the live queue serves them
(``{queue_url}/{owner}/{app}/requests/{id}``).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import json
import logging
import mimetypes
import os
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse
from pydantic import SecretStr, ValidationError

from pika_tasks import _download
from pika_tasks._loop_thread import LoopThread
from pika_tasks._responses import (
    describe,
    error_for,
    explain,
    fal_request_id,
    has_error_type,
    is_fal_answer,
    is_gateway_page,
    json_body,
    redact,
    redact_data,
    route_of,
    safe_url,
)
from pika_tasks._retry import retrying_caller
from pika_tasks._shielded import shielded
from pika_tasks._status_relay import StatusRelay
from pika_tasks.errors import (
    FalHTTPError,
    JobFailedError,
    PikaError,
    ResultExpiredError,
    ServerError,
    SubmitOutcomeUnknownError,
    TransportError,
    WaitTimeoutError,
    is_transient,
)
from pika_tasks.models import (
    CancelResponse,
    DownloadInfo,
    ImageToVideoInput,
    ImageToVideoOutput,
    QueueStatus,
    RequestHandle,
    RequestOptions,
)
from pika_tasks.settings import PikaSettings

__all__ = ["PikaClient"]

logger = logging.getLogger("pika_tasks.client")

StatusCallback = Callable[[QueueStatus], Awaitable[None] | None]
#: What following a stream calls with each status it reads.
StatusReport = Callable[[QueueStatus], Coroutine[Any, Any, None]]

# Failures that prove a request never left this machine: safe to resend a submit.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

# How many times one wait reconnects a status stream that dropped after it worked.
_MAX_STREAM_RECONNECTS = 3


class _Default(enum.Enum):
    """Marks an argument left out, where None has a meaning of its own."""

    TOKEN = 0


_DEFAULT = _Default.TOKEN


@functools.cache
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR, hence the key


def shared_tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (per CA setting), shared by every client.

    Building one parses the whole CA bundle: about 20 ms of CPU and a few MB
    each, which a batch that opened clients per task paid again and again.
    ``SSLContext`` is safe to share between threads and connections.
    """
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return (url.scheme, url.host, url.port or default)


class _FalKeyAuth(httpx.Auth):
    """Adds ``Authorization: Key ...`` to requests for fal's own hosts only."""

    def __init__(self, key: SecretStr, trusted: list[str]) -> None:
        self._key = key
        self._origins = {_origin(httpx.URL(url)) for url in trusted}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(request.url) in self._origins:
            request.headers["Authorization"] = f"Key {self._key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "<fal key auth>"


#: Seconds an idle connection is kept for reuse.  Below the 5 s after which common
#: servers (uvicorn's default, and so the emulator) close an idle connection: a request
#: sent on a connection the server is closing fails after it was sent, and for a submit
#: that is an answer lost (reported, never sent again) instead of a video.
_KEEPALIVE_EXPIRY = 4.0


def _pool(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """A connection pool of the client's (see :class:`PikaClient`)."""
    return httpx.AsyncClient(
        timeout=timeout,
        verify=shared_tls_context(),
        # Each waiting job holds one stream open: the caller bounds concurrency.
        # Idle connections are kept for reuse: a new TLS handshake costs ms of CPU.
        limits=httpx.Limits(
            max_connections=None,
            max_keepalive_connections=256,
            keepalive_expiry=_KEEPALIVE_EXPIRY,
        ),
    )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _stream_url(status_url: str) -> httpx.URL:
    url = httpx.URL(status_url)
    return url.copy_with(path=url.path.rstrip("/") + "/stream")


def _given_url(body: dict[str, Any], key: str) -> str | None:
    """The submit answer's ``key`` when it is an absolute http(s) URL, else None.

    fal has queued (and bills) the job by then: an answer whose URLs cannot be
    followed still names the request, whose URLs are then built from its id (as
    fal's JS client always builds them) rather than failing the row.

    >>> _given_url({"status_url": "https://queue.fal.run/a/b/requests/r/status"}, "status_url")
    'https://queue.fal.run/a/b/requests/r/status'
    >>> _given_url({"status_url": 42}, "status_url") is None
    True
    """
    value = body.get(key)
    if not isinstance(value, str):
        return None
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return None
    return value if url.scheme in ("http", "https") and url.host else None


class PikaClient:
    """Async client for Pika 2.2 image-to-video on fal's queue (or the emulator).

    Args:
        settings: where and how to talk to fal; read from the environment
            (``FAL_KEY``, ``PIKA_*``) and ``.env`` when omitted.
        http: an ``httpx.AsyncClient`` to send requests with; the client makes
            (and closes) its own when omitted.  A given one is left open.
        follow_in_thread: follow status streams, and ask for the results of
            jobs that completed, on an event loop of their own in a thread
            (with its own connections), so that a caller whose event loop is
            busy (a flow with hundreds of task runs) still notices each
            completion within milliseconds.  Statuses still reach ``on_status``
            on the caller's loop, in order; while that loop is busy, queue
            positions it has not been shown yet are merged into the latest.
            Not with ``http``: an httpx client's connections belong to one event
            loop, so the thread could not use the one given.
        **overrides: :class:`~pika_tasks.settings.PikaSettings` fields that
            replace those of ``settings``, e.g. ``fal_key=...``, ``queue_url=...``.

    Raises:
        MissingKeyError: no key was configured anywhere.
        TypeError: an override names no settings field, or ``http`` and
            ``follow_in_thread`` were both given.

    Example:
        Upload an image, turn it into a video and download it, against the
        bundled emulator (pass nothing but a ``FAL_KEY`` to use fal itself):

        >>> import asyncio, io
        >>> from PIL import Image
        >>> from pika_tasks.client import PikaClient
        >>> from pika_tasks.emulator import EmulatorServer
        >>> async def make_video(url: str, image: bytes) -> int:
        ...     async with PikaClient(fal_key="demo", queue_url=url, storage_url=url) as client:
        ...         image_url = await client.upload(image, content_type="image/png")
        ...         handle = await client.submit({"image_url": image_url, "prompt": "zoom in"})
        ...         await client.wait(handle, timeout=60)
        ...         output = await client.result(handle)
        ...         chunks: list[bytes] = []
        ...         info = await client.download(output.video.url, chunks.append)
        ...         return info.size
        >>> png = io.BytesIO()
        >>> Image.new("RGB", (64, 48), "orange").save(png, format="PNG")
        >>> with EmulatorServer(job_seconds=0.2, fps=4) as emulator:
        ...     asyncio.run(make_video(emulator.url, png.getvalue())) > 0
        True
    """

    def __init__(
        self,
        settings: PikaSettings | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        follow_in_thread: bool = False,
        **overrides: Any,
    ) -> None:
        unknown = sorted(set(overrides) - set(PikaSettings.model_fields))
        if unknown:
            raise TypeError(f"PikaClient() got unknown settings: {', '.join(unknown)}")
        if http is not None and follow_in_thread:
            # Silently making other connections would bypass what the given client
            # was set up with (a proxy, certificates, limits).
            raise TypeError(
                "PikaClient(): follow_in_thread makes connections of its own on its thread "
                "(an httpx client belongs to one event loop); it cannot take http="
            )
        if settings is None:
            settings = PikaSettings(**overrides)
        elif overrides:
            settings = PikaSettings(**{**settings.model_dump(), **overrides})
        self._settings = settings
        # Kept as a SecretStr so that vars(client) and tracebacks do not show it.
        self._key = settings.require_key()
        self._auth = _FalKeyAuth(self._key, [settings.queue_url, settings.storage_url])
        self._timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.connect_timeout,
        )
        # fal pings the stream about every 15 s: a longer silence means it is dead.
        self._stream_timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.sse_idle_timeout,
            write=settings.read_timeout,
            pool=settings.connect_timeout,
        )
        self._owns_http = http is None
        # A pool per kind of request (calls, status streams, downloads) unless one was
        # given: httpcore's pool looks at every connection it holds, idle ones several
        # times over, each time a request starts or ends, so its cost grows faster than
        # its size; small pools keep each look short.
        self._http = http or _pool(self._timeout)
        self._stream_http = http or _pool(self._stream_timeout)
        self._download_http = http or _pool(self._timeout)
        self._retry = retrying_caller(settings)
        # Results asked for when a wait ended (prefetch_result), by request id.
        self._prefetched: dict[str, asyncio.Future[ImageToVideoOutput]] = {}
        # Cancels on their way to fal, which closing the client waits for.
        self._cancels: set[asyncio.Future[CancelResponse]] = set()
        # With follow_in_thread: the thread and the client (its twin) it runs waits on.
        self._follows_in_thread = follow_in_thread
        self._follower: tuple[LoopThread, PikaClient] | None = None

    @property
    def settings(self) -> PikaSettings:
        """The settings in force (the key inside is a ``SecretStr``)."""
        return self._settings

    @property
    def _secret(self) -> str:
        return self._key.get_secret_value()

    def __repr__(self) -> str:
        return (
            f"PikaClient(queue_url={self._settings.queue_url!r}, "
            f"endpoint_id={self._settings.endpoint_id!r})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless it was passed in as ``http``).

        It runs to its end while the caller is being cancelled, so that the
        cancels it waits for reach fal and the pools are closed.
        """
        await shielded(self._close())

    async def _close(self) -> None:
        for pending in self._prefetched.values():
            pending.cancel()
        self._prefetched.clear()
        if self._follower is not None:
            thread, twin = self._follower
            self._follower = None
            await thread.aclose(twin.aclose)
        if self._cancels:
            # A client closed while its task is being cancelled still lets the cancels
            # it was asked for reach fal.
            await asyncio.wait(set(self._cancels), timeout=self._settings.read_timeout)
        if self._owns_http:
            for pool in (self._http, self._stream_http, self._download_http):
                await pool.aclose()

    # -- submit ---------------------------------------------------------------

    async def submit(
        self,
        arguments: ImageToVideoInput | Mapping[str, Any],
        *,
        options: RequestOptions | None = None,
        validate: bool = True,
    ) -> RequestHandle:
        """Queue one job and return its handle.

        Input is validated before anything is sent.  The request is resent
        only when fal provably did not queue it (see the module docstring).

        Args:
            arguments: the job input, a model or a mapping of its fields.
            options: fal request options (start timeout, priority, expiry, webhook).
            validate: check a mapping against :class:`ImageToVideoInput` first.
                Pass False to send fields the model does not know yet; fal
                then validates them (422 on a bad value).

        Raises:
            pydantic.ValidationError: invalid input; nothing was sent.
            SubmitOutcomeUnknownError: the request went out but its answer was lost.
            FalValidationError: fal refused the input (422).
            AuthenticationError: fal refused the key (401/403).
            RateLimitError: fal's queue is full (429), after the client's retries.
            ServerError: fal's infrastructure failed (5xx) and said the job was not
                queued, after the client's retries.
            TransportError: the connection could not be made, after the client's retries.
        """
        payload = self._payload(arguments, validate)
        url = f"{self._settings.queue_url.rstrip('/')}/{self._settings.endpoint_id.strip('/')}"
        headers, params = self._request_options(options)
        handle: RequestHandle = await self._retry(self._submit_once, url, payload, headers, params)
        logger.debug(
            "queued %s as %s (position %s)",
            self._settings.endpoint_id,
            handle.request_id,
            handle.queue_position,
        )
        return handle

    @staticmethod
    def _payload(arguments: ImageToVideoInput | Mapping[str, Any], validate: bool) -> Any:
        if isinstance(arguments, ImageToVideoInput):
            return arguments.model_dump(mode="json", exclude_none=True)
        if validate:
            model = ImageToVideoInput.model_validate(dict(arguments))
            return model.model_dump(mode="json", exclude_none=True)
        return dict(arguments)

    def _request_options(
        self, options: RequestOptions | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        options = options or RequestOptions()
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        start_timeout = options.start_timeout or self._settings.start_timeout
        if start_timeout is not None:
            headers["X-Fal-Request-Timeout"] = _seconds(start_timeout)
        if options.priority is not None:
            headers["X-Fal-Queue-Priority"] = options.priority
        if options.object_expiry_seconds is not None:
            headers["X-Fal-Object-Lifecycle-Preference"] = json.dumps(
                {"expiration_duration_seconds": options.object_expiry_seconds}
            )
        if options.webhook_url is not None:
            params["fal_webhook"] = options.webhook_url
        return headers, params

    async def _submit_once(
        self, url: str, payload: Any, headers: dict[str, str], params: dict[str, str]
    ) -> RequestHandle:
        route = f"POST {httpx.URL(url).path}"
        try:
            response = await self._http.post(
                url,
                json=payload,
                headers=headers,
                params=params,
                auth=self._auth,
                timeout=self._timeout,
            )
        except _NEVER_SENT as exc:
            raise TransportError(
                f"could not connect to fal to submit ({route}): {explain(exc)}"
            ) from exc
        except httpx.TransportError as exc:
            raise SubmitOutcomeUnknownError(
                f"the submit was sent but its answer was lost ({route}): "
                f"{explain(exc)}. fal may have queued (and will bill) the job: "
                "check fal's dashboard before submitting it again."
            ) from exc
        if response.is_success:
            return self._handle_from(response, route)
        if response.status_code >= 500 and not has_error_type(response):
            # Only fal's own infrastructure errors (an error_type) say the job was not
            # queued.  A gateway's page, or a 5xx that names the request but not what
            # failed (a front door that timed out waiting for the queue), may follow a
            # job the queue took.
            source = "fal's front door" if is_fal_answer(response) else "a gateway"
            raise SubmitOutcomeUnknownError(
                f"the submit got HTTP {response.status_code} from {source}, which does not "
                f"say what failed ({route}): the request may have reached fal and queued the "
                "job. Check fal's dashboard before submitting it again."
            ) from error_for(response, secret=self._secret)
        raise error_for(
            response,
            secret=self._secret,
            hint=(
                "fal may still have queued the job: look the request up in fal's dashboard "
                "before submitting it again"
                if response.status_code == 499
                else None
            ),
        )

    def _handle_from(self, response: httpx.Response, route: str) -> RequestHandle:
        body = json_body(response)
        body = body if isinstance(body, dict) else {}
        # fal's own clients take the id from the header when the body lacks it.
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            request_id = fal_request_id(response)
        if request_id is None:
            raise SubmitOutcomeUnknownError(
                f"fal accepted the submit (HTTP {response.status_code} on {route}) but its "
                "answer has no request id: the job may be queued. Check fal's dashboard "
                "before submitting it again."
            )
        owner_app = "/".join(self._settings.endpoint_id.strip("/").split("/")[:2])
        base = f"{self._settings.queue_url.rstrip('/')}/{owner_app}/requests/{request_id}"
        position = body.get("queue_position")
        return RequestHandle(
            request_id=request_id,
            status_url=_given_url(body, "status_url") or f"{base}/status",
            response_url=_given_url(body, "response_url") or base,
            cancel_url=_given_url(body, "cancel_url") or f"{base}/cancel",
            endpoint_id=self._settings.endpoint_id,
            queue_position=position if isinstance(position, int) else None,
        )

    # -- status ---------------------------------------------------------------

    async def status(self, handle: RequestHandle, *, logs: bool = False) -> QueueStatus:
        """The job's current status (one GET, retried when transient).

        Args:
            handle: what :meth:`submit` returned.
            logs: include the runner's logs.

        Raises:
            RequestNotFoundError: fal does not know the request.
        """
        return await self._retry(self._status_once, handle, logs)

    async def _status_once(self, handle: RequestHandle, logs: bool) -> QueueStatus:
        response = await self._send(
            "GET", handle.status_url, handle.request_id, params={"logs": "1"} if logs else None
        )
        try:
            # Statuses carry fal's and the runner's text (errors, logs): never the key.
            return QueueStatus.model_validate(redact_data(json_body(response), self._secret))
        except ValidationError as exc:
            raise ServerError(
                f"fal sent a status that cannot be read (HTTP {response.status_code} on "
                f"{route_of(response.request)}): {exc.errors()[0]['msg']}",
                status_code=response.status_code,
                error_type="invalid_status",
                request_id=handle.request_id,
            ) from None

    async def stream_status(
        self, handle: RequestHandle, *, logs: bool = True
    ) -> AsyncGenerator[QueueStatus, None]:
        """Yield each status fal pushes on its stream, ending after COMPLETED.

        One long GET of ``{status_url}/stream`` (server-sent events).  Not
        retried: :meth:`wait` falls back to polling when it fails.  A stream
        silent for longer than ``sse_idle_timeout`` is dropped.

        Raises:
            FalHTTPError: the stream was refused (by status code, as elsewhere).
            TransportError: the stream failed, went silent or was not an event stream.
        """
        url = _stream_url(handle.status_url)
        try:
            async with aconnect_sse(
                self._stream_http,
                "GET",
                str(url),
                params={"logs": "1"} if logs else None,
                auth=self._auth,
                timeout=self._stream_timeout,
            ) as source:
                response = source.response
                if not response.is_success:
                    await response.aread()
                    raise error_for(response, request_id=handle.request_id, secret=self._secret)
                async for event in source.aiter_sse():
                    status = self._event_status(event, handle, self._secret)
                    if status is None:
                        continue
                    yield status
                    if status.done:
                        return
        except httpx.TransportError as exc:
            raise TransportError(
                f"the status stream of request {handle.request_id} failed "
                f"(GET {url.path}): {explain(exc)}"
            ) from exc

    @staticmethod
    def _event_status(
        event: ServerSentEvent, handle: RequestHandle, secret: str
    ) -> QueueStatus | None:
        if not event.data.strip():
            return None
        try:
            return QueueStatus.model_validate(redact_data(json.loads(event.data), secret))
        except (ValidationError, ValueError):
            logger.debug(
                "request %s: ignored a stream event: %.200s",
                handle.request_id,
                redact(event.data, secret),
            )
            return None

    # -- wait -----------------------------------------------------------------

    async def wait(
        self,
        handle: RequestHandle,
        *,
        timeout: float | None = None,
        logs: bool = True,
        on_status: StatusCallback | None = None,
        prefetch_result: bool = False,
    ) -> QueueStatus:
        """Wait until the job completes and return its COMPLETED status.

        Listens to the status stream; polls (``poll_interval`` doubling up to
        ``max_poll_interval``) when the stream is unavailable, fails or drops.
        A stream that dropped after it worked is reconnected a few times.
        The remote job is never cancelled here: the caller decides.

        Args:
            handle: what :meth:`submit` returned.
            timeout: seconds to wait; ``wait_timeout`` from the settings when None.
            logs: ask for the runner's logs with each status.
            on_status: called (and awaited if it returns an awaitable) with each
                new status; identical consecutive statuses are reported once.
            prefetch_result: ask for the result the moment the job completes,
                in the background, for the next :meth:`result` call of this
                request to take (no extra request).  For callers that will
                call :meth:`result` and have work to do in between.

        Raises:
            JobFailedError: the job completed with an error.
            WaitTimeoutError: it did not complete in time.
        """
        limit = self._settings.wait_timeout if timeout is None else timeout
        report = _Reporter(on_status)
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                if self._follows_in_thread:
                    final = await self._follow_in_thread(handle, logs, report, prefetch_result)
                else:
                    final = await self._follow(handle, logs, report)
        except TimeoutError:
            if not deadline.expired():
                raise  # not ours: e.g. from the caller's on_status
            raise WaitTimeoutError(
                f"request {handle.request_id} did not complete within {limit:g}s "
                f"(last status: {report.last_state or 'unknown'})",
                request_id=handle.request_id,
            ) from None
        if final.failed:
            raise JobFailedError(
                f"request {handle.request_id} failed: {final.error}"
                + (f" [{final.error_type}]" if final.error_type else ""),
                request_id=handle.request_id,
                error_type=final.error_type,
            )
        if prefetch_result and not self._follows_in_thread:
            self._prefetch(handle)
        return final

    def _twin(self) -> tuple[LoopThread, PikaClient]:
        """The follower thread and the client it uses, started on first use."""
        if self._follower is None:
            thread = LoopThread(f"pika-follow-{id(self):x}")
            self._follower = (thread, PikaClient(self._settings))
        return self._follower

    async def _follow_in_thread(
        self, handle: RequestHandle, logs: bool, report: StatusReport, prefetch: bool
    ) -> QueueStatus:
        """:meth:`_follow` on the follower thread; statuses are reported on this loop.

        The stream is not held up by the reports (this loop may be busy), but a
        report's error still ends the wait; see :class:`StatusRelay`.
        """
        thread, twin = self._twin()
        relay = StatusRelay(report, asyncio.get_running_loop())

        async def forward(status: QueueStatus) -> None:
            if prefetch and status.done and not status.failed:
                twin._prefetch(handle)  # before anything else: this is what must not wait
            await relay.send(status)

        return await thread.run(twin._follow(handle, logs, forward))

    def _prefetch(self, handle: RequestHandle) -> None:
        if handle.request_id in self._prefetched:
            return
        pending = asyncio.ensure_future(self._retry(self._result_once, handle))
        # Retrieved even when nobody takes it, so a failure is never "unretrieved".
        pending.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._prefetched[handle.request_id] = pending

    async def _follow(self, handle: RequestHandle, logs: bool, report: StatusReport) -> QueueStatus:
        streams = 0
        use_stream = True
        while use_stream:
            streams += 1
            final, delivered = await self._listen(handle, logs, report)
            if final is not None:
                return final
            use_stream = delivered and streams <= _MAX_STREAM_RECONNECTS
        logger.debug("request %s: polling the status", handle.request_id)
        # A plain loop, not stamina: "not done yet" is no failure to retry, and
        # stamina would log and count every poll as a retry (or stop polling
        # altogether when retries are switched off globally).
        delay = self._settings.poll_interval
        while True:
            try:
                status = await self.status(handle, logs=logs)
            except PikaError as error:
                if not is_transient(error):
                    raise
                # The job goes on at fal (and is billed) whatever our network does: an
                # outage that outlasts status()'s own retries is waited out up to the
                # wait's deadline, not turned into a failed row with a paid job behind it.
                logger.debug("request %s: no status for now: %s", handle.request_id, error)
            else:
                await report(status)
                if status.done:
                    return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.max_poll_interval)

    async def _listen(
        self, handle: RequestHandle, logs: bool, report: StatusReport
    ) -> tuple[QueueStatus | None, bool]:
        """Follow one stream: (COMPLETED status or None if it ended early, any event seen)."""
        delivered = False
        async with aclosing(self.stream_status(handle, logs=logs)) as events:
            while True:
                try:
                    status = await anext(events)
                except StopAsyncIteration:
                    logger.debug("request %s: status stream ended early", handle.request_id)
                    return None, delivered
                except (FalHTTPError, TransportError) as exc:
                    logger.debug("request %s: status stream failed: %s", handle.request_id, exc)
                    return None, delivered
                delivered = True
                await report(status)
                if status.done:
                    return status, delivered

    # -- result, cancel -------------------------------------------------------

    async def result(self, handle: RequestHandle) -> ImageToVideoOutput:
        """The output of a completed job (retried when transient).

        Raises:
            JobFailedError: the model answered with an error instead of a video,
                or fal marked its answer final (e.g. the start deadline passed).
            ResultExpiredError: fal no longer keeps the result (404 / 410).
            FalHTTPError: the job has not completed yet (400).
        """
        if self._follower is not None:
            thread, twin = self._follower  # the twin may hold it from the wait
            return await thread.run(twin.result(handle))
        prefetched = self._prefetched.pop(handle.request_id, None)
        if prefetched is not None:
            return await prefetched
        return await self._retry(self._result_once, handle)

    async def _result_once(self, handle: RequestHandle) -> ImageToVideoOutput:
        response = await self._send("GET", handle.response_url, handle.request_id, check=False)
        code = response.status_code
        if response.is_success:
            try:
                return ImageToVideoOutput.model_validate(json_body(response))
            except ValidationError:
                raise JobFailedError(
                    f"request {handle.request_id} completed without a video "
                    f"(HTTP {code} on {route_of(response.request)})",
                    request_id=handle.request_id,
                ) from None
        error = error_for(
            response,
            request_id=handle.request_id,
            not_found=ResultExpiredError,
            secret=self._secret,
        )
        if code in (401, 403, 404, 410, 429, 499):
            raise error
        if code == 400 and not has_error_type(response):
            raise error  # e.g. "Request is still in progress": asked too early, not failed
        if (
            code >= 500
            and error.retryable is not False
            and (has_error_type(response) or is_gateway_page(response))
        ):
            raise error  # fal's infrastructure or a gateway, not the job: worth another try
        # The model's own status and body, or fal's final word on this job: it failed.
        raise JobFailedError(
            f"request {handle.request_id} failed: {describe(response, secret=self._secret)} "
            f"(HTTP {code} on {route_of(response.request)})",
            request_id=handle.request_id,
            error_type=error.error_type,
        ) from error

    async def cancel(self, handle: RequestHandle) -> CancelResponse:
        """Ask fal to cancel the job.

        A queued job is removed; a running one is only signalled and may still
        finish (and be billed).  ``status`` of the answer is
        ``CANCELLATION_REQUESTED``, ``ALREADY_COMPLETED`` or ``NOT_FOUND``:
        none of them raises.

        Once asked, the cancel goes out even if the caller is cancelled
        meanwhile (a job nobody waits for is still billed), and :meth:`aclose`
        waits for it, up to the read timeout.
        """
        sending = asyncio.ensure_future(self._retry(self._cancel_once, handle))
        self._cancels.add(sending)
        sending.add_done_callback(self._cancels.discard)
        return await shielded(sending)

    async def _cancel_once(self, handle: RequestHandle) -> CancelResponse:
        response = await self._send("PUT", handle.cancel_url, handle.request_id, check=False)
        body = json_body(response)
        code = response.status_code
        if response.is_success or (code == 400 and isinstance(body, dict) and "status" in body):
            return CancelResponse.model_validate(body if isinstance(body, dict) else {})
        if code == 404:
            return CancelResponse.model_validate(
                {"status": "NOT_FOUND", **(body if isinstance(body, dict) else {})}
            )
        raise error_for(response, request_id=handle.request_id, secret=self._secret)

    # -- files ----------------------------------------------------------------

    async def download(
        self,
        url: str,
        write: Callable[[bytes], object],
        *,
        chunk_size: int = 1 << 20,
        timeout: float | _Default | None = _DEFAULT,
        write_in_thread: bool = False,
    ) -> DownloadInfo:
        """Stream the file at ``url`` to ``write``, in pieces of about ``chunk_size``.

        Computes the SHA-256 (in a worker thread) and the size on the way and
        checks them against ``Content-Length``.  A connection that drops
        mid-body is resumed with ``Range: bytes=N-``; if the server then
        answers with the whole file (200, not 206) the download stops, since
        what was written cannot be taken back.

        Args:
            url: the file, e.g. ``output.video.url``.
            write: called with each piece, in order, one at a time; if it
                returns an awaitable, that is awaited (an async ``write`` may
                run in a thread of its own).
            chunk_size: size the pieces handed to ``write`` reach before they
                are handed on (the last may be smaller).
            timeout: seconds for the whole download, resumes included; default
                the ``download_timeout`` setting; None for no limit.
            write_in_thread: a plain function ``write`` is safe to call from a
                worker thread (one call at a time): it is then called in the
                thread that hashes each piece of 64 KiB or more, which leaves
                the event loop's thread only the network (a local file's
                ``write`` is; see ``AsyncSink.writer``).

        Raises:
            ResultExpiredError: the file is gone (404 / 410).
            TransportError: the connection failed more than ``max_retries``
                times, or a resume was answered from the start.
            DownloadTimeoutError: the download took longer than ``timeout``.
        """
        return await _download.download(
            self._download_http,
            url,
            write,
            retry=self._retry,
            auth=self._auth,
            timeout=self._timeout,
            deadline=self._settings.download_timeout if isinstance(timeout, _Default) else timeout,
            secret=self._secret,
            chunk_size=chunk_size,
            write_in_thread=write_in_thread,
        )

    async def upload(self, data: bytes, *, content_type: str, file_name: str | None = None) -> str:
        """Upload ``data`` to fal's storage and return its URL (e.g. for ``image_url``).

        Two steps: ask fal's storage for an upload URL, then PUT the bytes there.

        Args:
            data: the file content.
            content_type: its MIME type, e.g. ``image/png``.
            file_name: the name to store it under; made up from the type when None.
        """
        if file_name is None:
            file_name = "upload" + (mimetypes.guess_extension(content_type) or ".bin")
        url = f"{self._settings.storage_url.rstrip('/')}/storage/upload/initiate"
        upload_url, file_url = await self._retry(
            self._initiate_upload, url, content_type, file_name
        )
        await self._retry(
            self._send,
            "PUT",
            upload_url,
            None,
            content=data,
            headers={"Content-Type": content_type},
        )
        logger.debug("uploaded %d bytes to %s", len(data), safe_url(file_url))
        return file_url

    async def _initiate_upload(
        self, url: str, content_type: str, file_name: str
    ) -> tuple[str, str]:
        response = await self._send(
            "POST",
            url,
            None,
            params={"storage_type": "gcs"},
            json={"content_type": content_type, "file_name": file_name},
        )
        body = json_body(response)
        if not isinstance(body, dict) or not all(
            isinstance(body.get(key), str) for key in ("upload_url", "file_url")
        ):
            raise ServerError(
                f"fal storage answered without upload_url and file_url "
                f"(HTTP {response.status_code} on {route_of(response.request)})",
                status_code=response.status_code,
                error_type="invalid_upload_answer",
            )
        return body["upload_url"], body["file_url"]

    # -- plumbing -------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        request_id: str | None,
        *,
        check: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request of a call that is safe to repeat; errors mapped, not retried."""
        try:
            response = await self._http.request(
                method, url, auth=self._auth, timeout=self._timeout, **kwargs
            )
        except httpx.TransportError as exc:
            about = f", request {request_id}" if request_id else ""
            raise TransportError(
                f"{method} {httpx.URL(url).path} failed{about}: {explain(exc)}"
            ) from exc
        logger.debug(
            "%s -> HTTP %d (x-fal-request-id %s)",
            route_of(response.request),
            response.status_code,
            fal_request_id(response) or "-",
        )
        if check and not response.is_success:
            raise error_for(response, request_id=request_id, secret=self._secret)
        return response


class _Reporter:
    """Calls ``on_status`` for each status that differs from the one before."""

    def __init__(self, on_status: StatusCallback | None) -> None:
        self._on_status = on_status
        self._last: dict[str, Any] | None = None
        self.last_state: str | None = None

    async def __call__(self, status: QueueStatus) -> None:
        self.last_state = status.status
        snapshot = status.model_dump()
        if snapshot == self._last:
            return
        self._last = snapshot
        if self._on_status is not None:
            outcome = self._on_status(status)
            if inspect.isawaitable(outcome):
                await outcome
