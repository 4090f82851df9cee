"""Helpers of the reliability tests: output checks, hostile images, raw servers.

The raw servers are tiny asyncio or socket servers on 127.0.0.1 that misbehave
on purpose: one that accepts a connection and never answers, one whose status
stream sends its headers and then nothing, one whose files trickle out a byte
at a time, one that repeats the request's key in its answers, and a listening
socket whose backlog is full, so that a connection attempt hangs until the
connect timeout.  Each is stopped by its context manager; nothing waits unbounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support import probe_video

OTHER_KEY = "fal-other-key-for-401"
"""The key an emulator requires when a test wants the tests' key refused (401)."""


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class VideoRow:
    """A finished row as found in the output: its video decoded, and its sidecar record.

    Attributes:
        codec: the video's codec.
        frames: frames decoded, all of them.
        record: the sidecar ``{id}.json``.
        mismatches: what the sidecar says that the file contradicts (empty when they agree).
    """

    codec: str
    frames: int
    record: dict[str, Any]
    mismatches: list[str]


def video_row(out: Path, row_id: str) -> VideoRow:
    """Decode the row's MP4 fully and compare its sidecar with the file."""
    video = out / f"{row_id}.mp4"
    info = probe_video(video.read_bytes())
    record: dict[str, Any] = json.loads((out / f"{row_id}.json").read_text())
    found = {
        "state": "succeeded",
        "size": video.stat().st_size,
        "sha256": sha256_of(video),
        "output": str(video),
    }
    mismatches = [
        f"{key}: {record.get(key)!r} != {value!r}"
        for key, value in found.items()
        if record.get(key) != value
    ]
    return VideoRow(info["codec"], info["frames"], record, mismatches)


