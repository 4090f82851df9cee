"""Stores for tests: fsspec's memory store, counting what is read."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import fsspec
from fsspec.implementations.memory import MemoryFileSystem


class CountingMemoryFileSystem(MemoryFileSystem):
    """fsspec's memory store under ``countmem://``, counting every read of a file's bytes.

    ``before_read(path)`` (when set) runs before each read, in the reading
    thread: a test uses it to hold a read until something else has happened.
    """

    protocol = ("countmem",)
    reads: ClassVar[Counter[str]] = Counter()
    lock: ClassVar[threading.Lock] = threading.Lock()
    before_read: ClassVar[Callable[[str], None] | None] = None

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        # The same store and paths as memory://, under this protocol's name.
        if isinstance(path, str) and path.startswith("countmem://"):
            path = "memory://" + path.removeprefix("countmem://")
        return super()._strip_protocol(path)

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kwargs: Any) -> Any:
        hook = type(self).before_read
        if hook is not None:
            hook(self._strip_protocol(path))
        with self.lock:
            self.reads[self._strip_protocol(path)] += 1
        return super().cat_file(path, start=start, end=end, **kwargs)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" in mode:
            with self.lock:
                self.reads[self._strip_protocol(path)] += 1
        return super()._open(path, mode=mode, **kwargs)


fsspec.register_implementation("countmem", CountingMemoryFileSystem, clobber=True)
