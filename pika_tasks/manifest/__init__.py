"""Manifests: the list of images to animate, with a prompt and settings per row.

A manifest is a CSV, TSV, JSON Lines (``.jsonl``/``.ndjson``), JSON array
(``.json``) or Parquet (``.parquet``) file at any fsspec URL, compressed or
not (``manifest.csv.gz``, ``rows.jsonl.bz2``...).  Its columns:

* ``image`` (required): URL or path of the first frame; relative paths are
  resolved against the manifest's folder, in the manifest's file system.
* ``prompt`` (required unless :class:`RowDefaults` gives one): motion and
  style, at most :data:`MAX_PROMPT_CHARS` (2000) characters with the suffix.
* ``id``: names the outputs ``{id}.mp4`` and ``{id}.json`` (see
  :mod:`pika_tasks.manifest.ids`); rows without one get a stable id.
* ``negative_prompt`` (default ``""``), ``resolution`` (``720p`` default, or
  ``1080p``), ``duration`` (``5`` default, or ``10`` seconds), ``seed``
  (whole number ``0..4294967295``; default: random).
* any other column is kept, JSON-safe, in :attr:`ManifestRow.metadata`.

CSV cells are text: ``"10"`` is read as 10 and an empty cell as missing.

Every row is checked before anything is submitted.  A bad row becomes one
:class:`RowError` (row number, field, reason) in :attr:`Manifest.errors` and
never stops the good rows.  A file that cannot be read at all raises
:class:`ManifestError`.

Example:
    >>> import fsspec
    >>> from pika_tasks.manifest import read_manifest
    >>> with fsspec.open("memory://doc/manifest.csv", "w") as f:
    ...     _ = f.write("id,image,prompt,resolution\\n"
    ...                 "cat,imgs/cat.png,the cat yawns,1080p\\n"
    ...                 "dog,imgs/dog.png,the dog runs,4k\\n")
    >>> manifest = read_manifest("memory://doc/manifest.csv")
    >>> [(row.id, row.image, row.resolution) for row in manifest.rows]
    [('cat', 'memory://doc/imgs/cat.png', '1080p')]
    >>> print(manifest.errors[0])
    row 2, field 'resolution': '4k' is not one of 720p, 1080p
"""

from __future__ import annotations

from typing import Any

from pika_tasks.manifest._formats import detect, parse, read_bytes
from pika_tasks.manifest._models import (
    MAX_PROMPT_CHARS,
    MAX_SEED,
    Manifest,
    ManifestError,
    ManifestFormat,
    ManifestRow,
    RowDefaults,
    RowError,
)
from pika_tasks.manifest._rows import KNOWN_COLUMNS, base_url_of, check_records
from pika_tasks.manifest.ids import MAX_ID_LENGTH, auto_id, check_id, is_safe_id

__all__ = [
    "KNOWN_COLUMNS",
    "MAX_ID_LENGTH",
    "MAX_PROMPT_CHARS",
    "MAX_SEED",
    "Manifest",
    "ManifestError",
    "ManifestFormat",
    "ManifestRow",
    "RowDefaults",
    "RowError",
    "auto_id",
    "check_id",
    "is_safe_id",
    "read_manifest",
]


def read_manifest(
    url: str,
    *,
    defaults: RowDefaults | None = None,
    storage_options: dict[str, Any] | None = None,
    format: str | None = None,
    compression: str | None = "infer",
) -> Manifest:
    """Read and check a manifest.

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
            unknown, it has no ``image`` column, or a ``.json`` file does not
            hold an array.

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
    defaults = defaults or RowDefaults()
    options = dict(storage_options or {})
    manifest_format, codec = detect(url, format, compression)
    data = read_bytes(url, codec, options)
    parsed = parse(data, manifest_format, url)
    if parsed.columns is not None:
        if "image" not in parsed.columns:
            raise ManifestError(
                f"manifest {url} has no 'image' column (its columns: "
                f"{', '.join(parsed.columns) or 'none'})"
            )
    else:
        objects = [record.values for record in parsed.records if record.values is not None]
        if objects and not any("image" in values for values in objects):
            raise ManifestError(f"manifest {url}: no row has an 'image' field")
    base_url = base_url_of(url)
    rows, errors = check_records(parsed.records, defaults, base_url)
    return Manifest(url=url, base_url=base_url, format=manifest_format, rows=rows, errors=errors)
