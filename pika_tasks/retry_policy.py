"""How pika-tasks retries, stated once: one layer of retries, in the client.

A transient failure (:func:`~pika_tasks.errors.is_transient`: a 429, a 5xx fal
did not mark final, a network failure on a call that is safe to repeat) is
retried by :class:`~pika_tasks.client.PikaClient`, with stamina's jittered
exponential backoff.  The Prefect tasks do not retry on top of it by default
(``retries=0``): one failed call is never multiplied by a second loop and a
second backoff.  A user may opt in to task retries (``task.with_options(
retries=N)`` or the batch flow's ``task_retries``); they then multiply the
attempts, as :meth:`RetryPolicy.total_attempts` says, and they retry only what
``is_transient`` accepts.

The numbers, with the default settings (``max_retries=5``,
``retry_initial_delay=0.5``, ``retry_max_delay=5.0``):

- **attempts of one call:** 6 (the first and 5 retries);
- **wait before retry n:** at most ``min(5.0, 0.5 * 2**(n-1) + 0.5)`` seconds
  when fal sent no ``Retry-After`` (1, 1.5, 2.5, 4.5, 5: 14.5 s in all);
- **a ``Retry-After``** is waited out when it is at most
  :data:`MAX_RETRY_AFTER` (60 s); a longer one is not slept through: the
  error goes up at once, carrying ``retry_after``;
- **longest wait of one call:** 5 x 60 = 300 s, if fal asked for a full
  minute before every retry;
- **Prefect task retries:** 0, so the totals above are the totals.

A submit is retried only when fal provably did not queue the job; a submit
whose answer was lost raises
:class:`~pika_tasks.errors.SubmitOutcomeUnknownError` and is never resent,
by the client or by a task (the error is not transient).

Polling is not retrying: waiting for a job polls with ``poll_interval`` and
``max_poll_interval``, settings of their own.

Example:
    >>> from pika_tasks.retry_policy import RetryPolicy
    >>> policy = RetryPolicy()
    >>> policy.attempts, policy.total_attempts(), policy.task_retries
    (6, 6, 0)
    >>> [policy.longest_backoff(n) for n in range(1, 6)]
    [1.0, 1.5, 2.5, 4.5, 5.0]
    >>> policy.longest_wait_without_retry_after(), policy.longest_wait()
    (14.5, 300.0)
    >>> policy.total_attempts(task_retries=2)  # when a user opts in to task retries
    18
"""

from __future__ import annotations

from dataclasses import dataclass

from pika_tasks.settings import PikaSettings

__all__ = ["MAX_RETRY_AFTER", "TASK_RETRIES", "RetryPolicy"]

MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` (seconds) the client waits out by itself."""

TASK_RETRIES = 0
"""Retries of the Prefect tasks by default: none, the client retries."""


def _default(setting: str) -> float:
    # The settings' defaults are the policy's: one number, one place.
    value: float = PikaSettings.model_fields[setting].default
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """The retry numbers of one client.

    Attributes:
        retries: retries of one call after its first attempt (``max_retries``).
        initial_delay: the first backoff, in seconds, doubled per retry
            (``retry_initial_delay``); the jitter adds up to as much again.
        max_delay: the longest backoff without ``Retry-After`` (``retry_max_delay``).
        max_retry_after: the longest ``Retry-After`` waited out.
        task_retries: retries of the Prefect tasks on top (0: none).

    Example:
        >>> RetryPolicy.from_settings(PikaSettings(max_retries=2)).attempts
        3
    """

    retries: int = int(_default("max_retries"))
    initial_delay: float = _default("retry_initial_delay")
    max_delay: float = _default("retry_max_delay")
    max_retry_after: float = MAX_RETRY_AFTER
    task_retries: int = TASK_RETRIES

    @classmethod
    def from_settings(cls, settings: PikaSettings) -> RetryPolicy:
        """The policy the settings describe."""
        return cls(
            retries=settings.max_retries,
            initial_delay=settings.retry_initial_delay,
            max_delay=settings.retry_max_delay,
        )

    @property
    def attempts(self) -> int:
        """Attempts of one call by the client: the first, then ``retries``."""
        return self.retries + 1

    @property
    def jitter(self) -> float:
        """The most random time added to a backoff (stamina's ``wait_jitter``)."""
        return self.initial_delay

    def longest_backoff(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (from 1) without ``Retry-After``.

        stamina waits ``min(max_delay, initial_delay * 2**(retry-1) + jitter)``
        with a jitter drawn from ``[0, jitter]``.
        """
        if retry < 1:
            raise ValueError("retries are numbered from 1")
        doubled: float = self.initial_delay * 2.0 ** (retry - 1)
        return min(self.max_delay, doubled + self.jitter)

    def longest_wait_without_retry_after(self) -> float:
        """The longest the client sleeps in one call when fal never sends ``Retry-After``."""
        return sum(self.longest_backoff(n) for n in range(1, self.retries + 1))

    def longest_wait(self) -> float:
        """The longest the client sleeps in one call, ``Retry-After`` included."""
        return sum(
            max(self.longest_backoff(n), self.max_retry_after) for n in range(1, self.retries + 1)
        )

    def total_attempts(self, task_retries: int | None = None) -> int:
        """Attempts of one call in the worst case, task retries included.

        Args:
            task_retries: the tasks' retries, when a user opted in; default
                :attr:`task_retries`.
        """
        tasks = self.task_retries if task_retries is None else task_retries
        return self.attempts * (tasks + 1)
