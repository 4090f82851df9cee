"""The ASGI application: :func:`create_app` builds a Starlette app around a fresh engine.

Serve it with any ASGI server; :class:`~pika_tasks.emulator._server.EmulatorServer`
runs it with uvicorn in a background thread.

Example:
    >>> from pika_tasks.emulator import create_app
    >>> app = create_app(runners=4, job_seconds=0.5)
    >>> app.state.engine.config.runners
    4
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pika_tasks.emulator._config import EmulatorConfig, build_config
from pika_tasks.emulator._engine import Engine
from pika_tasks.emulator._responses import json_response
from pika_tasks.emulator._routes import build_routes


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal Server Error"
    return json_response(status, {"detail": detail})


def create_app(config: EmulatorConfig | None = None, **overrides: Any) -> Starlette:
    """Build the emulator's ASGI app.

    Args:
        config: the configuration (defaults when ``None``).
        **overrides: fields of :class:`EmulatorConfig` to change.

    Returns:
        A Starlette app; ``app.state.engine`` is its
        :class:`~pika_tasks.emulator._engine.Engine`.
    """
    engine = Engine(build_config(config, **overrides))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine.bind()
        try:
            yield
        finally:
            await engine.aclose()

    app = Starlette(
        routes=build_routes(engine),
        lifespan=lifespan,
        exception_handlers={404: _http_error, 405: _http_error},
    )
    app.state.engine = engine
    return app
