"""Shared fixtures: an isolated Prefect home, the emulator and an S3 server on loopback."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import free_port

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
    """moto's standalone S3 server on loopback; yields fsspec ``storage_options``."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    fake_aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # Through the environment, not client_kwargs: s3fs would send us-east-1 as a
        # bucket LocationConstraint, which S3 (and moto) refuse.
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in fake_aws}
    os.environ.update(fake_aws)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        yield {
            "endpoint_url": endpoint,
            "key": "testing",
            "secret": "testing",
        }
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh bucket on the S3 server: yields ``("s3://bucket", storage_options)``."""
    import uuid

    import s3fs

    name = f"pika-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    fs.mkdir(name)
    yield f"s3://{name}", s3_server
    fs.rm(name, recursive=True)
