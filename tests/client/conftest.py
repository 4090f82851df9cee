"""Fixtures of the client tests: clients that close, emulators, and a key-leak guard.

The autouse ``no_key_in_logs`` fixture checks that no log record of any test
here shows :data:`~_client_support.FAKE_KEY`; ``expect`` does the same for errors.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from _client_support import FAKE_KEY, quick_settings

from pika_tasks.client import PikaClient
from pika_tasks.settings import PikaSettings


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture every log record at DEBUG and check none of them shows the key."""
    caplog.set_level(logging.DEBUG)
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    for record in records:
        text = f"{record.getMessage()} {record.__dict__!r}"
        assert FAKE_KEY not in text, f"the key leaked into a log record of {record.name}"


@pytest.fixture
def follow_in_thread() -> bool:
    """Whether the clients built here follow status streams on a thread (a module may vary it)."""
    return False


@pytest.fixture
async def make_client(follow_in_thread: bool) -> AsyncIterator[Callable[..., PikaClient]]:
    """Build clients (``make_client(url, **settings)`` or ``make_client(settings=...)``)."""
    clients: list[PikaClient] = []
    pools: list[httpx.AsyncClient] = []

    def build(
        url: str | None = None,
        *,
        settings: PikaSettings | None = None,
        http: httpx.AsyncClient | None = None,
        **overrides: Any,
    ) -> PikaClient:
        if settings is None:
            assert url is not None
            settings = quick_settings(url, **overrides)
        client = PikaClient(settings, http=http, follow_in_thread=follow_in_thread)
        clients.append(client)
        if http is not None:
            pools.append(http)
        return client

    yield build
    for client in clients:
        await client.aclose()
    for pool in pools:
        await pool.aclose()


@pytest.fixture
def emu_client(
    make_emulator: Callable[..., Any], make_client: Callable[..., PikaClient]
) -> Callable[..., tuple[Any, PikaClient]]:
    """``emu, client = emu_client(settings={...}, **emulator_config)``: quick jobs, fps 4."""

    def build(settings: dict[str, Any] | None = None, **config: Any) -> tuple[Any, PikaClient]:
        config.setdefault("job_seconds", 0.2)
        config.setdefault("fps", 4)
        emu = make_emulator(**config)
        return emu, make_client(emu.url, **(settings or {}))

    return build
