"""Helpers for the image tests: images made with Pillow, loopback http and FTP servers."""

from __future__ import annotations

import contextlib
import http.server
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import support
from PIL import Image


def make_image(
    format: str = "PNG", size: tuple[int, int] = (160, 120), noise: bool = False
) -> bytes:
    """An image file's bytes; ``noise`` makes it large and hard to compress."""
    if noise:
        import os

        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (30, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, format)
    return buffer.getvalue()


@pytest.fixture
def image_bytes() -> Callable[..., bytes]:
    """``image_bytes(format="PNG", size=(160, 120), noise=False)``: see :func:`make_image`."""
    return make_image


@pytest.fixture
def png() -> bytes:
    return make_image("PNG")


@pytest.fixture
def jpeg() -> bytes:
    return make_image("JPEG")


@dataclass
class ImageServer:
    """A loopback http server.

    Tests set ``routes[path] = {"status": 200, "body": b"...", "headers": {...},
    "stall": False}`` (all keys optional).  A ``Content-Length`` header of
    ``""`` sends none (the body then ends when the connection closes); ``stall``
    answers nothing until the server stops.  ``hits`` lists the paths requested.
    """

    url: str
    routes: dict[str, dict[str, Any]]
    hits: list[str]


@pytest.fixture
def http_server() -> Iterator[ImageServer]:
    routes: dict[str, dict[str, Any]] = {}
    hits: list[str] = []
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            route = routes.get(self.path.split("?", 1)[0], {"status": 404, "body": b"not found"})
            if route.get("stall"):
                stop.wait(30)
                return
            body: bytes = route.get("body", b"")
            headers: dict[str, str] = route.get("headers", {})
            self.send_response(route.get("status", 200))
            for name, value in headers.items():
                if value:
                    self.send_header(name, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield ImageServer(f"http://127.0.0.1:{server.server_address[1]}", routes, hits)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def ftp_banner() -> Iterator[support.FtpBanner]:
    """An FTP server on 127.0.0.1 that answers ``421`` (service not available) to everyone."""
    with support.ftp_banner() as banner:
        yield banner
