"""Writing to any fsspec location without ever leaving a partial file at a final path.

A write goes to a hidden temporary name beside the target and is moved into
place only once it is complete; on any error the temporary is removed.  On a
local disk the move is an atomic rename; on object stores (S3, GCS, ...) the
move is a server-side copy, so the final key only ever appears whole.

Example:
    >>> from pika_tasks.storage import read_text, write_text_atomic
    >>> write_text_atomic("memory://docs/a.txt", "hello")
    >>> read_text("memory://docs/a.txt")
    'hello'
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

TEMP_MARKER = ".partial-"


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path within it."""
    fs, path = url_to_fs(url, **(storage_options or {}))
    return fs, path


def join(base: str, *names: str) -> str:
    """Join names under a URL or path, keeping its protocol.

    >>> join("s3://bucket/out/", "a.mp4")
    's3://bucket/out/a.mp4'
    """
    return posixpath.join(base.rstrip("/") or base, *names)


def temporary_name(path: str) -> str:
    """A unique hidden name in the same folder as ``path``."""
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}{TEMP_MARKER}{uuid.uuid4().hex[:12]}")


def remove_partials(url: str, storage_options: dict[str, Any] | None = None) -> int:
    """Delete temporaries that an interrupted write of ``url`` left behind; return how many.

    A process killed mid-write (SIGKILL) cannot clean up after itself, so the
    next writer of the same path does.
    """
    fs, path = filesystem(url, storage_options)
    pattern = temporary_name(path).rsplit(TEMP_MARKER, 1)[0] + TEMP_MARKER + "*"
    stale = fs.glob(pattern)
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(name)
    return len(stale)


@contextlib.contextmanager
def atomic_writer(url: str, storage_options: dict[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """Open ``url`` for binary writing; it appears at ``url`` only if the block succeeds.

    Example:
        >>> with atomic_writer("memory://docs/b.bin") as f:
        ...     _ = f.write(b"abc")
        >>> read_bytes("memory://docs/b.bin")
        b'abc'
    """
    fs, path = filesystem(url, storage_options)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    temp = temporary_name(path)
    try:
        with fs.open(temp, "wb") as handle:
            yield handle
        fs.mv(temp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            if fs.exists(temp):
                fs.rm(temp)
        raise


def write_bytes_atomic(
    url: str, data: bytes, storage_options: dict[str, Any] | None = None
) -> None:
    """Write ``data`` to ``url`` atomically."""
    with atomic_writer(url, storage_options) as handle:
        handle.write(data)


def write_text_atomic(url: str, text: str, storage_options: dict[str, Any] | None = None) -> None:
    """Write UTF-8 ``text`` to ``url`` atomically."""
    write_bytes_atomic(url, text.encode("utf-8"), storage_options)


def read_bytes(url: str, storage_options: dict[str, Any] | None = None) -> bytes:
    """The whole content of ``url``."""
    with fsspec.open(url, "rb", **(storage_options or {})) as handle:
        data: bytes = handle.read()
        return data


def read_text(url: str, storage_options: dict[str, Any] | None = None) -> str:
    """The UTF-8 content of ``url``."""
    return read_bytes(url, storage_options).decode("utf-8")


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """True when ``url`` exists."""
    fs, path = filesystem(url, storage_options)
    return bool(fs.exists(path))
