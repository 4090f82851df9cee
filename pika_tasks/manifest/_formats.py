"""Reading a manifest file into raw records: format detection, decompression, parsing.

Nothing here judges the values: each record is the row's raw cells (or the
reason the row could not be parsed), numbered as the user sees them.
"""

from __future__ import annotations

import csv
import io
import json
import lzma
import math
import posixpath
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import fsspec
from fsspec.utils import infer_compression

from pika_tasks.manifest._models import ManifestError, ManifestFormat

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
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"


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


@dataclass(frozen=True)
class Parsed:
    """A manifest's records, and its columns when the format declares them."""

    records: list[Record]
    columns: list[str] | None


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


def read_bytes(url: str, compression: str | None, storage_options: dict[str, Any]) -> bytes:
    """The manifest's (decompressed) bytes; ManifestError when it cannot be read."""
    try:
        with fsspec.open(url, mode="rb", compression=compression, **storage_options) as handle:
            data: bytes = handle.read()
    except FileNotFoundError as error:
        raise ManifestError(f"manifest not found: {url}") from error
    except IsADirectoryError as error:
        raise ManifestError(f"manifest {url} is a folder, not a file") from error
    except PermissionError as error:
        raise ManifestError(f"no permission to read manifest {url}: {error}") from error
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as error:
        what = f" as {compression}" if compression else ""
        raise ManifestError(f"cannot read manifest {url}{what}: {error}") from error
    except (ValueError, ImportError) as error:
        # Unknown protocols, missing fsspec back-ends, bad storage options.
        raise ManifestError(f"cannot open manifest {url}: {error}") from error
    return data


def parse(data: bytes, format: ManifestFormat, url: str) -> Parsed:
    """Parse the bytes of a manifest into records."""
    if format == "parquet":
        return _parse_parquet(data, url)
    text = _decode(data, url)
    if format in ("csv", "tsv"):
        return _parse_delimited(text, "," if format == "csv" else "\t", url)
    if format == "jsonl":
        return Parsed(list(_parse_jsonl(text)), None)
    return _parse_json_array(text, url)


def _decode(data: bytes, url: str) -> str:
    """UTF-8 text, with undecodable bytes kept as surrogates for per-row reporting."""
    if data.startswith(_UTF16_BOMS):
        raise ManifestError(f"manifest {url} is UTF-16 text: save it as UTF-8")
    if b"\x00" in data:
        raise ManifestError(
            f"manifest {url} is not UTF-8 text (it holds NUL bytes): is it a binary "
            "or compressed file with the wrong extension?"
        )
    data = data.removeprefix(_UTF8_BOM)
    return data.decode("utf-8", "surrogateescape")


def _parse_delimited(text: str, delimiter: str, url: str) -> Parsed:
    # The csv module refuses cells over its field limit (131072 characters) with an
    # error for the whole file. The text is in memory already, so no cell can be larger
    # than it: raising the (process-wide) limit to its length lets an oversized cell
    # fail its own row, on the field's own length check.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise ManifestError(f"manifest {url}: malformed header: {error}") from error
    if header is None:
        raise ManifestError(
            f"manifest {url} is empty: expected a header row with an 'image' column"
        )
    columns = [name.strip() for name in header]
    if any(has_surrogates(name) for name in columns):
        raise ManifestError(
            f"manifest {url}: the header row is not valid UTF-8: save the file as UTF-8"
        )
    # Unnamed columns (a trailing comma in the header) keep only their non-empty cells.
    unnamed = {index for index, name in enumerate(columns) if not name}
    columns = [name or f"column_{index + 1}" for index, name in enumerate(columns)]
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise ManifestError(f"manifest {url}: column {name!r} appears twice in the header")
        seen.add(name)
    if "image" not in columns and len(columns) == 1:
        other = ";" if delimiter == "," else ","
        if other in columns[0]:
            raise ManifestError(
                f"manifest {url} has no 'image' column; its header {columns[0]!r} looks "
                f"separated by {other!r}: separate columns with {delimiter!r}"
            )
    records: list[Record] = []
    previous_line = reader.line_num
    try:
        for cells in reader:
            # The record's number is the line it starts on, minus the header line.
            row_number = previous_line
            previous_line = reader.line_num
            if not cells or all(not cell.strip() for cell in cells):
                continue
            if len(cells) > len(columns):
                extra = cells[len(columns) :]
                if any(cell.strip() for cell in extra):
                    reason = f"has {len(cells)} cells but the header has {len(columns)} columns"
                    records.append(Record(row_number, None, ("row", reason), text=True))
                    continue
            values = {
                name: cells[index] if index < len(cells) else ""
                for index, name in enumerate(columns)
                if index not in unnamed or (index < len(cells) and cells[index].strip())
            }
            records.append(Record(row_number, values, text=True))
    except csv.Error as error:
        raise ManifestError(
            f"manifest {url}: malformed CSV near line {reader.line_num}: {error}"
        ) from error
    return Parsed(records, columns)


MAX_NESTING = 64
"""Deepest nesting of lists and objects accepted in one JSON row."""


def _nesting(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_NESTING:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _too_deep(index: int) -> Record:
    return Record(index, None, ("row", f"nests lists or objects more than {MAX_NESTING} deep"))


def _parse_jsonl(text: str) -> Iterator[Record]:
    # Split on "\n" only: str.splitlines() would also split inside JSON strings
    # holding U+2028 or form feeds, which JSON allows unescaped.
    for index, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except RecursionError:
            yield _too_deep(index)
            continue
        except ValueError as error:
            yield Record(index, None, ("row", f"is not valid JSON: {_json_reason(error)}"))
            continue
        yield _too_deep(index) if _nesting(value) > MAX_NESTING else _object_record(index, value)


def _parse_json_array(text: str, url: str) -> Parsed:
    try:
        value = json.loads(text)
    except RecursionError as error:
        raise ManifestError(f"manifest {url} nests JSON too deeply to read") from error
    except ValueError as error:
        raise ManifestError(f"manifest {url} is not valid JSON: {_json_reason(error)}") from error
    if not isinstance(value, list):
        raise ManifestError(
            f"manifest {url} must hold a JSON array of row objects, not {kind(value)}"
        )
    return Parsed(
        [
            _too_deep(index) if _nesting(item) > MAX_NESTING else _object_record(index, item)
            for index, item in enumerate(value, 1)
        ],
        None,
    )


def _object_record(row_number: int, value: Any) -> Record:
    if not isinstance(value, dict):
        return Record(row_number, None, ("row", f"must be a JSON object, not {kind(value)}"))
    return Record(row_number, value)


def _parse_parquet(data: bytes, url: str) -> Parsed:
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise ManifestError(
            "reading Parquet manifests needs pyarrow: pip install 'pika-tasks[parquet]'"
        ) from error
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as error:  # pyarrow raises its own ArrowInvalid / OSError kinds
        raise ManifestError(f"manifest {url} is not a readable Parquet file: {error}") from error
    columns = [str(name) for name in table.column_names]
    rows = table.to_pylist()
    return Parsed([Record(index, row) for index, row in enumerate(rows, 1)], columns)


def _json_reason(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at character {error.pos + 1}"
    return str(error)


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
