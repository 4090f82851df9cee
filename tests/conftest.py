"""Shared fixtures: an isolated Prefect home, the emulator and an S3 server on loopback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import support
from hypothesis import settings

# Property tests draw the same examples on every run, with no time limit per example,
# so that CI passes or fails the same way each time; HYPOTHESIS_PROFILE=explore draws
# new ones (a failure found that way is kept as an @example).
settings.register_profile("repeatable", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# Isolate Prefect before anything imports it: no user profile, no user server.
_PREFECT_HOME = tempfile.mkdtemp(prefix="pika-tests-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILE", None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
os.environ.pop("FAL_KEY", None)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A throwaway Prefect API (SQLite) for the tests that run tasks and flows."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Any]]:
    """Start emulators with any configuration; all are stopped after the test.

    Example: ``emu = make_emulator(runners=4, job_seconds=0.2)``; ``emu.url``
    is its base URL and ``emu.stats()`` its counters.
    """
    from pika_tasks.emulator import EmulatorServer

    started: list[EmulatorServer] = []

    def start(**config: Any) -> EmulatorServer:
        server = EmulatorServer(**config)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Any]) -> Any:
    """An emulator with quick jobs, for tests that only need a working queue."""
    return make_emulator(job_seconds=0.2, fps=8)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, Any]]:
    """moto's S3 on loopback for the session; yields fsspec ``storage_options``."""
    saved = {k: os.environ.get(k) for k in support.FAKE_AWS}
    os.environ.update(support.FAKE_AWS)
    try:
        with support.s3_server() as options:
            yield options
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh bucket on the S3 server: yields ``("s3://bucket", storage_options)``."""
    with support.s3_bucket(s3_server) as bucket:
        yield bucket, s3_server
