"""Retries of transient failures, on stamina.

stamina does the jittered exponential backoff; this module only says *what*
is worth retrying and *how long* fal asked us to wait:

- :func:`backoff_hook` retries what :func:`~pika_tasks.errors.is_transient`
  calls transient (429, 5xx that fal did not mark final, network failures on
  calls that are safe to repeat) and returns ``Retry-After`` as the custom
  backoff when the answer carried one.  A ``Retry-After`` longer than
  :data:`MAX_RETRY_AFTER` is not slept through: the error goes up with its
  ``retry_after`` so the caller (e.g. a Prefect task retry) can reschedule.
- :func:`retrying_caller` runs a call under a
  :class:`~pika_tasks.retry_policy.RetryPolicy` (the numbers, stated and
  tested there): the first wait is ``retry_initial_delay`` (plus up to as much
  jitter), doubling up to ``retry_max_delay``, for at most ``max_retries``
  retries.  It logs each retry as it is decided, and the last failure of a
  call that had no attempt left as giving up, never as a retry that will not come.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import stamina

from pika_tasks.errors import is_transient
from pika_tasks.retry_policy import MAX_RETRY_AFTER, RetryPolicy
from pika_tasks.settings import PikaSettings

logger = logging.getLogger("pika_tasks.client")

P = ParamSpec("P")
T = TypeVar("T")


def backoff_hook(error: Exception, max_retry_after: float = MAX_RETRY_AFTER) -> bool | float:
    """stamina's ``on=`` decision: False to give up, True or a delay in seconds to retry.

    Decides only; :class:`RetryingCaller` logs what is done, since only it
    knows whether an attempt is left.
    """
    if not is_transient(error):
        return False
    retry_after: float | None = getattr(error, "retry_after", None)
    if retry_after is None:
        return True
    if retry_after > max_retry_after:
        return False
    return float(retry_after)


class _CallDecisions:
    """:func:`backoff_hook` for one call, counting its failures to tell the last one.

    stamina calls the hook before it checks whether an attempt is left, so the
    hook itself must know.  (Under ``stamina.set_testing``, which caps attempts
    behind our back, the last failure may still be logged as a retry.)
    """

    def __init__(self, attempts: int, max_retry_after: float) -> None:
        self.attempts = attempts
        self.max_retry_after = max_retry_after
        self.failures = 0

    def __call__(self, error: Exception) -> bool | float:
        self.failures += 1
        decision = backoff_hook(error, self.max_retry_after)
        if decision is False:
            return False
        if self.failures >= self.attempts:
            # stamina would stop here anyway: say so rather than announce a retry.
            logger.debug("giving up after %s: %s", _attempts(self.failures), error)
            return False
        left = _attempts(self.attempts - self.failures)
        if decision is True:
            logger.debug("retrying (%s left) after %s", left, error)
        else:
            logger.debug(
                "retrying in %.2fs as asked (Retry-After, %s left): %s", decision, left, error
            )
        return decision


def _attempts(count: int) -> str:
    """``1 attempt``, ``2 attempts``."""
    return f"{count} attempt" if count == 1 else f"{count} attempts"


class RetryingCaller:
    """Calls an async callable, retrying its transient failures as the policy says.

    ``await caller(fn, *args, **kwargs)`` returns what ``fn`` returns, or raises
    its last error.  Each call counts its own attempts, so one caller serves
    many concurrent calls.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.attempts = policy.attempts
        self._stamina = stamina.AsyncRetryingCaller(
            attempts=policy.attempts,
            timeout=None,
            wait_initial=policy.initial_delay,
            wait_max=policy.max_delay,
            wait_jitter=policy.jitter,
            wait_exp_base=2,
        )

    async def __call__(
        self, callable_: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        decisions = _CallDecisions(self.attempts, self.policy.max_retry_after)
        return await self._stamina(decisions, callable_, *args, **kwargs)


def retrying_caller(settings: PikaSettings) -> RetryingCaller:
    """An async caller that retries transient failures as ``settings`` say."""
    return RetryingCaller(RetryPolicy.from_settings(settings))
