"""Per-request options of a submit: fal's ``X-Fal-*`` headers and query parameters.

Example:
    >>> from pika_tasks.emulator._options import parse_submit_options
    >>> options = parse_submit_options({"x-fal-queue-priority": "low"}, {})
    >>> options.priority, options.headers
    ('low', {'X-Fal-Queue-Priority': 'low'})
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pika_tasks.emulator._jobs import SubmitOptions
from pika_tasks.models import Priority

HEADERS: tuple[str, ...] = (
    "X-Fal-Request-Timeout",
    "X-Fal-Queue-Priority",
    "X-Fal-Object-Lifecycle-Preference",
    "X-Fal-No-Retry",
    "X-Fal-Store-IO",
)
"""The request headers the emulator understands (and records)."""

_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


class OptionError(ValueError):
    """A header or query parameter has a value fal would refuse (answered with 422).

    Attributes:
        loc: where, e.g. ``["header", "X-Fal-Queue-Priority"]``.
        msg: what is wrong.
        input: the value received.
    """

    def __init__(self, loc: list[str], msg: str, value: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg
        self.input = value

    def detail(self) -> dict[str, Any]:
        """The error as one item of a 422 ``detail`` list."""
        return {"loc": self.loc, "msg": self.msg, "type": "value_error", "input": self.input}


def _positive_number(value: str, loc: list[str]) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise OptionError(loc, "Value must be a positive number of seconds.", value)
    return number


def _flag(value: str, loc: list[str]) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise OptionError(loc, "Value must be 1 or 0.", value)


def _lifecycle(value: str, loc: list[str]) -> float:
    try:
        parsed = json.loads(value)
        seconds = parsed["expiration_duration_seconds"]
    except (ValueError, TypeError, KeyError):
        raise OptionError(
            loc, 'Value must be JSON like {"expiration_duration_seconds": 3600}.', value
        ) from None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise OptionError(loc, "expiration_duration_seconds must be a positive number.", value)
    return float(seconds)


def parse_submit_options(headers: Mapping[str, str], query: Mapping[str, str]) -> SubmitOptions:
    """Read a submit's options.

    Args:
        headers: request headers (looked up case-insensitively).
        query: query parameters (``fal_webhook``, ``fal_max_queue_length``).

    Raises:
        OptionError: a value fal would refuse.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    seen = {name: lowered[name.lower()] for name in HEADERS if name.lower() in lowered}

    start_timeout = None
    priority: Priority = "normal"
    expiry = None
    no_retry = False
    store_io = True
    for name, value in seen.items():
        loc = ["header", name]
        if name == "X-Fal-Request-Timeout":
            start_timeout = _positive_number(value, loc)
        elif name == "X-Fal-Queue-Priority":
            if value not in ("normal", "low"):
                raise OptionError(loc, "Value must be 'normal' or 'low'.", value)
            priority = "low" if value == "low" else "normal"
        elif name == "X-Fal-Object-Lifecycle-Preference":
            expiry = _lifecycle(value, loc)
        elif name == "X-Fal-No-Retry":
            no_retry = _flag(value, loc)
        else:
            store_io = _flag(value, loc)

    webhook = query.get("fal_webhook")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise OptionError(["query", "fal_webhook"], "The webhook must be an http(s) URL.", webhook)
    max_length = None
    raw_length = query.get("fal_max_queue_length")
    if raw_length is not None:
        if not raw_length.isdigit():
            raise OptionError(
                ["query", "fal_max_queue_length"], "Value must be a whole number.", raw_length
            )
        max_length = int(raw_length)

    return SubmitOptions(
        webhook_url=webhook,
        start_timeout=start_timeout,
        priority=priority,
        object_expiry_seconds=expiry,
        no_retry=no_retry,
        store_io=store_io,
        max_queue_length=max_length,
        headers=seen,
    )
