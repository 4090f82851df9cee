"""Opening a manifest as a stream: the file, its decompression and its text.

The file is opened through fsspec (decompressing on the fly with fsspec's
``compression=``) and read as it is consumed: only the first block
(:data:`HEAD_BYTES`) is read before the first row, to refuse files that are not
UTF-8 text at once, and the rest as the rows are asked for.

Example:
    >>> import fsspec
    >>> from pika_tasks.manifest._source import open_manifest, open_text
    >>> url = "memory://doc-source/m.csv"
    >>> fsspec.filesystem("memory").pipe(url, b"\\xef\\xbb\\xbfimage\\na.png\\n")
    >>> with open_manifest(url, None, {}) as handle:
    ...     open_text(handle, url, newline="").readline()
    'image\\n'
"""

from __future__ import annotations

import io
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import fsspec

from pika_tasks.errors import ManifestError

HEAD_BYTES = 64 * 1024
"""The first block of a text manifest, checked for UTF-16 and NUL bytes before any row."""

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"
# What a failing store or decompressor raises while a manifest is read.
_READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile)


@contextmanager
def open_manifest(
    url: str, compression: str | None, storage_options: dict[str, Any]
) -> Iterator[IO[bytes]]:
    """Open ``url`` for reading, decompressed; ManifestError when it cannot be opened or read.

    Errors raised while the body reads the file (a store failing half-way, a
    corrupt compressed stream) become :class:`ManifestError` too.
    """
    try:
        opened = fsspec.open(url, mode="rb", compression=compression, **storage_options)
    except (ValueError, ImportError) as error:
        # Unknown protocols, missing fsspec back-ends, bad storage options.
        raise ManifestError(f"cannot open manifest {url}: {error}") from error
    try:
        handle = opened.__enter__()
    except Exception as error:
        opened.close()
        mapped = _read_error(url, compression, error)
        if mapped is error:
            raise
        raise mapped from error
    try:
        yield handle
    except _READ_ERRORS as error:
        raise _read_error(url, compression, error) from error
    finally:
        opened.close()


def _read_error(url: str, compression: str | None, error: Exception) -> Exception:
    """The ManifestError that says why ``url`` could not be opened or read."""
    if isinstance(error, FileNotFoundError):
        return ManifestError(f"manifest not found: {url}")
    if isinstance(error, IsADirectoryError):
        return ManifestError(f"manifest {url} is a folder, not a file")
    if isinstance(error, PermissionError):
        return ManifestError(f"no permission to read manifest {url}: {error}")
    if isinstance(error, _READ_ERRORS):
        what = f" as {compression}" if compression else ""
        return ManifestError(f"cannot read manifest {url}{what}: {error}")
    if isinstance(error, ValueError | ImportError):
        return ManifestError(f"cannot open manifest {url}: {error}")
    return error


def open_text(handle: IO[bytes], url: str, *, newline: str) -> io.TextIOWrapper:
    """The manifest's text, decoded as it is read.

    The first block is checked first: a UTF-16 file or one holding NUL bytes
    (a binary or compressed file with a text extension) raises
    :class:`ManifestError` before any row; a UTF-8 byte order mark is dropped.
    Undecodable bytes are kept as surrogates, so that they fail their own row.

    Args:
        handle: the binary, decompressed manifest.
        url: the manifest's URL, for messages.
        newline: ``""`` to keep line endings as they are (CSV), ``"\\n"`` to
            split lines on ``\\n`` only (JSON Lines).
    """
    head = handle.read(HEAD_BYTES)
    if head.startswith(_UTF16_BOMS):
        raise ManifestError(f"manifest {url} is UTF-16 text: save it as UTF-8")
    if b"\x00" in head:
        raise ManifestError(
            f"manifest {url} is not UTF-8 text (it holds NUL bytes): is it a binary "
            "or compressed file with the wrong extension?"
        )
    buffered = io.BufferedReader(_Replayed(head.removeprefix(_UTF8_BOM), handle))
    return io.TextIOWrapper(buffered, encoding="utf-8", errors="surrogateescape", newline=newline)


class _Replayed(io.RawIOBase):
    """``head`` (already read), then the rest of ``rest``: a raw stream for io's buffers."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(target), len(self._head))
            target[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read(len(target))
        target[: len(data)] = data
        return len(data)
