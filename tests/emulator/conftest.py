"""Fixtures of the emulator tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from emulator_support import data_uri, png_bytes


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A plain HTTP client with a generous timeout."""
    with httpx.Client(timeout=30.0) as http:
        yield http


@pytest.fixture(scope="session")
def image_uri() -> str:
    """The structured test picture as a PNG data URI."""
    return data_uri(png_bytes())
