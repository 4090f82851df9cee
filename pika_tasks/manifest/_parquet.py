"""Parquet manifests, read a row group at a time.

The footer (schema and row group index) is read first, then one row group
after another, each turned into Python rows a batch at a time: what is held is
bounded by the file's largest row group, never by the whole file.

Example:
    >>> import io
    >>> import pyarrow as pa
    >>> import pyarrow.parquet as pq
    >>> from pika_tasks.manifest._parquet import parquet_records
    >>> sink = io.BytesIO()
    >>> pq.write_table(pa.table({"image": ["a.png", "b.png"]}), sink, row_group_size=1)
    >>> [(r.row_number, r.values) for r in parquet_records(io.BytesIO(sink.getvalue()), "m.pq")]
    [(1, {'image': 'a.png'}), (2, {'image': 'b.png'})]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from pika_tasks.errors import ManifestError
from pika_tasks.manifest._formats import Record, no_image_column

_BATCH_ROWS = 1024
"""Rows turned into Python objects at a time."""


def parquet_records(handle: IO[bytes], url: str) -> Iterator[Record]:
    """The records of a Parquet manifest; a row's number is its position in the file.

    Raises:
        ManifestError: pyarrow is not installed, the file is not Parquet (or a
            row group cannot be read), or it has no ``image`` column.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ManifestError(
            "reading Parquet manifests needs pyarrow: pip install 'pika-tasks[parquet]'"
        ) from error
    try:
        parquet = pq.ParquetFile(handle)
        columns = [str(name) for name in parquet.schema_arrow.names]
    except Exception as error:  # pyarrow raises its own ArrowInvalid / OSError kinds
        raise _unreadable(url, error) from error
    if "image" not in columns:
        raise no_image_column(url, columns)
    number = 0
    for group in range(parquet.num_row_groups):
        try:
            table = parquet.read_row_group(group)
        except Exception as error:
            raise _unreadable(url, error) from error
        for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
            rows: list[dict[str, Any]] = batch.to_pylist()
            for values in rows:
                number += 1
                yield Record(number, values)


def _unreadable(url: str, error: Exception) -> ManifestError:
    return ManifestError(f"manifest {url} is not a readable Parquet file: {error}")
