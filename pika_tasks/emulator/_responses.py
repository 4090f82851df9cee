"""HTTP answers in fal's shapes, and file downloads with ``Range`` and cut connections.

Example:
    >>> from pika_tasks.emulator._responses import parse_range
    >>> parse_range("bytes=10-", 100), parse_range("bytes=-5", 100), parse_range("bytes=200-", 100)
    ((10, 100), (95, 100), None)
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from pika_tasks.emulator._files import StoredFile
from pika_tasks.emulator._infra import ERROR_TYPE_HEADER, REQUEST_ID_HEADER, FaultSpec, gateway_page

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")
_MAX_TEXT = 256


class DownloadDropped(ConnectionError):
    """Raised inside a download's body to cut the connection part-way (an injected fault)."""


def json_response(
    status_code: int, body: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON answer."""
    return JSONResponse(body, status_code=status_code, headers=headers)


def fal_error(
    status_code: int,
    detail: str,
    error_type: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An infrastructure error: flat ``{detail, error_type}`` plus ``X-Fal-Error-Type``."""
    return json_response(
        status_code,
        {"detail": detail, "error_type": error_type},
        {ERROR_TYPE_HEADER: error_type, **(headers or {})},
    )


def format_seconds(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds as an integer, else a decimal."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def fault_response(spec: FaultSpec, *, request_id: str | None, retry_after: float) -> Response:
    """The answer that replaces a request hit by an injected fault.

    fal's own errors carry its headers (``X-Fal-Error-Type``, the request id,
    ``Retry-After`` on a 429); a gateway page carries none of them.
    """
    if spec.error_type is None:
        return HTMLResponse(gateway_page(spec.status_code, spec.detail), spec.status_code)
    headers = dict(spec.headers)
    if spec.status_code == 429:
        headers["Retry-After"] = format_seconds(retry_after)
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    return fal_error(spec.status_code, spec.detail, spec.error_type, headers)


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[:_MAX_TEXT] + "..."
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    return value


def validation_error(detail: list[dict[str, Any]]) -> JSONResponse:
    """A 422 with fal's ``detail`` list (long inputs such as data URIs are shortened)."""
    return json_response(422, {"detail": _shorten(detail)}, {"X-Fal-Retryable": "false"})


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The ``[start, end)`` of a single-range ``Range`` header, or ``None`` if unsatisfiable.

    Raises:
        ValueError: the header is not a single byte range (serve the whole file).
    """
    match = _RANGE.match(header)
    if match is None or (not match.group(1) and not match.group(2)):
        raise ValueError(f"unsupported Range header {header!r}")
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0:
            return None
        return max(0, size - suffix), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        return None
    return start, end


def file_response(
    file: StoredFile,
    *,
    method: str,
    range_header: str | None,
    if_range: str | None,
    cut_at: float | None,
    on_bytes: Callable[[int], None],
    on_cut: Callable[[], None],
) -> Response:
    """Serve ``file``: 200, or 206 for a satisfiable ``Range``, or 416.

    Args:
        file: the file.
        method: ``GET`` or ``HEAD``.
        range_header: the ``Range`` header, if any.
        if_range: the ``If-Range`` header; a range is honoured only if it matches the ETag.
        cut_at: cut the connection after this fraction of the body (``None``: don't).
        on_bytes: called with the size of every chunk sent.
        on_cut: called once if the connection is cut.
    """
    size = file.size
    headers = {"Accept-Ranges": "bytes", "ETag": file.etag, "Cache-Control": "no-store"}
    start, end, status = 0, size, 200
    if range_header and (if_range is None or if_range.strip() == file.etag):
        try:
            wanted = parse_range(range_header, size)
        except ValueError:
            wanted = (0, size)
        else:
            if wanted is None:
                return Response(
                    status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
                )
            status = 206
            headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1] - 1}/{size}"
        start, end = wanted
    headers["Content-Length"] = str(end - start)
    if method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=file.content_type)
    stop = end
    if cut_at is not None and end - start > 1:
        stop = start + max(1, min(end - start - 1, int((end - start) * cut_at)))

    async def body() -> AsyncIterator[bytes]:
        for chunk in file.iter_bytes(start, stop):
            on_bytes(len(chunk))
            yield chunk
        if stop < end:
            on_cut()
            raise DownloadDropped(f"connection cut after {stop - start} of {end - start} bytes")

    return StreamingResponse(
        body(), status_code=status, headers=headers, media_type=file.content_type
    )
