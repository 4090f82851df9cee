"""The HTTP routes: fal's queue API, its storage upload API, files, and ``/_emulator``.

Every queue and storage route counts its requests, checks the key (when one
is required) and may be replaced by an injected fault (a scripted rule, or a
503/429 at the configured rates) before it runs.  Every answer of a queue
route names its request in ``x-fal-request-id``.

Example:
    >>> from pika_tasks.emulator._config import EmulatorConfig
    >>> from pika_tasks.emulator._engine import Engine
    >>> from pika_tasks.emulator._routes import build_routes
    >>> paths = {route.path for route in build_routes(Engine(EmulatorConfig()))}
    >>> sorted(path.split("/")[2] for path in paths if path.startswith("/_emulator"))
    ['expire', 'faults', 'pause', 'requests', 'reset', 'resume', 'stats']
    >>> "/.well-known/jwks.json" in paths
    True
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from pika_tasks.emulator._config import APP_PREFIX, ENDPOINT_ID, FILE_ROUTE, QUEUE_ROUTES
from pika_tasks.emulator._engine import Engine
from pika_tasks.emulator._infra import REQUEST_ID_HEADER
from pika_tasks.emulator._jobs import Job, RequestUrls
from pika_tasks.emulator._options import OptionError, parse_submit_options
from pika_tasks.emulator._responses import (
    fal_error,
    fault_response,
    file_response,
    json_response,
    validation_error,
)
from pika_tasks.emulator._rules import FaultRule
from pika_tasks.emulator._signing import JWKS_PATH
from pika_tasks.models import ImageToVideoInput

Handler = Callable[[Request], Awaitable[Response]]

_NOT_FOUND = {"detail": "Request not found"}


def base_url(request: Request) -> str:
    """The scheme, host and port the client used to reach us (no trailing slash)."""
    return str(request.base_url).rstrip("/")


def _wants_logs(request: Request) -> bool:
    return request.query_params.get("logs", "0").strip().lower() in ("1", "true")


class QueueApi:
    """Route handlers bound to an :class:`~pika_tasks.emulator._engine.Engine`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.config = engine.config

    # -- guards ----------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        key = self.config.require_key
        if key is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "key" and secrets.compare_digest(
            given.strip().encode(), key.encode()
        )

    def guarded(
        self, route: str, handler: Handler, *, auth: bool, subject: str | None = None
    ) -> Handler:
        """Wrap ``handler``: count it, check the key, maybe inject a fault, name the request.

        Every answer of a queue route carries ``x-fal-request-id``, as the live
        queue's do: the id in the path, the new job's id for a submit, or a
        fresh id for a submit refused before a job existed.  Gateway pages
        (injected faults that do not come from fal) carry no fal header.

        Args:
            route: the route name for counters, ``fault_routes`` and rules.
            handler: the real handler.
            auth: whether the key is required.
            subject: the path parameter that names what the request is about.
        """
        names_request = route in QUEUE_ROUTES

        async def endpoint(request: Request) -> Response:
            stats = self.engine.stats
            stats.count_request(route)
            name = request.path_params.get(subject) if subject else None
            request_id = request.path_params.get("request_id")
            answer_id = (request_id or str(uuid.uuid4())) if names_request else None

            def named(response: Response) -> Response:
                if answer_id is not None and REQUEST_ID_HEADER not in response.headers:
                    response.headers[REQUEST_ID_HEADER] = answer_id
                return response

            if auth and not self._authorised(request):
                stats.rejected["401"] += 1
                missing = "authorization" not in request.headers
                detail = (
                    "Missing Authorization header: send 'Authorization: Key <key>'."
                    if missing
                    else "The key in the Authorization header is not valid."
                )
                return named(json_response(401, {"detail": detail}))
            retry_after = self.config.retry_after_seconds
            rule = self.engine.faults.rules.take(route, request_id)
            if rule is not None and not rule.queued:
                stats.count_fault(rule.fault)
                return fault_response(rule.spec, request_id=answer_id, retry_after=retry_after)
            key = self.engine.fault_subject(name) if name is not None else None
            fault = self.engine.faults.http_fault(route, key) if rule is None else None
            if fault is not None:
                stats.count_fault(fault.kind)
                return fault_response(fault.spec, request_id=answer_id, retry_after=retry_after)
            response = named(await handler(request))
            if rule is not None:
                # The job was queued; its answer is lost on the way back.
                stats.count_fault(rule.fault)
                queued_id = response.headers.get(REQUEST_ID_HEADER)
                return fault_response(rule.spec, request_id=queued_id, retry_after=retry_after)
            return response

        return endpoint

    def _job(self, request: Request) -> Job | None:
        return self.engine.get(request.path_params["request_id"])

    # -- queue -----------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        """``POST /fal-ai/pika/v2.2/image-to-video``: validate and queue a job."""
        try:
            options = parse_submit_options(request.headers, request.query_params)
        except OptionError as exc:
            self.engine.stats.rejected["422"] += 1
            return validation_error([exc.detail()])
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError as exc:
            self.engine.stats.rejected["422"] += 1
            return validation_error(
                [{"loc": ["body"], "msg": f"Invalid JSON: {exc}", "type": "json_invalid"}]
            )
        try:
            job_input = ImageToVideoInput.model_validate(payload)
        except ValidationError as exc:
            self.engine.stats.rejected["422"] += 1
            detail = json.loads(exc.json(include_url=False))
            for item in detail:
                item["loc"] = ["body", *item.get("loc", [])]
            return validation_error(detail)
        limit = options.max_queue_length
        if limit is not None and self.engine.queued >= limit:
            self.engine.stats.rejected["429"] += 1
            return fal_error(
                429,
                f"The queue is longer than fal_max_queue_length={limit}.",
                "queue_full",
                {"Retry-After": "1"},
            )
        base = base_url(request)
        job = self.engine.submit(job_input, options, base)
        urls = RequestUrls.build(base, job.request_id)
        position = self.engine.queue_position(job)
        return json_response(
            200,
            {
                "status": "IN_QUEUE",
                "request_id": job.request_id,
                "gateway_request_id": job.gateway_request_id,
                "response_url": urls.response_url,
                "status_url": urls.status_url,
                "cancel_url": urls.cancel_url,
                "queue_position": position if position is not None else 0,
            },
            {REQUEST_ID_HEADER: job.request_id},
        )

    def _status_body(self, request: Request, job: Job) -> dict[str, Any]:
        return job.status_body(
            base_url(request),
            queue_position=self.engine.queue_position(job),
            with_logs=_wants_logs(request),
        )

    async def status(self, request: Request) -> Response:
        """``GET .../requests/{id}/status``: 202 until COMPLETED, then 200."""
        job = self._job(request)
        if job is None:
            return json_response(404, _NOT_FOUND)
        code = 200 if job.state == "COMPLETED" else 202
        return json_response(code, self._status_body(request, job))

    async def status_stream(self, request: Request) -> Response:
        """``GET .../requests/{id}/status/stream``: server-sent status events."""
        job = self._job(request)
        if job is None:
            return json_response(404, _NOT_FOUND)
        keepalive = self.config.keepalive_seconds
        engine = self.engine

        async def events() -> AsyncIterator[str]:
            last: dict[str, Any] | None = None
            while True:
                changed = engine.watch(job)
                body = self._status_body(request, job)
                if body != last:
                    yield f"data: {json.dumps(body)}\n\n"
                    last = body
                if job.state == "COMPLETED" or engine.closing:
                    return
                try:
                    await asyncio.wait_for(changed.wait(), timeout=keepalive)
                except TimeoutError:
                    yield ": ping\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def result(self, request: Request) -> Response:
        """``GET .../requests/{id}``: the model's answer once COMPLETED."""
        job = self._job(request)
        if job is None:
            return json_response(404, _NOT_FOUND)
        if job.state != "COMPLETED":
            return json_response(400, {"detail": "Request is still in progress"})
        if self.engine.result_expired(job):
            self.engine.stats.expired_results += 1
            return json_response(
                404, {"detail": "The result of this request has expired.", "error_type": "expired"}
            )
        if job.error is not None:
            return json_response(job.error.status_code, job.error.body, job.error.headers)
        return json_response(200, job.output_body(base_url(request)))

    async def cancel(self, request: Request) -> Response:
        """``PUT .../requests/{id}/cancel``."""
        job = self._job(request)
        if job is None:
            return json_response(404, {"status": "NOT_FOUND"})
        outcome = self.engine.cancel(job)
        return json_response(
            202 if outcome == "CANCELLATION_REQUESTED" else 400, {"status": outcome}
        )

    # -- storage and files -----------------------------------------------------

    async def storage_initiate(self, request: Request) -> Response:
        """``POST /storage/upload/initiate``: reserve an upload URL and a file URL."""
        try:
            payload = json.loads(await request.body() or b"{}")
            content_type = str(payload.get("content_type") or "application/octet-stream")
            file_name = str(payload.get("file_name") or "upload.bin")
        except (ValueError, AttributeError):
            message = "Expected a JSON object {content_type, file_name}."
            return validation_error([{"loc": ["body"], "msg": message, "type": "json_invalid"}])
        file_name = file_name.replace("/", "_") or "upload.bin"
        token, name = self.engine.initiate_upload(content_type, file_name)
        base = base_url(request)
        return json_response(
            200,
            {
                "upload_url": f"{base}/storage/upload/{token}",
                "file_url": f"{base}/files/{quote(name)}",
            },
        )

    async def storage_upload(self, request: Request) -> Response:
        """``PUT /storage/upload/{token}``: store the bytes (no key needed, like a signed URL)."""
        limit = self.config.image_max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return json_response(413, {"detail": f"Uploads are limited to {limit} bytes."})
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return json_response(413, {"detail": f"Uploads are limited to {limit} bytes."})
            chunks.append(chunk)
        name = self.engine.complete_upload(
            request.path_params["token"], b"".join(chunks), request.headers.get("content-type")
        )
        if name is None:
            return json_response(404, {"detail": "Unknown or already used upload URL."})
        return Response(status_code=200)

    async def file(self, request: Request) -> Response:
        """``GET``/``HEAD /files/{name}``: a video or an uploaded file, with ``Range``."""
        name = request.path_params["name"]
        stored = self.engine.files.get(name, now=time.monotonic())
        if stored is None:
            return json_response(404, {"detail": "File not found (or expired)."})
        stats = self.engine.stats
        cut_at = None
        if stored.is_video and request.method == "GET":
            cut_at = self.engine.faults.drop_download(self.engine.fault_subject(name))
            stats.downloads += 1

        def sent(size: int) -> None:
            stats.bytes_served += size

        return file_response(
            stored,
            method=request.method,
            range_header=request.headers.get("range"),
            if_range=request.headers.get("if-range"),
            cut_at=cut_at,
            on_bytes=sent,
            on_cut=lambda: stats.count_fault("drop_download"),
        )

    # -- introspection ---------------------------------------------------------

    async def index(self, request: Request) -> Response:
        """``GET /``: what this server is."""
        base = base_url(request)
        return json_response(
            200,
            {
                "service": "pika-tasks emulator of fal's queue",
                "endpoint": f"{base}/{ENDPOINT_ID}",
                "stats": f"{base}/_emulator/stats",
            },
        )

    async def stats(self, request: Request) -> Response:
        """``GET /_emulator/stats``: the counters."""
        return json_response(200, self.engine.stats_snapshot())

    async def reset(self, request: Request) -> Response:
        """``POST /_emulator/reset``: zero the counters."""
        self.engine.reset_stats()
        return json_response(200, self.engine.stats_snapshot())

    async def faults(self, request: Request) -> Response:
        """``GET``/``POST``/``DELETE /_emulator/faults``: list, arm or disarm scripted faults.

        ``POST`` takes one rule or a list of rules, each the JSON form of
        :class:`~pika_tasks.emulator._rules.FaultRule` (``route``, ``fault``,
        and optionally ``times``, ``skip``, ``request_id``, ``queued``).
        Every method answers with the rules still armed.
        """
        rules = self.engine.faults.rules
        if request.method == "DELETE":
            rules.clear()
        elif request.method == "POST":
            try:
                payload = json.loads(await request.body() or b"null")
                items = payload if isinstance(payload, list) else [payload]
                parsed = [FaultRule.from_dict(item) for item in items]
            except (ValueError, TypeError, AttributeError) as exc:
                message = f"Expected a fault rule or a list of them: {exc}"
                return validation_error([{"loc": ["body"], "msg": message, "type": "value_error"}])
            for rule in parsed:
                rules.add(rule)
        return json_response(200, {"faults": rules.pending()})

    async def pause(self, request: Request) -> Response:
        """``POST /_emulator/pause``: start no more jobs until resumed (jobs wait IN_QUEUE)."""
        self.engine.pause()
        return json_response(200, {"paused": True})

    async def resume(self, request: Request) -> Response:
        """``POST /_emulator/resume``: start jobs again."""
        self.engine.resume()
        return json_response(200, {"paused": False})

    async def expire(self, request: Request) -> Response:
        """``POST /_emulator/expire``: expire completed jobs' results and videos now.

        The body ``{"request_ids": [...]}`` names the jobs; without it, every
        completed job.  Answers the ids expired.
        """
        try:
            payload = json.loads(await request.body() or b"{}")
            ids = payload.get("request_ids")
            if ids is not None and not (
                isinstance(ids, list) and all(isinstance(i, str) for i in ids)
            ):
                raise TypeError("request_ids must be a list of request ids")
        except (ValueError, TypeError, AttributeError) as exc:
            message = f"Expected {{'request_ids': [...]}} or nothing: {exc}"
            return validation_error([{"loc": ["body"], "msg": message, "type": "value_error"}])
        return json_response(200, {"expired": self.engine.expire_results(ids)})

    async def jwks(self, request: Request) -> Response:
        """``GET /.well-known/jwks.json``: the public key webhooks are signed with."""
        return json_response(200, self.engine.signer.jwks())

    async def describe(self, request: Request) -> Response:
        """``GET /_emulator/requests/{id}``: everything recorded about a job."""
        job = self._job(request)
        if job is None:
            return json_response(404, _NOT_FOUND)
        return json_response(200, job.describe())


