"""The one way the tests point a client, a flow or the command line at an emulator.

Every suite uses the same fake key, :data:`KEY`: easy to find in any text, so
that a test can prove it is never shown.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

KEY = "fal-SECRET-canary-7d3f9a2b5e"
"""The fake fal key every test sends (an emulator may require it with ``require_key``)."""

QUICK_WAITS = {
    "PIKA_POLL_INTERVAL": "0.05",
    "PIKA_MAX_POLL_INTERVAL": "0.2",
    "PIKA_RETRY_INITIAL_DELAY": "0.02",
    "PIKA_RETRY_MAX_DELAY": "0.1",
}
"""Polling and retry delays that keep waits on a 0.1 s emulator job, and its faults, short."""


def queue_env(emu: Any | None = None, key: str = KEY) -> dict[str, str]:
    """The settings, as environment variables, that point pika-tasks at ``emu`` with ``key``.

    Without ``emu``: the key and the quick waits alone (a deployment names its URLs).

    >>> class Emu:
    ...     url = "http://127.0.0.1:9"
    >>> env = queue_env(Emu())
    >>> env["PIKA_QUEUE_URL"] == env["PIKA_STORAGE_URL"] == "http://127.0.0.1:9"
    True
    >>> env["FAL_KEY"] == KEY and sorted(queue_env())[:2]
    ['FAL_KEY', 'PIKA_MAX_POLL_INTERVAL']
    """
    env = {"FAL_KEY": key, **QUICK_WAITS}
    if emu is not None:
        env.update(PIKA_QUEUE_URL=emu.url, PIKA_STORAGE_URL=emu.url)
    return env


def point_at(emu: Any, monkeypatch: pytest.MonkeyPatch, key: str = KEY) -> None:
    """Set :func:`queue_env` in this process (for flows run in-process) until the test ends."""
    for name, value in queue_env(emu, key).items():
        monkeypatch.setenv(name, value)


def settings_for(queue: Any, key: str = KEY, **overrides: Any) -> Any:
    """:func:`queue_env` as ``PikaSettings`` (for tasks and clients given their settings).

    ``queue`` is an emulator, or the base URL of any server that plays fal's part.

    >>> settings = settings_for("http://127.0.0.1:9", max_retries=0)
    >>> (settings.queue_url, settings.poll_interval, settings.max_retries)
    ('http://127.0.0.1:9', 0.05, 0)
    """
    from pika_tasks.settings import PikaSettings

    url = queue if isinstance(queue, str) else queue.url
    values: dict[str, Any] = {
        "fal_key": key,
        "queue_url": url,
        "storage_url": url,
        "poll_interval": 0.05,
        "max_poll_interval": 0.2,
        "retry_initial_delay": 0.02,
        "retry_max_delay": 0.1,
        "max_retries": 2,
        **overrides,
    }
    return PikaSettings(**values)


def process_env(emu: Any | None = None, *, key: str = KEY, **extra: str) -> dict[str, str]:
    """The environment of a child process (``pika-tasks``, a flow): pointed at ``emu``.

    This process's environment without its ``FAL_KEY``; with ``emu``, its
    :func:`queue_env`; the tests' Prefect API when one runs (quicker than a
    temporary server per process); wide columns, so Rich tables do not wrap;
    then ``extra``.  Without ``emu`` no key is set.
    """
    from prefect.settings import PREFECT_API_URL

    env = {name: value for name, value in os.environ.items() if name != "FAL_KEY"}
    env.update({"COLUMNS": "250", **QUICK_WAITS})
    api_url = PREFECT_API_URL.value()
    if api_url:
        env["PREFECT_API_URL"] = api_url
    if emu is not None:
        env.update(queue_env(emu, key))
    env.update(extra)
    return env
