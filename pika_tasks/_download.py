"""Streaming one file over HTTP into a writer: resumable, checked and off the event loop's back.

:func:`download` is what :meth:`PikaClient.download <pika_tasks.client.PikaClient.download>`
runs.  The body goes to the caller's ``write`` in pieces of about ``chunk_size``
(the network's chunks joined until they reach it) while the SHA-256 of each
piece is computed in a worker thread (``hashlib`` releases the GIL), one piece
behind the network, so neither hashing nor a slow writer holds up the reads
of this or any other download on the loop.  A plain function ``write`` is
called in that same thread when the caller says it may be
(``write_in_thread``), just before the piece is hashed: one hop a piece for
both, and the loop's thread is left only the reads (a local file's write is
a copy into the page cache, which releases the GIL too).  Otherwise a plain
``write`` is called on the loop, and an async one awaited there, beside the
hash.

A connection that drops mid-body is resumed with ``Range: bytes=N-`` where N
is exactly what was written; the bytes that arrived before the drop are
written first.  An answer from the start (200 instead of 206) stops the
download, since what was written cannot be taken back.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from pika_tasks._responses import error_for, explain, safe_url
from pika_tasks._shielded import settled
from pika_tasks.errors import DownloadTimeoutError, ResultExpiredError, TransportError
from pika_tasks.models import DownloadInfo

Writer = Callable[[bytes], object]
"""Called with each piece of the body, in order, one at a time (an awaitable it returns is
awaited); with ``write_in_thread``, a plain function is called in the hashing thread."""

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")

# Below this a thread hop costs more than hashing in place.
_HASH_IN_THREAD_FROM = 64 * 1024


class RangeIgnored(Exception):
    """A resumed download was answered from the start: not retried in place."""


@dataclass
class _Progress:
    """One download, kept across resumed attempts."""

    received: int = 0
    total: int | None = None
    content_type: str | None = None
    etag: str | None = None
    sha256: Any = field(default_factory=hashlib.sha256)


class _Pipeline:
    """Hands the body on in pieces of about ``chunk_size``, writing and hashing one
    piece while the next one is read.  ``progress.received`` counts written bytes only."""

    def __init__(
        self, write: Writer, progress: _Progress, chunk_size: int, write_in_thread: bool = False
    ) -> None:
        self._write = write
        # A plain function that may be called from a worker thread writes in the hashing
        # thread: one hop a piece does both, and the loop's thread is left only the reads.
        self._writes_in_thread = write_in_thread and not inspect.iscoroutinefunction(write)
        self._progress = progress
        self._chunk_size = chunk_size
        self._parts: list[bytes] = []
        self._buffered = 0
        self._pending: asyncio.Future[None] | None = None

    async def feed(self, data: bytes) -> None:
        self._parts.append(data)
        self._buffered += len(data)
        if self._buffered >= self._chunk_size:
            await self._hand_on(self._take())

    async def flush(self) -> None:
        """Write what is buffered and wait for every piece to be written."""
        if self._parts:
            await self._hand_on(self._take())
        await self._drain()

    def _take(self) -> bytes:
        # One copy per piece: the network's chunks joined, never sliced.
        piece = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts.clear()
        self._buffered = 0
        return piece

    async def abandon(self) -> None:
        """Let the piece in flight finish, its error unraised: the download failed or was
        cancelled.  A write in a thread cannot be stopped, and the caller may discard
        what was written as soon as this returns."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await settled(pending)  # its error is the one being raised, or beside it

    async def _hand_on(self, piece: bytes) -> None:
        await self._drain()  # one piece at a time: writes and the hash stay in order
        self._pending = asyncio.ensure_future(self._store(piece))

    async def _drain(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def _store(self, piece: bytes) -> None:
        if len(piece) < _HASH_IN_THREAD_FROM:
            # Too small to be worth a thread hop: written and hashed in place.
            written = self._write_and_hash(piece)
        elif self._writes_in_thread:
            written = await asyncio.to_thread(self._write_and_hash, piece)
        else:
            written = self._write(piece)
            hashing = asyncio.to_thread(self._progress.sha256.update, piece)
            if inspect.isawaitable(written):
                written = asyncio.gather(written, hashing)
            else:
                await hashing
        if inspect.isawaitable(written):
            await written
        self._progress.received += len(piece)

    def _write_and_hash(self, piece: bytes) -> object:
        written = self._write(piece)
        self._progress.sha256.update(piece)
        return written


async def download(
    http: httpx.AsyncClient,
    url: str,
    write: Writer,
    *,
    retry: Callable[..., Awaitable[None]],
    auth: httpx.Auth,
    timeout: httpx.Timeout,
    deadline: float | None,
    secret: str,
    chunk_size: int = 1 << 20,
    write_in_thread: bool = False,
) -> DownloadInfo:
    """Stream ``url`` to ``write``; see the module docstring.

    Args:
        http: the connection pool to use.
        url: the file.
        write: called with each piece, in order.
        retry: calls an attempt again while its failure is transient.
        auth: adds the key for fal's own hosts.
        timeout: connect and per-read timeouts of one attempt.
        deadline: seconds for the whole download, resumes included; None for none.
        secret: the key, kept out of error texts.
        chunk_size: size the pieces handed to ``write`` reach before they are handed
            on (a piece exceeds it by less than one network read; the last may be
            smaller).
        write_in_thread: call a plain function ``write`` in the thread that hashes
            each piece (see the module docstring); it must then be safe to call
            from a worker thread.

    Raises:
        ResultExpiredError: the file is gone (404 / 410).
        TransportError: the connection failed more than the retries allow, or a
            resume was answered from the start.
        DownloadTimeoutError: ``deadline`` passed.
    """
    progress = _Progress()

    async def attempt() -> None:
        pipeline = _Pipeline(write, progress, chunk_size, write_in_thread)
        await _download_once(http, url, pipeline, progress, auth, timeout, secret)

    limit = asyncio.timeout(deadline)
    try:
        async with limit:
            await retry(attempt)
    except RangeIgnored as exc:
        raise TransportError(str(exc)) from None
    except TimeoutError:
        if not limit.expired():
            raise  # not the deadline's: e.g. the writer's store timed out
        assert deadline is not None
        raise DownloadTimeoutError(
            f"download of {safe_url(url)} did not finish within {deadline:g} s "
            f"({progress.received} bytes written)"
        ) from None
    return DownloadInfo(
        size=progress.received,
        content_type=progress.content_type,
        sha256=progress.sha256.hexdigest(),
    )


async def _download_once(
    http: httpx.AsyncClient,
    url: str,
    pipeline: _Pipeline,
    progress: _Progress,
    auth: httpx.Auth,
    timeout: httpx.Timeout,
    secret: str,
) -> None:
    headers = {"Accept-Encoding": "identity"}
    if progress.received:
        headers["Range"] = f"bytes={progress.received}-"
        if progress.etag:
            # Only the same file may continue; a changed one comes back whole (200).
            headers["If-Range"] = progress.etag
    try:
        async with http.stream(
            "GET", url, headers=headers, auth=auth, timeout=timeout, follow_redirects=True
        ) as response:
            if not response.is_success:
                await response.aread()
                raise error_for(response, not_found=ResultExpiredError, secret=secret)
            _start_part(response, progress)
            # Not aiter_bytes(chunk_size): it holds back a partial chunk, which a drop
            # would lose; whatever arrived is written, so a resume starts there.
            async for data in response.aiter_bytes():
                await pipeline.feed(data)
        await pipeline.flush()
    except httpx.TransportError as exc:
        await pipeline.flush()
        raise TransportError(
            f"download of {safe_url(url)} stopped after {progress.received} bytes: {explain(exc)}"
        ) from exc
    except BaseException:
        await pipeline.abandon()
        raise
    if progress.total is not None and progress.received != progress.total:
        raise TransportError(
            f"download of {safe_url(url)} ended after {progress.received} of {progress.total} bytes"
        )


def _start_part(response: httpx.Response, progress: _Progress) -> None:
    if not progress.received:
        progress.content_type = response.headers.get("content-type")
        etag = response.headers.get("etag")
        progress.etag = etag if etag and not etag.startswith("W/") else None
        length = response.headers.get("content-length")
        progress.total = int(length) if length and length.isdigit() else None
        if response.status_code != 206:
            return
    where = safe_url(response.request.url)
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if response.status_code != 206 or match is None or int(match[1]) != progress.received:
        raise RangeIgnored(
            f"resuming {where} at byte {progress.received} got HTTP {response.status_code} "
            f"({response.headers.get('content-range') or 'no Content-Range'}); the "
            "bytes already written cannot be taken back: download it again"
        )
    if match[3] != "*":
        progress.total = int(match[3])
