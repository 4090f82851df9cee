"""Run the emulator with uvicorn in a background thread, on loopback by default.

Example:
    >>> import httpx
    >>> from pika_tasks.emulator import EmulatorServer
    >>> with EmulatorServer(job_seconds=0.1, fps=2) as emu:
    ...     httpx.get(f"{emu.url}/_emulator/stats").json()["submissions"]
    0
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from pika_tasks.emulator._app import create_app
from pika_tasks.emulator._config import EmulatorConfig, build_config
from pika_tasks.emulator._engine import Engine
from pika_tasks.emulator._responses import DownloadDropped
from pika_tasks.emulator._rules import FaultRule


class _HideDroppedDownloads(logging.Filter):
    """Keeps uvicorn from logging a traceback for every download we cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, DownloadDropped):
                return False
            if isinstance(error, BaseExceptionGroup) and any(
                isinstance(inner, DownloadDropped) for inner in error.exceptions
            ):
                return False
            error = error.__cause__ or error.__context__
        return True


_FILTER = _HideDroppedDownloads()


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class EmulatorServer:
    """The emulator on a real port, served from a background thread.

    Args:
        config: the configuration (defaults when ``None``).
        host: interface to bind (``127.0.0.1`` by default: loopback only).
        port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
        ssl_certfile: PEM certificate, to serve https (fal's own client needs it).
        ssl_keyfile: PEM private key of that certificate.
        **overrides: fields of :class:`EmulatorConfig` to change.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_certfile: str | Path | None = None,
        ssl_keyfile: str | Path | None = None,
        **overrides: Any,
    ) -> None:
        self.config = build_config(config, **overrides)
        self.host = host
        self.port = port
        self.ssl_certfile = str(ssl_certfile) if ssl_certfile else None
        self.ssl_keyfile = str(ssl_keyfile) if ssl_keyfile else None
        self.app = create_app(self.config)
        self.engine: Engine = self.app.state.engine
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8000`` (https when TLS is on)."""
        scheme = "https" if self.ssl_certfile else "http"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 30.0) -> EmulatorServer:
        """Start serving; returns once the server accepts connections.

        Raises:
            RuntimeError: already started, or it did not come up in ``timeout`` seconds.
            OSError: the port could not be bound.
        """
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        if self.engine.closing:
            raise RuntimeError("a stopped emulator cannot be restarted: create a new one")
        _install_log_filter()
        sock = _bind(self.host, self.port)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="pika-emulator", daemon=True
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                self._cleanup()
                raise RuntimeError("the emulator failed to start (see the log above)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start within {timeout:g} s")
            time.sleep(0.01)
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops or ``timeout`` passes; True if it stopped."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: end open status streams, then shut uvicorn down."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.engine.begin_shutdown_threadsafe()
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._server = None
        self._thread = None

    def stats(self) -> dict[str, Any]:
        """The counters, the same JSON as ``GET /_emulator/stats``."""
        return self.engine.stats_threadsafe()

    def inject(self, *rules: FaultRule | str) -> None:
        """Arm scripted faults, each a :class:`FaultRule` or its ``ROUTE=FAULT`` text.

        ``emu.inject("status=runner_disconnected:2")`` answers the next two
        status requests with a 503 ``runner_disconnected``.
        """
        parsed = [FaultRule.parse(rule) if isinstance(rule, str) else rule for rule in rules]

        def arm() -> None:
            for rule in parsed:
                self.engine.faults.rules.add(rule)

        self.engine.call_threadsafe(arm)

    def pause(self) -> None:
        """Start no more jobs until :meth:`resume`: submitted jobs wait IN_QUEUE."""
        self.engine.call_threadsafe(self.engine.pause)

    def resume(self) -> None:
        """Start jobs again."""
        self.engine.call_threadsafe(self.engine.resume)

    def expire(self, *request_ids: str, videos_only: bool = False) -> list[str]:
        """Expire now the results and videos of the jobs named (of every completed job if none).

        ``emu.expire()`` does at once what ``result_ttl_seconds`` does in time:
        the results answer 404 and the videos are gone.  With ``videos_only``
        the results stay and only the videos go (a short object lifecycle).
        Returns the ids expired.
        """
        wanted = request_ids or None
        return self.engine.call_threadsafe(
            lambda: self.engine.expire_results(wanted, videos_only=videos_only)
        )

    def clear_faults(self) -> None:
        """Disarm every scripted fault still waiting."""
        self.engine.call_threadsafe(self.engine.faults.rules.clear)

    def __enter__(self) -> EmulatorServer:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmulatorServer({self.url!r}, {state})"
