"""How fal's HTTP answers become pika-tasks errors.

One function, :func:`error_for`, turns an unsuccessful :class:`httpx.Response`
into the matching :class:`~pika_tasks.errors.FalHTTPError`::

    401 / 403      AuthenticationError   fal's detail text, e.g. "User is locked. ..."
    404 / 410      RequestNotFoundError  (or the caller's subclass, ResultExpiredError)
    422            FalValidationError    ``detail`` list; the message names the fields
    429            RateLimitError        ``retry_after`` from ``Retry-After``
    499            RequestAbortedError   ``client_disconnected`` / ``client_cancelled``
    5xx            ServerError           ``error_type`` from the body or ``X-Fal-Error-Type``
    anything else  FalHTTPError

Who answered matters as much as the status: every answer of fal's queue
carries ``x-fal-request-id`` (fal's own clients rely on it), and its
infrastructure errors add ``X-Fal-Error-Type``; a bare 502/503/504 page
without either comes from a gateway in front of fal (:func:`is_gateway_page`).

Messages name the route (method and path, never the query) and the request id
when known (the caller's, else fal's ``x-fal-request-id``).  They never carry
request headers, so the key cannot leak through them; a caller may also pass
the key as ``secret`` to scrub it from text that the server echoed back.

Example:
    >>> import httpx
    >>> request = httpx.Request("GET", "https://queue.fal.run/fal-ai/pika/requests/r1/status")
    >>> fal = httpx.Response(
    ...     503,
    ...     json={"detail": "Runner gone.", "error_type": "runner_disconnected"},
    ...     headers={"x-fal-request-id": "r1", "X-Fal-Error-Type": "runner_disconnected"},
    ...     request=request,
    ... )
    >>> error = error_for(fal)
    >>> type(error).__name__, error.error_type, error.request_id
    ('ServerError', 'runner_disconnected', 'r1')
    >>> str(error).startswith("fal server error [runner_disconnected]: Runner gone. (HTTP 503")
    True
    >>> page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    >>> gateway = httpx.Response(502, html=page, request=request)
    >>> is_gateway_page(gateway), is_gateway_page(fal)
    (True, False)
    >>> str(error_for(gateway)).startswith("a gateway in front of fal failed: 502 Bad Gateway")
    True
"""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any

import httpx

from pika_tasks.errors import (
    AuthenticationError,
    FalHTTPError,
    FalValidationError,
    RateLimitError,
    RequestAbortedError,
    RequestNotFoundError,
    ServerError,
)

REQUEST_ID_HEADER = "x-fal-request-id"
"""The header on every answer of fal's queue that names the request it concerns."""

_GATEWAY_CODES = frozenset({502, 503, 504})
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)

_MAX_DETAIL_CHARS = 500
_REDACTED = "***"


def explain(error: BaseException) -> str:
    """``ReadTimeout: ...``; httpx leaves some messages empty."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def safe_url(url: str | httpx.URL) -> str:
    """A URL without its query (signed URLs carry tokens there)."""
    return str(httpx.URL(url).copy_with(query=None, fragment=None))


def route_of(request: httpx.Request) -> str:
    """``METHOD /path`` of a request, without query or host: safe to show."""
    return f"{request.method} {request.url.path}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON body, or None when the body is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def fal_request_id(response: httpx.Response) -> str | None:
    """The ``x-fal-request-id`` fal put on its answer, if any."""
    value = response.headers.get(REQUEST_ID_HEADER, "").strip()
    return value or None


def has_error_type(response: httpx.Response) -> bool:
    """True when the answer is one of fal's infrastructure errors (it names an ``error_type``)."""
    if "x-fal-error-type" in response.headers:
        return True
    body = json_body(response)
    return isinstance(body, dict) and "error_type" in body


def is_fal_answer(response: httpx.Response) -> bool:
    """True when fal's queue itself produced this answer, not a proxy in front of it.

    fal names the request on every answer (``x-fal-request-id``) and marks its
    infrastructure errors with ``X-Fal-Error-Type`` and a JSON ``error_type``.
    """
    return fal_request_id(response) is not None or has_error_type(response)


def is_gateway_page(response: httpx.Response) -> bool:
    """True for a bare 502/503/504 from a gateway: no fal header, no fal error body.

    Such a gateway may already have handed the request on to fal, so the
    request may have had its effect; only a call that is safe to repeat
    should be sent again.
    """
    return response.status_code in _GATEWAY_CODES and not is_fal_answer(response)


