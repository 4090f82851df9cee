"""Reading a manifest: as a stream of checked rows, or whole.

:func:`iter_manifest` is the reader; :func:`read_manifest` collects what it
yields.  A stream holds the row being read (a Parquet row group, a CSV record
or a JSON item), the ids seen so far, and a block of read-ahead; never the file.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import IO, Any

from pika_tasks.errors import ManifestError
from pika_tasks.manifest._delimited import delimited_records
from pika_tasks.manifest._formats import Record, detect
from pika_tasks.manifest._json import json_array_records, jsonl_records
from pika_tasks.manifest._models import (
    Manifest,
    ManifestFormat,
    ManifestRow,
    RowDefaults,
    RowError,
)
from pika_tasks.manifest._parquet import parquet_records
from pika_tasks.manifest._rows import base_url_of, check_rows
from pika_tasks.manifest._source import open_manifest, open_text


def iter_manifest(
    url: str,
    *,
    defaults: RowDefaults | None = None,
    storage_options: dict[str, Any] | None = None,
    format: str | None = None,
    compression: str | None = "infer",
) -> Generator[ManifestRow | RowError, None, None]:
    """Read and check a manifest as a stream: one valid row or one row error per data row.

    Items come in file order, each as soon as its row is read: the first row
    is yielded before the last is read.  CSV, TSV and JSON Lines are read a
    line at a time, JSON arrays an item at a time, Parquet a row group at a
    time, compressed files decompressed as they are read.  Besides the row
    being read, only a block of the file and the ids seen so far are held.

    Rows are numbered and judged as :func:`read_manifest` says, duplicate ids
    included: the first row naming an id (ignoring case) takes it, even if it
    is refused for another reason, and every later row naming it is refused.

    The file is opened at the first ``next()`` and closed when the stream is
    exhausted or closed (``close()``, or ``contextlib.closing``).

    Args:
        url: the manifest: a local path or any fsspec URL (``s3://b/in/m.csv``).
        defaults: values for rows that leave fields empty, and a prompt suffix.
        storage_options: fsspec options for the manifest's file system.
        format: ``csv``, ``tsv``, ``jsonl``, ``json`` or ``parquet``; by default
            taken from the extension, after any compression suffix.
        compression: ``"infer"`` (from the extension, as fsspec does), None, or
            an fsspec compression name such as ``"gzip"``.

    Yields:
        A :class:`ManifestRow` for each valid row, a :class:`RowError` for each
        refused one.

    Raises:
        ManifestError: at the call when the format is unknown; otherwise at the
            first ``next()``, before any row, when the file cannot be opened, is
            UTF-16, holds NUL bytes in its first block (a binary file), has no
            usable header or no ``image`` column (CSV, TSV, Parquet), or is not
            a JSON array (``.json``).  A problem that can only be seen later stops the
            stream where it is found, after the rows before it: a JSON array
            that turns invalid, a store or decompressor failing mid-way, and a
            JSON Lines or JSON array manifest none of whose objects has an
            ``image`` field (raised at its end: every row of such a file has
            already been refused, for its missing ``image``).

    Example:
        >>> import fsspec
        >>> from pika_tasks.manifest import iter_manifest
        >>> with fsspec.open("memory://doc-iter/m.jsonl", "w") as f:
        ...     _ = f.write('{"id": "a", "image": "a.png", "prompt": "waves"}\\n'
        ...                 '{"id": "b", "image": "b.png", "duration": 7}\\n')
        >>> for item in iter_manifest("memory://doc-iter/m.jsonl"):
        ...     print(item if isinstance(item, RowError) else (item.id, item.image))
        ('a', 'memory://doc-iter/a.png')
        row 2, field 'prompt': is missing, and no default prompt was given
    """
    manifest_format, codec = detect(url, format, compression)
    return _stream(
        url,
        manifest_format,
        codec,
        dict(storage_options or {}),
        defaults or RowDefaults(),
    )


def _stream(
    url: str,
    manifest_format: ManifestFormat,
    codec: str | None,
    storage_options: dict[str, Any],
    defaults: RowDefaults,
) -> Generator[ManifestRow | RowError, None, None]:
    with open_manifest(url, codec, storage_options) as handle:
        yield from check_rows(_records(handle, url, manifest_format), defaults, base_url_of(url))


def _records(handle: IO[bytes], url: str, manifest_format: ManifestFormat) -> Iterator[Record]:
    if manifest_format == "parquet":
        yield from parquet_records(handle, url)
    elif manifest_format in ("csv", "tsv"):
        text = open_text(handle, url, newline="")
        yield from delimited_records(text, "," if manifest_format == "csv" else "\t", url)
    else:
        text = open_text(handle, url, newline="\n")
        if manifest_format == "jsonl":
            yield from _some_image_field(jsonl_records(text, url), url)
        else:
            yield from _some_image_field(json_array_records(text, url), url)


def _some_image_field(records: Iterator[Record], url: str) -> Iterator[Record]:
    """Pass ``records`` on; at the end, refuse the file if objects came but none had an image.

    JSON rows declare no columns, so a file that names the field otherwise
    (``"picture"``) is only known at its end.  No row of it was valid (a row
    without an image is refused), so no caller has acted on one.
    """
    objects = images = False
    for record in records:
        if record.values is not None:
            objects = True
            images = images or "image" in record.values
        yield record
    if objects and not images:
        raise ManifestError(f"manifest {url}: no row has an 'image' field")


def read_manifest(
    url: str,
    *,
    defaults: RowDefaults | None = None,
    storage_options: dict[str, Any] | None = None,
    format: str | None = None,
    compression: str | None = "infer",
) -> Manifest:
    """Read and check a whole manifest: :func:`iter_manifest`, collected.

    Row numbers are 1-based data rows: the header is not counted; for CSV and
    TSV a row's number is the line it starts on minus one, for JSON Lines its
    line number (blank lines are skipped but counted), for a JSON array or a
    Parquet file its position.

    Args:
        url: the manifest: a local path or any fsspec URL (``s3://b/in/m.csv``).
        defaults: values for rows that leave fields empty, and a prompt suffix.
        storage_options: fsspec options for the manifest's file system
            (credentials, endpoint...).
        format: ``csv``, ``tsv``, ``jsonl``, ``json`` or ``parquet``; by default
            taken from the extension, after any compression suffix.
        compression: ``"infer"`` (from the extension, as fsspec does), None, or
            an fsspec compression name such as ``"gzip"``.

    Returns:
        The :class:`Manifest`: valid rows and one error per refused row.

    Raises:
        ManifestError: the file is missing or unreadable, its format is
            unknown, it has no ``image`` column (no row with an ``image``
            field, for JSON), or a ``.json`` file does not hold an array.

    Example:
        >>> import fsspec
        >>> from pika_tasks.manifest import RowDefaults, read_manifest
        >>> with fsspec.open("memory://doc2/rows.jsonl", "w") as f:
        ...     _ = f.write('{"image": "https://example.com/a.png", "seed": 7}\\n')
        >>> manifest = read_manifest(
        ...     "memory://doc2/rows.jsonl",
        ...     defaults=RowDefaults(prompt="slow pan", prompt_suffix="film grain"),
        ... )
        >>> manifest.rows[0].prompt, manifest.rows[0].seed, manifest.rows[0].id
        ('slow pan, film grain', 7, 'a-dafa958ff9')
    """
    manifest_format, _ = detect(url, format, compression)
    rows: list[ManifestRow] = []
    errors: list[RowError] = []
    stream = iter_manifest(
        url,
        defaults=defaults,
        storage_options=storage_options,
        format=format,
        compression=compression,
    )
    for item in stream:
        if isinstance(item, RowError):
            errors.append(item)
        else:
            rows.append(item)
    return Manifest(
        url=url, base_url=base_url_of(url), format=manifest_format, rows=rows, errors=errors
    )
