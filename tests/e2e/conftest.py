"""Fixtures of the end-to-end tests: a real Prefect server with the project deployed."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect_stack import PrefectStack
from support import free_port


@pytest.fixture
def stack() -> Iterator[PrefectStack]:
    """A fresh ``prefect server start`` (SQLite, its own PREFECT_HOME), stopped afterwards."""
    home = Path(tempfile.mkdtemp(prefix="pika-e2e-"))
    server = PrefectStack(home, free_port())
    try:
        server.start_server()
        yield server
    finally:
        server.stop()
