"""Writing to any fsspec location without ever leaving a partial file at a final path.

A write goes to a hidden temporary name beside the target and is moved into
place only once it is complete; on any error the temporary is removed.  On a
local disk the move is an atomic rename.  On S3 the final key is written
directly, since an object is visible only once its upload completes: the
upload is completed when the write succeeds, and never sent (or its multipart
upload aborted) when it fails, which saves the server-side copy a move would
cost.  Other object stores (GCS, Azure) take the temporary name and a move.

Example:
    >>> from pika_tasks.storage import read_text, write_text_atomic
    >>> write_text_atomic("memory://docs/a.txt", "hello")
    >>> read_text("memory://docs/a.txt")
    'hello'
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import posixpath
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Any

from fsspec.core import url_to_fs

from pika_tasks._shielded import settled, shielded

__all__ = [
    "TEMP_MARKER",
    "AsyncSink",
    "atomic_writer",
    "atomic_writer_async",
    "exists",
    "filesystem",
    "join",
    "protocols_of",
    "read_bytes",
    "read_text",
    "remove_files",
    "stale_partials",
    "temporary_name",
    "write_bytes_atomic",
    "write_text_atomic",
]

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


def stale_partials(
    folder: str, storage_options: dict[str, Any] | None = None
) -> dict[str, list[str]]:
    """Temporaries in ``folder`` left by interrupted writes, by the name each was writing.

    A process killed mid-write (SIGKILL) cannot clean up after itself, so the
    next writer of the same path does; one listing answers for every file in
    the folder (a listing per file would grow with the square of a batch).

    >>> from pika_tasks.storage import temporary_name, write_bytes_atomic
    >>> write_bytes_atomic("memory://stale/" + temporary_name("a.mp4"), b"half")
    >>> list(stale_partials("memory://stale"))
    ['a.mp4']
    """
    fs, path = filesystem(folder, storage_options)
    try:
        names = fs.ls(path, detail=False, refresh=True)
    except FileNotFoundError:
        return {}
    finally:
        # A listing cached now would answer later existence checks with old news.
        fs.invalidate_cache(path)
    found: dict[str, list[str]] = {}
    for name in names:
        base = posixpath.basename(name.rstrip("/"))
        if base.startswith(".") and TEMP_MARKER in base:
            found.setdefault(base[1:].rsplit(TEMP_MARKER, 1)[0], []).append(name)
    return found


def remove_files(
    paths: list[str], like_url: str, storage_options: dict[str, Any] | None = None
) -> None:
    """Delete ``paths`` (on the filesystem of ``like_url``); ones already gone are fine."""
    fs, _ = filesystem(like_url, storage_options)
    for name in paths:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(name)


# S3 publishes an object only when its upload completes: one PUT when the file
# closes (smaller than a block) or a multipart upload completed at close.  So
# writing the final key, and on failure discarding (aborting the multipart
# upload) instead of closing, is as safe as a temporary name, and saves the
# server-side copy that a move costs there.  Limited to the stores whose
# discard we test; the others take the temporary name.
_DIRECT_WRITE_PROTOCOLS = frozenset({"s3", "s3a"})


# Writes there only copy into the page cache (or a dict): cheaper than a thread hop.
_IN_PLACE_PROTOCOLS = frozenset({"file", "local", "memory"})


def protocols_of(fs: Any) -> frozenset[str]:
    """The protocol names a filesystem answers to (fsspec gives one or a tuple).

    >>> import fsspec
    >>> sorted(protocols_of(fsspec.filesystem("memory")))
    ['memory']
    """
    names = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    return frozenset(names)


def _speaks(fs: Any, protocols: frozenset[str]) -> bool:
    """True when the filesystem answers to one of ``protocols``."""
    return bool(protocols_of(fs) & protocols)


# Local disks: a rename reaches the disk on its own schedule, possibly before the data
# it names, so after a power cut a new name can point at an empty file.
_LOCAL_DISK_PROTOCOLS = frozenset({"file", "local"})


# What a filesystem that cannot sync answers (a folder on Windows, some FUSE, CIFS and
# virtiofs mounts): the write itself has been made, it is only not known to be on disk.
# An I/O error (EIO) is not among them: that one means data was lost.
_CANNOT_SYNC = frozenset(
    {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EPERM}
)


def _sync(sync: Callable[[], None]) -> None:
    try:
        sync()
    except OSError as error:
        if error.errno not in _CANNOT_SYNC:
            raise


def _sync_file(handle: Any) -> None:
    """Make what was written to ``handle`` reach the disk, where the filesystem can."""
    handle.flush()
    _sync(lambda: os.fsync(handle.fileno()))


def _sync_folder(path: str) -> None:
    """Make the entries of ``path``'s folder (a rename into it) reach the disk, where it can."""

    def sync() -> None:
        folder = os.open(posixpath.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    _sync(sync)


class _AtomicTarget:
    """One write that appears at its path whole or not at all: open, then commit or discard.

    ``durable`` (local disks): the data reaches the disk before the rename that
    publishes it, and the rename before the commit returns, so that what the
    file says survives a power cut as well as a crash.  Object stores have
    stored an object durably once its upload is answered.
    """

    def __init__(
        self, url: str, storage_options: dict[str, Any] | None, durable: bool = False
    ) -> None:
        self.fs, self.path = filesystem(url, storage_options)
        self.direct = _speaks(self.fs, _DIRECT_WRITE_PROTOCOLS)
        self.durable = durable and _speaks(self.fs, _LOCAL_DISK_PROTOCOLS)
        self.temp: str | None = None
        self.handle: Any = None

    def open(self) -> IO[bytes]:
        if self.direct:
            self.handle = self.fs.open(self.path, "wb")
        else:
            parent = posixpath.dirname(self.path)
            if parent:
                self._make_folders(parent)
            self.temp = temporary_name(self.path)
            self.handle = self.fs.open(self.temp, "wb")
        handle: IO[bytes] = self.handle
        return handle

    def _make_folders(self, folder: str) -> None:
        """Create ``folder`` and what is missing above it; durably, each new name synced."""
        if not self.durable:
            self.fs.makedirs(folder, exist_ok=True)
            return
        missing = []
        while folder and not self.fs.exists(folder):
            missing.append(folder)
            up = posixpath.dirname(folder)
            folder = "" if up == folder else up
        if missing:
            self.fs.makedirs(missing[0], exist_ok=True)
        # A new folder is a name in its parent: without a sync, a power cut can take
        # it, and every record written into it, away.
        for made in reversed(missing):
            _sync_folder(made)

    def commit(self) -> None:
        if self.durable:
            _sync_file(self.handle)
        self.handle.close()  # on S3 this is the upload (or its completion)
        if not self.direct:
            self.fs.mv(self.temp, self.path)
            if self.durable:
                _sync_folder(self.path)

    def discard(self) -> None:
        if self.handle is None:
            return
        if self.direct:
            with contextlib.suppress(Exception):
                self.handle.discard()  # aborts the multipart upload
            # Closing would flush the buffer as one more part: mark it closed instead.
            self.handle.closed = True
            return
        with contextlib.suppress(Exception):
            self.handle.close()
        with contextlib.suppress(Exception):
            if self.fs.exists(self.temp):
                self.fs.rm(self.temp)


@contextlib.contextmanager
def atomic_writer(
    url: str, storage_options: dict[str, Any] | None = None, *, durable: bool = False
) -> Iterator[IO[bytes]]:
    """Open ``url`` for binary writing; it appears at ``url`` only if the block succeeds.

    ``durable``: on a local disk, the file and its name reach the disk before
    the block ends (two ``fsync`` calls), so a power cut cannot leave the name
    pointing at an empty file.

    Example:
        >>> with atomic_writer("memory://docs/b.bin") as f:
        ...     _ = f.write(b"abc")
        >>> read_bytes("memory://docs/b.bin")
        b'abc'
    """
    target = _AtomicTarget(url, storage_options, durable)
    try:
        handle = target.open()
        yield handle
        target.commit()
    except BaseException:
        target.discard()
        raise


class AsyncSink:
    """The async face of an atomic write.

    On remote stores each write runs in a worker thread: it can block for as
    long as an upload takes (s3fs sends a part whenever its buffer fills), and
    in a thread it never stalls the event loop that other rows' downloads and
    status streams run on.  On a local disk (or in memory) a write only copies
    into the page cache, cheaper than the hop to a thread, so it runs in place.
    """

    def __init__(self, handle: IO[bytes], in_place: bool) -> None:
        self._handle = handle
        self._in_place = in_place
        self._in_flight: asyncio.Future[None] | None = None

    async def write(self, data: bytes) -> None:
        """Write ``data`` (in a worker thread unless the store is local)."""
        if self._in_place:
            self._handle.write(data)
            return
        # Shielded: cancelling the caller cannot stop the thread, whose write may be
        # starting a multipart upload; settle() waits for it before anything is discarded.
        self._in_flight = asyncio.ensure_future(asyncio.to_thread(self._write_all, data))
        await asyncio.shield(self._in_flight)

    async def settle(self) -> None:
        """Wait for a write still running in its thread, whatever its outcome."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await settled(in_flight)  # the write's own error is already raised

    def _write_all(self, data: bytes) -> None:
        self._handle.write(data)

    @property
    def writer(self) -> Callable[[bytes], object]:
        """The cheapest way to write a piece from a caller with threads of its own.

        On a local disk (or in memory): the file's own ``write``, a plain function
        to call from any one thread at a time (a download calls it from the thread
        that hashes the piece, so the event loop's thread only reads the network).
        Elsewhere: :meth:`write`, to be awaited.
        """
        if self._in_place:
            return self._handle.write
        return self.write


@contextlib.asynccontextmanager
async def atomic_writer_async(
    url: str, storage_options: dict[str, Any] | None = None
) -> AsyncIterator[AsyncSink]:
    """:func:`atomic_writer` for async code: opening, writes and the commit run in threads.

    Example:
        >>> import asyncio
        >>> async def save() -> None:
        ...     async with atomic_writer_async("memory://docs/c.bin") as sink:
        ...         await sink.write(b"xyz")
        >>> asyncio.run(save())
        >>> read_bytes("memory://docs/c.bin")
        b'xyz'
    """
    target = _AtomicTarget(url, storage_options)
    sink: AsyncSink | None = None
    try:
        handle = await asyncio.to_thread(target.open)
        sink = AsyncSink(handle, in_place=_speaks(target.fs, _IN_PLACE_PROTOCOLS))
        yield sink
        await asyncio.to_thread(target.commit)
    except BaseException:
        # A cancelled fetch must still take its partial upload away, once the write
        # left running in its thread has finished starting it.
        await shielded(_discard(target, sink))
        raise


async def _discard(target: _AtomicTarget, sink: AsyncSink | None) -> None:
    if sink is not None:
        await sink.settle()
    await asyncio.to_thread(target.discard)


def write_bytes_atomic(
    url: str, data: bytes, storage_options: dict[str, Any] | None = None, *, durable: bool = False
) -> None:
    """Write ``data`` to ``url`` atomically (``durable``: see :func:`atomic_writer`)."""
    with atomic_writer(url, storage_options, durable=durable) as handle:
        handle.write(data)


def write_text_atomic(
    url: str, text: str, storage_options: dict[str, Any] | None = None, *, durable: bool = False
) -> None:
    """Write UTF-8 ``text`` to ``url`` atomically (``durable``: see :func:`atomic_writer`)."""
    write_bytes_atomic(url, text.encode("utf-8"), storage_options, durable=durable)


def read_bytes(url: str, storage_options: dict[str, Any] | None = None) -> bytes:
    """The whole content of ``url``, in one read.

    One request on object stores: a file opened and read in blocks can change
    between two blocks when another run rewrites it (s3fs then raises
    ``FileExpired``), while one GET returns one whole version.
    """
    fs, path = filesystem(url, storage_options)
    data: bytes = fs.cat_file(path)
    return data


def read_text(url: str, storage_options: dict[str, Any] | None = None) -> str:
    """The UTF-8 content of ``url``."""
    return read_bytes(url, storage_options).decode("utf-8")


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """True when ``url`` exists."""
    fs, path = filesystem(url, storage_options)
    return bool(fs.exists(path))
