"""Fixtures for the manifest tests: manifests written in any format, and fresh stores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fsspec
import pytest
from manifest_support import CountedStore, encode_rows

Writer = Callable[..., str]


@pytest.fixture
def put_manifest() -> Writer:
    """``put_manifest(url, rows_or_bytes, format=None, storage_options=None, compression=None)``.

    Not :func:`support.write_manifest` (a CSV beside its images, for runs): this one
    puts any manifest, in any format, at any fsspec URL, for the reader's tests.

    Writes rows (encoded for ``format``, default: from the extension) or raw
    bytes or text to ``url`` through fsspec, compressing when asked; returns ``url``.
    """

    def write(
        url: str,
        content: list[dict[str, Any]] | bytes | str,
        *,
        format: str | None = None,
        storage_options: dict[str, Any] | None = None,
        compression: str | None = None,
    ) -> str:
        if isinstance(content, list):
            name = url.rsplit("/", 1)[-1]
            if format is None:
                parts = name.split(".")
                format = parts[-2] if compression else parts[-1]
                format = {"ndjson": "jsonl"}.get(format, format)
            data = encode_rows(content, format)
        elif isinstance(content, str):
            data = content.encode("utf-8")
        else:
            data = content
        with fsspec.open(url, "wb", compression=compression, **(storage_options or {})) as handle:
            handle.write(data)
        return url

    return write


@pytest.fixture
def memory_root() -> Any:
    """A fresh folder on fsspec's in-memory file system, removed afterwards."""
    import uuid

    root = f"memory://manifest-tests-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture
def counted_store() -> Any:
    """A fresh folder on ``counted://``, an in-memory store that counts the bytes read."""
    import uuid

    root = f"counted://stream-{uuid.uuid4().hex[:8]}"
    yield CountedStore(root)
    fs = fsspec.filesystem("counted")
    if fs.exists(root):
        fs.rm(root, recursive=True)
