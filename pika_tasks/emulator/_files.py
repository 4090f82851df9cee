"""Files the emulator serves: rendered videos and uploaded images, kept in memory.

A :class:`StoredFile` is its bytes plus an optional run of zero bytes that
is never stored, only generated while streaming (the body of the ``free``
box that pads a video to ``min_video_bytes``).  Files can expire.

Example:
    >>> from pika_tasks.emulator._files import FileStore, StoredFile
    >>> store = FileStore()
    >>> store.put("a.txt", StoredFile(b"hello", content_type="text/plain", zeros=3))
    >>> b"".join(store.get("a.txt", now=0.0).iter_bytes(1, 7, chunk_size=4))
    b'ello\\x00\\x00'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

_ZEROS = bytes(1 << 16)


@dataclass
class StoredFile:
    """One served file.

    Attributes:
        data: the stored bytes (shared between jobs in fast mode).
        content_type: MIME type sent as ``content-type``.
        zeros: zero bytes that follow ``data`` (generated, not stored).
        expires_at: monotonic time after which the file is gone, or ``None``.
        is_video: whether this is a rendered video (downloads of videos can be cut).
    """

    data: bytes
    content_type: str
    zeros: int = 0
    expires_at: float | None = None
    is_video: bool = False
    _etag: str | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """Length of the whole file in bytes."""
        return len(self.data) + self.zeros

    @property
    def etag(self) -> str:
        """A strong validator of the content, for ``ETag`` and ``If-Range``."""
        if self._etag is None:
            digest = hashlib.blake2b(self.data, digest_size=12)
            digest.update(str(self.zeros).encode())
            self._etag = f'"{digest.hexdigest()}"'
        return self._etag

    def expired(self, now: float) -> bool:
        """Whether the file has expired at monotonic time ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def iter_bytes(self, start: int, end: int, *, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """Yield bytes ``start`` to ``end`` (exclusive) in chunks of at most ``chunk_size``."""
        view = memoryview(self.data)
        position = start
        stored = len(self.data)
        while position < end:
            if position < stored:
                stop = min(end, stored, position + chunk_size)
                yield bytes(view[position:stop])
            else:
                stop = min(end, position + chunk_size, position + len(_ZEROS))
                yield _ZEROS[: stop - position]
            position = stop


class FileStore:
    """Files by name; expired files are dropped when looked up or swept."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}

    def __len__(self) -> int:
        return len(self._files)

    def put(self, name: str, file: StoredFile) -> None:
        """Store (or replace) ``name``."""
        self._files[name] = file

    def get(self, name: str, *, now: float) -> StoredFile | None:
        """The file called ``name``, or ``None`` if unknown or expired."""
        file = self._files.get(name)
        if file is not None and file.expired(now):
            del self._files[name]
            return None
        return file

    def sweep(self, now: float) -> int:
        """Drop every expired file; returns how many were dropped."""
        gone = [name for name, file in self._files.items() if file.expired(now)]
        for name in gone:
            del self._files[name]
        return len(gone)