def fal_retryable(response: httpx.Response) -> bool | None:
    """fal's own word on retrying this answer, or None when it said nothing."""
    flag = response.headers.get("x-fal-retryable")
    if flag is not None:
        return flag.strip().lower() in {"1", "true", "yes"}
    if response.headers.get("x-fal-request-timeout-type", "").strip().lower() == "user":
        # The caller's own start deadline expired: asking again cannot help.
        return False
    return None


def redact(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced by a marker."""
    return text.replace(secret, _REDACTED) if secret else text


def redact_data(value: Any, secret: str | None) -> Any:
    """JSON data with ``secret`` replaced in every string inside it (keys included)."""
    if not secret:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [redact_data(item, secret) for item in value]
    if isinstance(value, dict):
        return {redact(str(k), secret): redact_data(v, secret) for k, v in value.items()}
    return value


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL_CHARS:
        return text[: _MAX_DETAIL_CHARS - 3] + "..."
    return text


def _field_name(loc: Any) -> str:
    if not isinstance(loc, list | tuple):
        return str(loc)
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def describe_validation(detail: Any) -> str:
    """``field: message; ...`` for a 422 ``detail`` list (or its text as is)."""
    if not isinstance(detail, list):
        return _shorten(str(detail))
    items = []
    for entry in detail:
        if isinstance(entry, dict):
            items.append(f"{_field_name(entry.get('loc', ()))}: {entry.get('msg', entry)}")
        else:
            items.append(str(entry))
    return _shorten("; ".join(items))


def detail_text(response: httpx.Response, body: Any) -> str:
    """A short, readable text for what the server said."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if detail is None and isinstance(body, dict):
        detail = body.get("error") or body.get("message")
    if isinstance(detail, list):
        return describe_validation(detail)
    if detail is not None:
        return _shorten(str(detail))
    if body is not None:
        return _shorten(str(body))
    if "html" in response.headers.get("content-type", ""):
        # A gateway's error page: its title says it all ("502 Bad Gateway").
        title = _TITLE.search(response.text)
        return _shorten(title.group(1)) if title else f"{response.status_code} (an HTML page)"
    return _shorten(response.text) or response.reason_phrase


def describe(response: httpx.Response, *, secret: str | None = None) -> str:
    """What the server said, short and readable, with ``secret`` scrubbed."""
    return redact(detail_text(response, json_body(response)), secret)


def error_for(
    response: httpx.Response,
    *,
    request_id: str | None = None,
    not_found: type[RequestNotFoundError] = RequestNotFoundError,
    secret: str | None = None,
    hint: str | None = None,
) -> FalHTTPError:
    """The error that an unsuccessful ``response`` stands for.

    Args:
        response: an answer whose body has been read.
        request_id: the request it concerns, when known; named in the message.
            Without it, fal's ``x-fal-request-id`` of the answer is used.
        not_found: the class for 404 and 410 (e.g. ``ResultExpiredError``).
        secret: text to scrub from the message and detail (the key).
        hint: a sentence to end the message with (what to do about it).
    """
    code = response.status_code
    body = json_body(response)
    detail: Any = body.get("detail") if isinstance(body, dict) else body
    detail = redact_data(detail, secret)
    error_type = (body.get("error_type") if isinstance(body, dict) else None) or (
        response.headers.get("x-fal-error-type")
    )
    request_id = request_id or fal_request_id(response)
    where = route_of(response.request)
    if request_id:
        where += f", request {request_id}"
    text = redact(detail_text(response, body), secret)
    kind = f" [{error_type}]" if error_type else ""
    cls: type[FalHTTPError]
    if code in (401, 403):
        cls, summary = AuthenticationError, f"fal refused the key: {text}"
    elif code in (404, 410):
        cls, summary = not_found, f"fal does not know this request (any more): {text}"
    elif code == 422:
        cls, summary = FalValidationError, f"fal rejected the input: {text}"
    elif code == 429:
        cls, summary = RateLimitError, f"fal is rate limiting (queue full?): {text}"
    elif code == 499:
        cls, summary = RequestAbortedError, f"fal reports the request aborted{kind}: {text}"
    elif code >= 500 and is_gateway_page(response):
        cls, summary = ServerError, f"a gateway in front of fal failed: {text}"
    elif code >= 500:
        cls, summary = ServerError, f"fal server error{kind}: {text}"
    else:
        cls, summary = FalHTTPError, f"fal answered an error{kind}: {text}"
    message = f"{summary} (HTTP {code} on {where})"
    if hint:
        message += f". {hint}"
    return cls(
        message,
        status_code=code,
        error_type=error_type,
        detail=detail,
        request_id=request_id,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        retryable=fal_retryable(response),
    )
