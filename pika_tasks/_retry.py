"""Retries of transient failures, on stamina.

stamina does the jittered exponential backoff; this module only says *what*
is worth retrying and *how long* fal asked us to wait:

- :func:`backoff_hook` retries what :func:`~pika_tasks.errors.is_transient`
  calls transient (429, 5xx that fal did not mark final, network failures on
  calls that are safe to repeat) and returns ``Retry-After`` as the custom
  backoff when the answer carried one.  A ``Retry-After`` longer than
  :data:`MAX_RETRY_AFTER` is not slept through: the error goes up with its
  ``retry_after`` so the caller (e.g. a Prefect task retry) can reschedule.
- :func:`retrying_caller` scales the backoff to the client's settings: the
  first wait is ``poll_interval`` (plus up to as much jitter), doubling up to
  ``max_poll_interval``, for at most ``max_retries`` retries.
"""

from __future__ import annotations

import logging

import stamina

from pika_tasks.errors import is_transient
from pika_tasks.settings import PikaSettings

logger = logging.getLogger("pika_tasks.client")

MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` (seconds) the client waits out by itself."""


def backoff_hook(error: Exception) -> bool | float:
    """stamina's ``on=`` hook: False to give up, True or a delay in seconds to retry."""
    if not is_transient(error):
        return False
    retry_after: float | None = getattr(error, "retry_after", None)
    if retry_after is None:
        logger.debug("retrying after %s", error)
        return True
    if retry_after > MAX_RETRY_AFTER:
        return False
    logger.debug("retrying in %.2fs as asked (Retry-After): %s", retry_after, error)
    return float(retry_after)


def retrying_caller(settings: PikaSettings) -> stamina.BoundAsyncRetryingCaller:
    """An async caller that retries transient failures as ``settings`` say."""
    caller = stamina.AsyncRetryingCaller(
        attempts=settings.max_retries + 1,
        timeout=None,
        wait_initial=settings.poll_interval,
        wait_max=settings.max_poll_interval,
        wait_jitter=settings.poll_interval,
    )
    return caller.on(backoff_hook)
