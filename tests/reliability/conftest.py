"""Fixtures of the reliability tests: a log capture at DEBUG that misses no logger."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

_LOUD = ("prefect", "pika_tasks", "httpx", "httpcore", "stamina")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` at DEBUG everywhere, including loggers that do not propagate to the root.

    Prefect sets its own loggers' levels from its settings and stops some of
    them from propagating; the capture's handler is attached to those
    directly, so every record any library logs reaches it (once).
    """
    caplog.set_level(logging.DEBUG)
    for name in _LOUD:
        caplog.set_level(logging.DEBUG, logger=name)
    attached: list[logging.Logger] = []
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and not logger.propagate:
            logger.addHandler(caplog.handler)
            attached.append(logger)
    try:
        yield caplog
    finally:
        for logger in attached:
            logger.removeHandler(caplog.handler)