def snapshot(root: Path, *, skip: Path | None = None) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` (but ``skip``): relative name -> (size, mtime_ns)."""
    found: dict[str, tuple[int, int]] = {}
    for path in root.rglob("*"):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        stat = path.lstat()
        found[str(path.relative_to(root))] = (
            stat.st_size if path.is_file() else 0,
            stat.st_mtime_ns,
        )
    return found


# --------------------------------------------------------------------------- images


def solid_png(width: int, height: int, color: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    """A PNG of one colour (tiny on disk whatever its size in pixels)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose pixel data is a few bytes.

    Decoding it would need width x height x 3 bytes of memory: an image must be
    refused from its header, before any decoding.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _chunk(b"IEND", b"")
    )


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (a hole): "huge" for free."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


# --------------------------------------------------------------------------- raw servers


@dataclass
class RawRequest:
    """One request a raw server received: request line parts, headers (lower-case names)."""

    method: str
    path: str
    headers: dict[str, str]


Respond = Callable[[RawRequest, asyncio.StreamWriter, asyncio.Event], Awaitable[bool]]
"""Answers one request; returns False to close the connection.  The event is set at shutdown."""


@dataclass
class RawServer:
    """A scripted HTTP/1.1 server on 127.0.0.1 (see :func:`raw_server`).

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        connections: connections accepted.
        requests: every request received, in order.
    """

    url: str = ""
    connections: int = 0
    requests: list[RawRequest] = field(default_factory=list)

    def paths(self) -> list[str]:
        """``METHOD path`` of every request, in order."""
        return [f"{request.method} {request.path}" for request in self.requests]


def http_answer(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    """A complete HTTP/1.1 answer with a ``Content-Length``."""
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def json_answer(status: str, body: Any) -> bytes:
    """A complete JSON answer."""
    return http_answer(status, json.dumps(body).encode())


@contextlib.asynccontextmanager
async def raw_server(respond: Respond) -> AsyncIterator[RawServer]:
    """Serve ``respond`` on a free loopback port until the block ends.

    Each connection reads requests (head and ``Content-Length`` body) one after
    another and hands each to ``respond``.  At the end of the block every
    connection is closed and every handler waiting on the shutdown event is released.
    """
    state = RawServer()
    done = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            while not done.is_set():
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                first, *lines = head.split("\r\n")
                method, target, _ = first.split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, value in (line.split(":", 1) for line in lines if ":" in line)
                }
                if headers.get("content-length", "0").isdigit():
                    await reader.readexactly(int(headers.get("content-length", "0")))
                request = RawRequest(method, target.split("?", 1)[0], headers)
                state.requests.append(request)
                if not await respond(request, writer, done):
                    break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        done.set()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def silent_server() -> contextlib.AbstractAsyncContextManager[RawServer]:
    """A server that accepts every request and answers none (until the block ends)."""

    async def never_answer(
        request: RawRequest, writer: asyncio.StreamWriter, done: asyncio.Event
    ) -> bool:
        await done.wait()
        return False

    return raw_server(never_answer)


def stalling_stream_server(
    request_id: str = "req-1",
) -> contextlib.AbstractAsyncContextManager[RawServer]:
    """A queue whose status stream sends headers, then nothing; its status says COMPLETED."""

    async def respond(
        request: RawRequest, writer: asyncio.StreamWriter, done: asyncio.Event
    ) -> bool:
        if request.path.endswith("/status/stream"):
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            await writer.drain()
            await done.wait()
            return False
        body = {"status": "COMPLETED", "request_id": request_id, "metrics": {}}
        writer.write(json_answer("200 OK", body))
        await writer.drain()
        return True

    return raw_server(respond)


def dripping_server(
    size: int = 100_000, every: float = 0.05
) -> contextlib.AbstractAsyncContextManager[RawServer]:
    """A server whose files trickle out one byte at a time, each well inside any read timeout.

    ``GET /result`` answers a job's output pointing at ``/files/video.mp4``; that
    file declares ``size`` bytes and sends one every ``every`` seconds.
    """

    async def respond(
        request: RawRequest, writer: asyncio.StreamWriter, done: asyncio.Event
    ) -> bool:
        if request.path == "/result":
            port = writer.get_extra_info("sockname")[1]
            video = {"url": f"http://127.0.0.1:{port}/files/video.mp4", "content_type": "video/mp4"}
            writer.write(json_answer("200 OK", {"video": video}))
            await writer.drain()
            return True
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        for _ in range(size):
            if done.is_set():
                break
            writer.write(b"\x00")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=every)
        return False

    return raw_server(respond)


@contextlib.contextmanager
def full_backlog_port(max_fillers: int = 64) -> Iterator[int]:
    """A loopback port whose listen queue is full: a new connection attempt hangs.

    The socket listens with a backlog of 0 and never accepts; connections are
    made until one of them times out, which shows the queue is full and that the
    kernel now drops new connection attempts (as a firewall would), so a client
    sees a *connect timeout*, not a refusal.  Skips the test on a kernel that
    keeps accepting.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(max_fillers):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.settimeout(0.2)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                probe.close()
                break
            fillers.append(probe)
        else:
            pytest.skip("this kernel accepts every connection; no connect timeout to provoke")
        yield port
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


def exception_texts(error: BaseException) -> Iterator[str]:
    """str, repr and attributes of an error and of every cause and context it chains."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(getattr(current, "__dict__", {}))
        yield repr(current.args)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)


def files_under(root: Path) -> Iterator[Path]:
    """Every file under ``root``."""
    for path in root.rglob("*"):
        if path.is_file():
            yield path


def echo_queue(mode: str = "failed-job") -> contextlib.AbstractAsyncContextManager[RawServer]:
    """A queue that repeats the request's ``Authorization`` header in its answers.

    Real fal does not do this; a misbehaving proxy, a runner that logs its
    request, or a validation error that quotes its input could.  ``mode``
    ``"validation"`` answers a submit with a 422 quoting the header; otherwise
    the submit is queued, the status is COMPLETED with the header in the
    runner's logs and in ``error``, and the result is a 500 quoting it.
    """

    async def respond(
        request: RawRequest, writer: asyncio.StreamWriter, done: asyncio.Event
    ) -> bool:
        auth = request.headers.get("authorization", "")
        port = writer.get_extra_info("sockname")[1]
        base = f"http://127.0.0.1:{port}/fal-ai/pika/requests/req-1"
        answer: tuple[str, Any]
        if request.method == "POST" and mode == "validation":
            item = {"loc": ["header", "Authorization"], "msg": "bad", "type": "x", "input": auth}
            answer = ("422 Unprocessable Entity", {"detail": [item]})
        elif request.method == "POST":
            urls = {
                "status_url": f"{base}/status",
                "response_url": base,
                "cancel_url": f"{base}/cancel",
            }
            answer = ("200 OK", {"request_id": "req-1", **urls})
        elif request.path.endswith("/status/stream"):
            answer = ("404 Not Found", {"detail": "no stream here"})
        elif request.path.endswith("/status"):
            status = {
                "status": "COMPLETED",
                "request_id": "req-1",
                "logs": [{"message": f"runner got headers: {auth}"}],
                "error": f"failed with {auth}",
                "error_type": "runner_error",
            }
            answer = ("200 OK", status)
        else:
            answer = (
                "500 Internal Server Error",
                {"detail": [{"msg": f"model crashed on {auth}"}]},
            )
        writer.write(json_answer(*answer))
        await writer.drain()
        return True

    return raw_server(respond)
