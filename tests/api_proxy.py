"""A loopback proxy in front of a Prefect API that answers chosen routes with faults.

Point ``PREFECT_API_URL`` at :attr:`ApiProxy.url` and every call a process
makes to the API goes through it: plain HTTP calls are forwarded with httpx,
and websockets (the events stream) are relayed message by message.  A
:class:`Fault` makes the calls to a route fail instead, for a while, for a
number of calls, or until it is cleared: with an HTTP status (503 by
default), after holding the call for a bounded time (a hang), or, for a
websocket, by refusing the connection.

Example::

    with ApiProxy(upstream_api_url) as proxy:
        lease = proxy.fail(r"/increment-with-lease$", seconds=5)
        ...  # run something with PREFECT_API_URL=proxy.url
        assert lease.hits > 0
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from support import wait_until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOP_HEADERS = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"}


def create_limit(api: str, limit: int, decay: float = 0.0) -> str:
    """Create a global concurrency limit with a fresh name on the API at ``api``; its name."""
    name = f"fal-faults-{uuid.uuid4().hex[:8]}"
    answer = httpx.post(
        f"{api}/v2/concurrency_limits/",
        json={"name": name, "limit": limit, "slot_decay_per_second": decay},
        timeout=30,
    )
    answer.raise_for_status()
    return name


def active_slots(api: str, name: str) -> int:
    """The slots of limit ``name`` taken now, as the API at ``api`` counts them."""
    answer = httpx.get(f"{api}/v2/concurrency_limits/{name}", timeout=30)
    answer.raise_for_status()
    return int(answer.json()["active_slots"])


@dataclass
class Fault:
    """Calls to a route answered with a fault instead of the API's answer.

    Attributes:
        route: a regular expression the request's path must match (``re.search``).
        method: the HTTP method, or None for any (websockets have none).
        status: the status answered (503: the service is unavailable).
        hang: seconds each call is held before it is answered (bounded by the test).
        seconds: how long the fault lasts from its first call (None: no end).
        times: how many calls it answers (None: no limit).
        hits: calls answered with the fault so far.
    """

    route: str
    method: str | None = None
    status: int = 503
    hang: float = 0.0
    seconds: float | None = None
    times: int | None = None
    hits: int = 0
    first_hit: float | None = None
    cleared: bool = False

    def active(self) -> bool:
        """Whether the next matching call gets the fault."""
        if self.cleared:
            return False
        started = self.first_hit
        if self.seconds is not None and started is not None:
            return time.monotonic() - started < self.seconds and (
                self.times is None or self.hits < self.times
            )
        return self.times is None or self.hits < self.times

    def matches(self, method: str | None, path: str) -> bool:
        """Whether a call is on this fault's route."""
        return bool(re.search(self.route, path)) and self.method in (None, method)

    def clear(self) -> None:
        """End the fault now."""
        self.cleared = True


class ApiProxy:
    """The proxy, served by uvicorn from a background thread on 127.0.0.1.

    Args:
        upstream: the API's URL, e.g. ``http://127.0.0.1:4200/api``.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.calls: list[str] = []  # "METHOD path" of every call seen, faulted or not
        self._lock = threading.Lock()
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        """The API URL to give a process instead of the upstream one."""
        prefix = httpx.URL(self.upstream).path
        return f"http://127.0.0.1:{self.port}{prefix}"

    def fail(
        self,
        route: str,
        *,
        method: str | None = None,
        status: int = 503,
        hang: float = 0.0,
        seconds: float | None = None,
        times: int | None = None,
    ) -> Fault:
        """Arm a fault (see :class:`Fault`) from now on, and return it."""
        fault = Fault(route, method, status, hang, seconds, times)
        with self._lock:
            self.faults.append(fault)
        return fault

    def _fault_for(self, method: str | None, path: str) -> Fault | None:
        with self._lock:
            self.calls.append(f"{method or 'WS'} {path}")
            for fault in self.faults:
                if fault.matches(method, path) and fault.active():
                    if fault.first_hit is None:
                        fault.first_hit = time.monotonic()
                    fault.hits += 1
                    return fault
        return None

    # ------------------------------------------------------------------ serving

    def start(self) -> ApiProxy:
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level="critical",
            access_log=False,
            lifespan="on",
            interface="asgi3",
            ws="websockets-sansio",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        thread = self._thread

        def started() -> bool:
            assert thread.is_alive(), "the proxy failed to start"
            return bool(server.started)

        wait_until(started, "the proxy to start", 30, interval=0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(10)
        self._socket.close()

    def __enter__(self) -> ApiProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = httpx.AsyncClient(timeout=httpx.Timeout(120.0), trust_env=False)
                self._stopping = asyncio.Event()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                assert self._stopping is not None and self._client is not None
                self._stopping.set()
                await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _target(self, scope: Scope, scheme: str = "http") -> str:
        root = httpx.URL(self.upstream)
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{scheme}://{root.host}:{root.port}{scope['path']}"
        return f"{url}?{query}" if query else url

    async def _hang(self, fault: Fault) -> None:
        """Hold a call for the fault's hang, or until the proxy stops."""
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), fault.hang)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        fault = self._fault_for(scope["method"], scope["path"])
        if fault is not None:
            if fault.hang:
                await self._hang(fault)
            payload = b'{"detail": "injected by the test proxy"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": fault.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        assert self._client is not None
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_HEADERS]
        request = self._client.build_request(
            scope["method"], self._target(scope), headers=headers, content=bytes(body)
        )
        try:
            answer = await self._client.send(request, stream=True)
        except httpx.HTTPError:
            # The API is down: say so the way a gateway would.
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": answer.status_code,
                    # Raw bytes are relayed: their length and encoding stay as they were.
                    "headers": [
                        (k, v) for k, v in answer.headers.raw if k.lower() not in HOP_HEADERS
                    ],
                }
            )
            async for chunk in answer.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await answer.aclose()

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        fault = self._fault_for(None, scope["path"])
        if fault is not None:
            if fault.hang:
                await self._hang(fault)
            await send({"type": "websocket.close", "code": 1013})
            return
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.lower() not in HOP_HEADERS
            and not k.lower().startswith(b"sec-websocket")
            and k.lower() != b"origin"
        ]
        try:
            upstream = await connect(
                self._target(scope, "ws"),
                additional_headers=headers,
                subprotocols=[Subprotocol(p) for p in scope.get("subprotocols", [])] or None,
            )
        except Exception:  # the API is down, or refused the stream
            await send({"type": "websocket.close", "code": 1011})
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

        async def inbound() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("text")
                await upstream.send(data if data is not None else message.get("bytes", b""))

        async def outbound() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for data in upstream:
                    if isinstance(data, str):
                        await send({"type": "websocket.send", "text": data})
                    else:
                        await send({"type": "websocket.send", "bytes": data})
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1000})

        tasks = [asyncio.ensure_future(inbound()), asyncio.ensure_future(outbound())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await upstream.close()
            await asyncio.gather(*tasks, return_exceptions=True)
