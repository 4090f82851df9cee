"""Manifests: the list of images to animate, with a prompt and settings per row.

A manifest is a CSV, TSV, JSON Lines (``.jsonl``/``.ndjson``), JSON array
(``.json``) or Parquet (``.parquet``) file at any fsspec URL, compressed or
not (``manifest.csv.gz``, ``rows.jsonl.bz2``...).  Its columns:

* ``image`` (required): URL or path of the first frame; relative paths are
  resolved against the manifest's folder, in the manifest's file system.
* ``prompt`` (required unless :class:`RowDefaults` gives one): motion and
  style, at most :data:`MAX_PROMPT_CHARS` (2000) characters with the suffix.
* ``id``: names the outputs ``{id}.mp4`` and ``{id}.json`` (see
  :mod:`pika_tasks.manifest._ids`); rows without one get a stable id.
* ``negative_prompt`` (default ``""``), ``resolution`` (``720p`` default, or
  ``1080p``), ``duration`` (``5`` default, or ``10`` seconds), ``seed``
  (whole number ``0..4294967295``; default: random).
* any other column is kept, JSON-safe, in :attr:`ManifestRow.metadata`.

CSV cells are text: ``"10"`` is read as 10 and an empty cell as missing.

A manifest is read as a stream (:func:`iter_manifest`): each row is checked
as soon as it is read, and a batch can start its first row before the last
is read; :func:`read_manifest` collects the stream into a :class:`Manifest`.
A bad row becomes one :class:`RowError` (row number, field, reason) and never
stops the good rows.  A file that cannot be read at all raises
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

from pika_tasks.errors import ManifestError
from pika_tasks.manifest._ids import MAX_ID_LENGTH, auto_id, check_id, is_safe_id
from pika_tasks.manifest._models import (
    MAX_PROMPT_CHARS,
    MAX_ROW_CHARS,
    MAX_SEED,
    Manifest,
    ManifestFormat,
    ManifestRow,
    RowDefaults,
    RowError,
)
from pika_tasks.manifest._reader import iter_manifest, read_manifest
from pika_tasks.manifest._rows import KNOWN_COLUMNS

__all__ = [
    "KNOWN_COLUMNS",
    "MAX_ID_LENGTH",
    "MAX_PROMPT_CHARS",
    "MAX_ROW_CHARS",
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
    "iter_manifest",
    "read_manifest",
]
