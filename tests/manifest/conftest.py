"""Helpers for the manifest tests: write the same rows in every format."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import fsspec
import pytest

Writer = Callable[..., str]


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


@pytest.fixture
def write_manifest() -> Writer:
    """``write(url, rows_or_bytes, format=None, storage_options=None, compression=None)``.

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
