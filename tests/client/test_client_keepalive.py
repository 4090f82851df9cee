"""Idle connections are dropped before the server drops them.

A request sent on a connection the server is closing fails after it was
sent; for a submit (fal has no idempotency key) that is an answer lost, and
the row is reported instead of paid twice.  So the client forgets an idle
connection before the emulator's server (uvicorn, whose idle timeout is that
of many servers) closes it.
"""

from __future__ import annotations

from typing import Any

import uvicorn

from pika_tasks import client as client_module
from pika_tasks.emulator import EmulatorServer


def test_idle_connections_expire_before_the_servers_idle_timeout() -> None:
    emulator = EmulatorServer(job_seconds=0.1)
    with emulator:
        server: Any = emulator._server
        assert isinstance(server, uvicorn.Server)
        server_idle = server.config.timeout_keep_alive
    assert server_idle > client_module._KEEPALIVE_EXPIRY
