"""Loopback ports, and a server on one that must never be reached."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass


def free_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening on it a moment ago.

    Free for a server to take, and refused at once for a client to try.

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class FtpBanner:
    """A loopback port that greets each connection like a busy FTP server, then hangs up.

    ``connections`` lists one entry per connection accepted: any entry means
    something on this machine was contacted.
    """

    port: int
    connections: list[str]


@contextlib.contextmanager
def ftp_banner() -> Iterator[FtpBanner]:
    """An FTP server on 127.0.0.1 that answers ``421`` (service not available) to everyone."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    connections: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, peer = listener.accept()
            except OSError:  # closed at the end of the block
                return
            if stop.is_set():
                connection.close()
                return
            connections.append(f"{peer[0]}:{peer[1]}")
            with contextlib.suppress(OSError), connection:
                connection.sendall(b"421 Service not available, closing control connection.\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield FtpBanner(listener.getsockname()[1], connections)
    finally:
        stop.set()
        # Closing a listening socket does not wake accept(): a last connection does.
        with contextlib.suppress(OSError), socket.create_connection(listener.getsockname(), 1):
            pass
        listener.close()
        thread.join(5)
