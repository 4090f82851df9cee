"""CSV and TSV manifests, read record by record.

Lines are handed to :func:`csv.reader` one at a time, so a record is parsed
as soon as its last line is read and nothing after it is held.  The csv
module refuses cells longer than its (process-wide) field limit with an error
that would stop the file; instead a row is limited to
:data:`~pika_tasks.manifest.MAX_ROW_CHARS` characters before csv sees it, and
the field limit is raised to that bound, so an oversized cell fails its own
row (on its field's length check) and an oversized row fails alone, naming the
field ``row``, while the rows after it are read on.

Example:
    >>> import io
    >>> from pika_tasks.manifest._delimited import delimited_records
    >>> text = io.StringIO('image,prompt\\na.png,"two\\nlines"\\n\\nb.png,p\\n', newline="")
    >>> [(r.row_number, r.values) for r in delimited_records(text, ",", "m.csv")]
    [(1, {'image': 'a.png', 'prompt': 'two\\nlines'}), (4, {'image': 'b.png', 'prompt': 'p'})]
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

from pika_tasks.errors import ManifestError
from pika_tasks.manifest._formats import Record, has_surrogates, no_image_column
from pika_tasks.manifest._models import MAX_ROW_CHARS

_CHUNK = 64 * 1024
_LINE_ENDS = ("\n", "\r")


class _Oversize(Exception):
    """The record being read is longer than the row limit."""


class _Lines:
    """The physical lines of a manifest, handed to :func:`csv.reader` one at a time.

    It keeps the lines of the record being read, so that a record found to be
    too long can be skipped to its end, and counts lines for row numbers.  It
    is an iterator class, not a generator, so that raising :class:`_Oversize`
    through the csv reader leaves it usable for the next record.
    """

    def __init__(self, text: TextIO, limit: int) -> None:
        self._text = text
        self._limit = limit
        self._pending: list[str] = []
        self._pending_chars = 0
        self._overflow = ""
        self._pushback = ""  # a character read past a cut "\r", to see if "\n" followed
        self.lines = 0
        """Physical lines read so far."""
        self.record_start = 0
        """Lines read before the record being read: its row number, the header being line 1."""

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        room = self._limit - self._pending_chars
        line = self._readline(room + 1)
        if not line:
            raise StopIteration
        if len(line) > room:
            self._overflow = line
            raise _Oversize
        self._pending.append(line)
        self._pending_chars += len(line)
        self.lines += 1
        return line

    def _readline(self, size: int) -> str:
        """The next line, or its first ``size`` characters (one more for a whole "\\r\\n").

        A line cut by ``size`` right after a "\\r" gets its "\\n" too, so that
        one line end is never counted as two lines.
        """
        head, self._pushback = self._pushback, ""
        line = head if head == "\r" else head + self._text.readline(size - len(head))
        if line.endswith("\r") and (line == "\r" or len(line) >= size):
            after = self._text.read(1)
            if after == "\n":
                line += after
            else:
                self._pushback = after
        return line

    def record_done(self) -> None:
        """The csv reader returned the record made of the pending lines."""
        self._pending.clear()
        self._pending_chars = 0
        self.record_start = self.lines

    def skip_record(self, delimiter: str) -> int:
        """Read on to the end of the oversized record; return its length in characters."""
        end = _RecordEnd(delimiter)
        chars = 0
        for line in self._pending:
            chars += len(line)
            end.feed(line)
        line = self._overflow
        self._overflow = ""
        while line:
            chars += len(line)
            if line.endswith(_LINE_ENDS):
                self.lines += 1
            if end.feed(line):
                break
            line = self._readline(_CHUNK)
        self.record_done()
        return chars


class _RecordEnd:
    """Finds where a CSV record ends, as :func:`csv.reader` would, without keeping it.

    A record ends at a line end outside quotes.  A quote opens a quoted field
    only as a field's first character; in a quoted field ``""`` is a quote and
    a single quote closes it (what follows is kept as text, as csv does when
    not strict).  Fed whole lines or pieces of one, in order.
    """

    def __init__(self, delimiter: str) -> None:
        self._delimiter = delimiter
        self._quoted = False
        self._field_start = True
        self._quote_last = False  # a quoted field's quote ended the previous piece

    def feed(self, piece: str) -> bool:
        """Take the next piece of the record; True when the record ends with it."""
        i, n = 0, len(piece)
        if self._quote_last and n:
            self._quote_last = False
            if piece[0] == '"':
                i = 1
            else:
                self._quoted, self._field_start = False, False
        while i < n:
            if self._quoted:
                j = piece.find('"', i)
                if j < 0:
                    return False
                if j + 1 == n:
                    self._quote_last = True
                    return False
                if piece[j + 1] == '"':
                    i = j + 2
                    continue
                self._quoted, self._field_start, i = False, False, j + 1
                continue
            if self._field_start and piece[i] == '"':
                self._quoted, i = True, i + 1
                continue
            j = piece.find(self._delimiter, i)
            if j < 0:
                self._field_start = False
                break
            self._field_start, i = True, j + 1
        return not self._quoted and piece.endswith(_LINE_ENDS)


def delimited_records(text: TextIO, delimiter: str, url: str) -> Iterator[Record]:
    """The records of a CSV (``delimiter=","``) or TSV (``"\\t"``) manifest, as they are read.

    A record's number is the line it starts on, minus the header line; blank
    records are skipped.  ``text`` must be opened with ``newline=""``.

    Raises:
        ManifestError: for a missing, duplicated, unreadable or oversized
            header, or no ``image`` column.
    """
    # Process-wide, but only ever raised: no cell can be longer than the row holding it.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_ROW_CHARS + 1))
    lines = _Lines(text, MAX_ROW_CHARS)
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    try:
        header = next(reader, None)
    except _Oversize as error:
        raise ManifestError(
            f"manifest {url}: the header row is longer than {MAX_ROW_CHARS} characters"
        ) from error
    except csv.Error as error:
        raise ManifestError(f"manifest {url}: malformed header: {error}") from error
    lines.record_done()
    columns, unnamed = _columns(header, delimiter, url)
    while True:
        row_number = lines.record_start
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _Oversize:
            chars = lines.skip_record(delimiter)
            reason = f"is {chars} characters long; a row may hold at most {MAX_ROW_CHARS}"
            yield Record(row_number, None, ("row", reason), text=True)
            continue
        except csv.Error as error:
            raise ManifestError(
                f"manifest {url}: malformed CSV near line {lines.lines}: {error}"
            ) from error
        lines.record_done()
        if not cells or all(not cell.strip() for cell in cells):
            continue
        if len(cells) > len(columns):
            extra = cells[len(columns) :]
            if any(cell.strip() for cell in extra):
                reason = f"has {len(cells)} cells but the header has {len(columns)} columns"
                yield Record(row_number, None, ("row", reason), text=True)
                continue
        values = {
            name: cells[index] if index < len(cells) else ""
            for index, name in enumerate(columns)
            if index not in unnamed or (index < len(cells) and cells[index].strip())
        }
        yield Record(row_number, values, text=True)


def _columns(header: list[str] | None, delimiter: str, url: str) -> tuple[list[str], set[int]]:
    """The header's column names, and the indexes of unnamed columns; ManifestError if unusable."""
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
    if "image" not in columns:
        if len(columns) == 1:
            other = ";" if delimiter == "," else ","
            if other in columns[0]:
                raise ManifestError(
                    f"manifest {url} has no 'image' column; its header {columns[0]!r} looks "
                    f"separated by {other!r}: separate columns with {delimiter!r}"
                )
        raise no_image_column(url, columns)
    return columns, unnamed
