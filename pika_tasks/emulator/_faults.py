"""Deterministic fault decisions: every "should this fail?" is a hash, not an RNG.

Each decision hashes ``(seed, kind, key...)`` to a number in ``[0, 1)`` and
compares it with a rate.  The key names what is being decided (a route and
the n-th request for a request id, the submission number of a job, a file
name and the n-th download of it), so the same seed and the same traffic
give the same faults whatever the threads and timing do.

The plan also holds the scripted rules (:mod:`~pika_tasks.emulator._rules`),
which inject exact faults rather than a rate of them.

Example:
    >>> from pika_tasks.emulator._faults import unit_hash
    >>> unit_hash(0, "job_failure", 7) == unit_hash(0, "job_failure", 7)
    True
    >>> 0.0 <= unit_hash(1, "x") < 1.0
    True
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from pika_tasks.emulator._config import EmulatorConfig
from pika_tasks.emulator._infra import INFRA_ERRORS, RATE_LIMITED, FaultSpec
from pika_tasks.emulator._rules import FaultRules

HttpFault = Literal["http_5xx", "http_429"]

_SCALE = float(1 << 64)


def unit_hash(seed: int, kind: str, *key: object) -> float:
    """A number in ``[0, 1)`` determined by ``seed``, ``kind`` and ``key``."""
    text = "\x1f".join([str(seed), kind, *map(str, key)])
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True)
class InfraFault:
    """An injected infrastructure error: what kind it counts as, and how it answers."""

    kind: HttpFault
    spec: FaultSpec

    @property
    def status_code(self) -> int:
        """The HTTP status of the answer."""
        return self.spec.status_code

    @property
    def error_type(self) -> str | None:
        """fal's ``error_type`` of the answer."""
        return self.spec.error_type


SERVICE_UNAVAILABLE = InfraFault(kind="http_5xx", spec=INFRA_ERRORS["runner_scheduling_failure"])
TOO_MANY_REQUESTS = InfraFault(kind="http_429", spec=RATE_LIMITED)


class FaultPlan:
    """Decides, from the config's rates and seed, which answers and jobs fail.

    Counters of how often each subject was seen live here so that the n-th
    request for the same request id (or file) always gets the same decision.
    All methods run on the server's event loop.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._seen: Counter[tuple[str, str]] = Counter()
        self.rules = FaultRules(config.faults)

    def _next(self, route: str, subject: str) -> int:
        self._seen[route, subject] += 1
        return self._seen[route, subject]

    def http_fault(self, route: str, subject: str | None) -> InfraFault | None:
        """The infrastructure error to answer ``route`` with, if any.

        Args:
            route: the route name (see :data:`~pika_tasks.emulator._config.ALL_ROUTES`).
            subject: what the request is about (a request id or file name), or
                ``None`` to key on the route's own request count.
        """
        config = self._config
        if route not in config.faulty_routes:
            return None
        if config.error_rate_5xx == 0.0 and config.error_rate_429 == 0.0:
            return None
        subject_key = subject or "*"
        n = self._next(route, subject_key)
        if unit_hash(config.seed, "http_5xx", route, subject_key, n) < config.error_rate_5xx:
            return SERVICE_UNAVAILABLE
        if unit_hash(config.seed, "http_429", route, subject_key, n) < config.error_rate_429:
            return TOO_MANY_REQUESTS
        return None

    def drop_download(self, file_name: str) -> float | None:
        """Where to cut the n-th download of ``file_name``, as a fraction of its body.

        Returns ``None`` when the download should complete.
        """
        config = self._config
        if config.drop_download_rate == 0.0:
            return None
        n = self._next("drop", file_name)
        if unit_hash(config.seed, "drop", file_name, n) >= config.drop_download_rate:
            return None
        return 0.2 + 0.6 * unit_hash(config.seed, "drop_at", file_name, n)

    def job_fails(self, seq: int) -> bool:
        """Whether job number ``seq`` completes with an error."""
        rate = self._config.job_failure_rate
        return rate > 0.0 and unit_hash(self._config.seed, "job_failure", seq) < rate

    def runner_fails(self, seq: int) -> bool:
        """Whether the first runner of job number ``seq`` fails part-way."""
        rate = self._config.runner_failure_rate
        return rate > 0.0 and unit_hash(self._config.seed, "runner_failure", seq) < rate

    def job_seconds(self, seq: int, attempt: int) -> float:
        """How long attempt ``attempt`` of job ``seq`` stays IN_PROGRESS."""
        config = self._config
        if config.job_jitter == 0.0:
            return config.job_seconds
        u = unit_hash(config.seed, "jitter", seq, attempt)
        return max(0.0, config.job_seconds * (1.0 + config.job_jitter * (2.0 * u - 1.0)))

    def reset(self) -> None:
        """Forget how often each subject was seen."""
        self._seen.clear()
