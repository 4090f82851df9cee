"""What a manifest is made of before it is judged: its format, and its rows as raw records.

Nothing here judges the values: each record is the row's raw cells (or the
reason the row could not be parsed), numbered as the user sees them.
"""

from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fsspec.utils import infer_compression

from pika_tasks.errors import ManifestError
from pika_tasks.manifest._models import ManifestFormat

_EXTENSIONS: dict[str, ManifestFormat] = {
    "csv": "csv",
    "tsv": "tsv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "json",
    "parquet": "parquet",
    "pq": "parquet",
}
_FORMATS: tuple[ManifestFormat, ...] = ("csv", "tsv", "jsonl", "json", "parquet")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BARE_PROTOCOL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


@dataclass(frozen=True)
class Record:
    """One data row as found in the file.

    ``values`` holds the row's cells by column name, or is None when the row
    could not be parsed; ``problem`` then holds ``(field, reason)``.  ``text``
    is True for CSV/TSV, whose cells are all strings (empty meaning missing).
    """

    row_number: int
    values: dict[str, Any] | None
    problem: tuple[str, str] | None = None
    text: bool = False


def file_name(url: str) -> str:
    """The last path component of ``url`` (query and fragment of URLs removed)."""
    # In a chain ("simplecache::s3://b/m.csv", "zip://m.csv::s3://b/a.zip") the
    # file is named by the first part that is more than a bare protocol name.
    parts = [part for part in url.split("::") if not _BARE_PROTOCOL_RE.fullmatch(part)]
    last = parts[0] if parts else url
    if _SCHEME_RE.match(last):
        last = urlsplit(last).path
    return posixpath.basename(last.replace("\\", "/"))


def detect(
    url: str, format: str | None, compression: str | None
) -> tuple[ManifestFormat, str | None]:
    """Decide the format and compression of ``url``.

    ``compression="infer"`` picks it from the extension (``.gz``, ``.bz2``,
    ``.xz``, ``.lzma``, ``.zip``, ...) as fsspec does; the format comes from
    the extension left after removing the compression suffix, unless given.
    """
    name = file_name(url)
    codec = infer_compression(name) if compression == "infer" else compression
    # A compression suffix never names the format: "m.csv.gz" is CSV.
    stem = name.rsplit(".", 1)[0] if infer_compression(name) is not None else name
    if format is not None:
        wanted = format.lower().lstrip(".")
        if wanted in _EXTENSIONS:
            return _EXTENSIONS[wanted], codec
        raise ManifestError(f"unknown manifest format {format!r}: use one of {', '.join(_FORMATS)}")
    extension = stem.rsplit(".", 1)[-1].lower() if "." in stem else ""
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension], codec
    raise ManifestError(
        f"cannot tell the format of manifest {url!r} from its extension "
        f"{('.' + extension) if extension else '(none)'}: name it .csv, .tsv, .jsonl, "
        ".ndjson, .json or .parquet (optionally compressed, e.g. .csv.gz), or pass format=..."
    )


def no_image_column(url: str, columns: list[str]) -> ManifestError:
    """The error for a manifest whose header (CSV, TSV, Parquet) has no ``image`` column."""
    return ManifestError(
        f"manifest {url} has no 'image' column (its columns: {', '.join(columns) or 'none'})"
    )


def has_surrogates(text: str) -> bool:
    """True when ``text`` holds bytes that were not valid UTF-8 (kept as surrogates)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def bad_byte(text: str) -> str:
    """Describe the first undecodable byte of ``text``, e.g. ``byte 0xe9 at character 4``."""
    for index, ch in enumerate(text, 1):
        if "\udc80" <= ch <= "\udcff":
            return f"byte 0x{ord(ch) - 0xDC00:02x} at character {index}"
    return "no bad byte"


def kind(value: Any) -> str:
    """A reader's name for the JSON type of ``value``: ``a list``, ``an object``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number" if math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bytes | bytearray):
        return "binary data"
    return f"a {type(value).__name__}"
