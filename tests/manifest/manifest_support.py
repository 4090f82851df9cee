"""What the manifest tests share: the same rows in every format, and a store that counts reads."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.memory import MemoryFileSystem


def encode_rows(rows: list[dict[str, Any]], format: str) -> bytes:
    """``rows`` as the bytes of a manifest in ``format`` (csv, tsv, jsonl, json, parquet)."""
    if format in ("csv", "tsv"):
        columns: list[str] = []
        for row in rows:
            columns.extend(key for key in row if key not in columns)
        text = io.StringIO(newline="")
        writer = csv.DictWriter(
            text, fieldnames=columns, delimiter="," if format == "csv" else "\t"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if value is None else value for key, value in row.items()})
        return text.getvalue().encode("utf-8")
    if format == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
    if format == "json":
        return json.dumps(rows).encode("utf-8")
    if format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), sink)
        return sink.getvalue()
    raise ValueError(format)


class _CountingReader(io.RawIOBase):
    """A file of :class:`CountingFileSystem`: counts the bytes each read hands out."""

    def __init__(self, key: str, inner: Any) -> None:
        super().__init__()
        self._key = key
        self._inner = inner
        CountingFileSystem.opened[key] = CountingFileSystem.opened.get(key, 0) + 1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        CountingFileSystem.bytes_read[self._key] += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position: int = self._inner.seek(offset, whence)
        return position

    def tell(self) -> int:
        position: int = self._inner.tell()
        return position

    def close(self) -> None:
        if not self.closed:
            CountingFileSystem.opened[self._key] -= 1
        super().close()


class CountingFileSystem(MemoryFileSystem):
    """fsspec's in-memory file system (``counted://``), counting what is read of each file.

    ``bytes_read[path]`` is the number of bytes handed to readers of ``path``
    (stripped of the protocol); ``opened[path]`` the readers open on it now.
    Its files are its own: ``memory://`` does not see them.
    """

    protocol = "counted"
    store: dict[str, Any] = {}  # its own files, apart from memory://
    pseudo_dirs = [""]
    bytes_read: dict[str, int] = {}
    opened: dict[str, int] = {}

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str):
            path = path.removeprefix("counted://")
        return super()._strip_protocol(path)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        handle = super()._open(path, mode, **kwargs)
        if mode != "rb":
            return handle
        key = self._strip_protocol(path)
        CountingFileSystem.bytes_read[key] = 0
        return _CountingReader(key, handle)


fsspec.register_implementation("counted", CountingFileSystem, clobber=True)


@dataclass
class CountedStore:
    """A folder of ``counted://`` with the counts of what was read from it."""

    root: str

    def put(self, name: str, data: bytes) -> str:
        """Store ``data`` as ``name``; return its URL."""
        url = f"{self.root}/{name}"
        fsspec.filesystem("counted").pipe(url, data)
        return url

    def size(self, url: str) -> int:
        """The size of ``url`` in bytes."""
        size: int = fsspec.filesystem("counted").size(url)
        return size

    def bytes_read(self, url: str) -> int:
        """Bytes read of ``url`` since it was last opened."""
        return CountingFileSystem.bytes_read.get(CountingFileSystem._strip_protocol(url), 0)

    def open_readers(self, url: str) -> int:
        """Readers of ``url`` open now."""
        return CountingFileSystem.opened.get(CountingFileSystem._strip_protocol(url), 0)