def build_routes(engine: Engine) -> list[BaseRoute]:
    """Every route of the emulator, bound to ``engine``."""
    api = QueueApi(engine)
    guarded = api.guarded
    routes: list[BaseRoute] = [
        Route("/", api.index, methods=["GET"]),
        Route(
            f"/{ENDPOINT_ID}",
            guarded("submit", api.submit, auth=True),
            methods=["POST"],
        ),
    ]
    request_routes: list[tuple[str, str, Handler, str]] = [
        ("/status", "status", api.status, "GET"),
        ("/status/stream", "status_stream", api.status_stream, "GET"),
        ("/cancel", "cancel", api.cancel, "PUT"),
        ("", "result", api.result, "GET"),
    ]
    for prefix in (APP_PREFIX, ENDPOINT_ID):
        root = f"/{prefix}/requests/{{request_id}}"
        for suffix, name, handler, method in request_routes:
            endpoint = guarded(name, handler, auth=True, subject="request_id")
            # Older fal clients add a trailing slash; answer it rather than redirect.
            for path in (f"{root}{suffix}", f"{root}{suffix}/"):
                routes.append(Route(path, endpoint, methods=[method]))
    routes += [
        Route(
            "/storage/upload/initiate",
            guarded("storage_initiate", api.storage_initiate, auth=True),
            methods=["POST"],
        ),
        Route(
            "/storage/upload/{token}",
            guarded("storage_upload", api.storage_upload, auth=False, subject="token"),
            methods=["PUT"],
        ),
        Route(
            "/files/{name:path}",
            guarded(FILE_ROUTE, api.file, auth=False, subject="name"),
            methods=["GET", "HEAD"],
        ),
        Route("/_emulator/stats", api.stats, methods=["GET"]),
        Route("/_emulator/reset", api.reset, methods=["POST"]),
        Route("/_emulator/requests/{request_id}", api.describe, methods=["GET"]),
        Route("/_emulator/faults", api.faults, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/pause", api.pause, methods=["POST"]),
        Route("/_emulator/resume", api.resume, methods=["POST"]),
        Route("/_emulator/expire", api.expire, methods=["POST"]),
        Route(JWKS_PATH, api.jwks, methods=["GET"]),
    ]
    return routes
