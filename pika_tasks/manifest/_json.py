"""JSON Lines and JSON array manifests, read row by row.

A JSON Lines manifest is read a line at a time.  A JSON array is cut into its
items as it is read, and each item is parsed alone with the standard library's
decoder, so only the item being parsed is held: the whole array is never
parsed at once.  Rows parse exactly as :func:`json.loads` would parse them
(``NaN``, integers of any size, undecodable bytes kept for their row's error).

Example:
    >>> import io
    >>> from pika_tasks.manifest._json import json_array_records
    >>> text = io.StringIO('[{"image": "a.png", "seed": 7}, "b.png"]')
    >>> for record in json_array_records(text, "m.json"):
    ...     print(record.row_number, record.values, record.problem)
    1 {'image': 'a.png', 'seed': 7} None
    2 None ('row', 'must be a JSON object, not a string')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

from pika_tasks.errors import ManifestError
from pika_tasks.manifest._formats import Record, kind
from pika_tasks.manifest._models import MAX_ROW_CHARS

MAX_NESTING = 64
"""Deepest nesting of lists and objects accepted in one JSON row."""

_CHUNK = 64 * 1024
_NOT_SPACE = re.compile(r"[^ \t\n\r]")
# A value decoded, or a decode error, this close to the end of what has been read may
# be a value cut short by the read (a number, a keyword such as "-Infinity", a "\uXXXX"
# escape): read on before judging it.
_NEAR_END = 16
_DECODER = json.JSONDecoder()
_IN_STRING = re.compile(r'["\\]')
_STRUCTURE = re.compile(r'["\[\]{},]')
# Outside any container: also the whitespace that ends a bare number or word.
_STRUCTURE_TOP = re.compile(r'["\[\]{}, \t\n\r]')


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


def _too_deep(row_number: int) -> Record:
    reason = f"nests lists or objects more than {MAX_NESTING} deep"
    return Record(row_number, None, ("row", reason))


def _object_record(row_number: int, value: Any) -> Record:
    if _nesting(value) > MAX_NESTING:
        return _too_deep(row_number)
    if not isinstance(value, dict):
        return Record(row_number, None, ("row", f"must be a JSON object, not {kind(value)}"))
    return Record(row_number, value)


def _json_reason(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at character {error.pos + 1}"
    return str(error)


def _too_long(chars: int) -> str:
    return f"is {chars} characters long; a row may hold at most {MAX_ROW_CHARS}"


# --------------------------------------------------------------------------- JSON Lines


def jsonl_records(text: TextIO, url: str) -> Iterator[Record]:
    """The records of a JSON Lines manifest, a line at a time.

    A row's number is its line number; blank lines are skipped but counted.
    ``text`` must split lines on ``\\n`` only (``newline="\\n"``): JSON strings
    may hold U+2028 or form feeds unescaped.
    """
    number = 0
    while True:
        line = text.readline(MAX_ROW_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_ROW_CHARS and not line.endswith("\n"):
            chars = len(line)
            while not line.endswith("\n"):
                line = text.readline(_CHUNK)
                if not line:
                    break
                chars += len(line)
            yield Record(number, None, ("row", _too_long(chars - line.endswith("\n"))))
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except RecursionError:
            yield _too_deep(number)
            continue
        except ValueError as error:
            yield Record(number, None, ("row", f"is not valid JSON: {_json_reason(error)}"))
            continue
        yield _object_record(number, value)


# --------------------------------------------------------------------------- JSON arrays


def json_array_records(text: TextIO, url: str) -> Iterator[Record]:
    """The records of a JSON array manifest, an item at a time; a row's number is its position.

    An item longer than :data:`~pika_tasks.manifest.MAX_ROW_CHARS` characters
    is skipped to its end without being held, and fails its row alone.

    Raises:
        ManifestError: when the file does not hold one JSON array, is not valid
            JSON, or nests too deeply to parse.  A problem found after some rows
            stops the read there, after those rows.
    """
    for number, value, chars in _ArrayItems(text, url):
        if chars > MAX_ROW_CHARS:
            yield Record(number, None, ("row", _too_long(chars)))
        else:
            yield _object_record(number, value)


class _ArrayItems:
    """The items of the JSON array that ``text`` holds: ``(position, value, length)``.

    The text is read in pieces into a buffer that holds the item being parsed
    and what was read past it; each item is parsed by the standard decoder
    from the buffer.  An item that is not whole in the buffer is read on,
    doubling what is held, up to :data:`~pika_tasks.manifest.MAX_ROW_CHARS`;
    past that it is skipped (its value is then None).
    """

    def __init__(self, text: TextIO, url: str) -> None:
        self._text = text
        self._url = url
        self._buffer = ""
        self._pos = 0
        self._offset = 0  # characters dropped from the front of the buffer
        self._eof = False

    def __iter__(self) -> Iterator[tuple[int, Any, int]]:
        first = self._next_char()
        if first != "[":
            raise self._not_an_array(first)
        self._pos += 1
        if self._next_char() == "]":
            self._pos += 1
        else:
            number = 0
            while True:
                number += 1
                yield number, *self._value()
                after = self._next_char()
                self._pos += 1
                if after == "]":
                    break
                if after != ",":
                    raise self._invalid("Expecting ',' delimiter", self._pos - 1)
                self._next_char()
        if self._next_char():
            raise self._invalid("Extra data", self._pos)

    def _not_an_array(self, first: str) -> ManifestError:
        if not first:
            return self._invalid("Expecting value", self._pos)
        # An object's kind is known from its brace: no need to read it all.
        what = "an object" if first == "{" else kind(self._value()[0])
        return ManifestError(
            f"manifest {self._url} must hold a JSON array of row objects, not {what}"
        )

    def _invalid(self, message: str, pos: int) -> ManifestError:
        return ManifestError(
            f"manifest {self._url} is not valid JSON: {message} at character "
            f"{self._offset + pos + 1}"
        )

    def _read_more(self, at_least: int, *, keep: bool = True) -> bool:
        """Read the next piece of text (at least ``at_least`` characters unless at the end).

        It is appended to what is held from the cursor on, or with
        ``keep=False`` replaces the whole buffer.  False at the end of the text.
        """
        if self._eof:
            return False
        piece = self._text.read(max(_CHUNK, at_least))
        if not piece:
            self._eof = True
            return False
        kept = self._pos if keep else len(self._buffer)
        self._offset += kept
        self._buffer = self._buffer[kept:] + piece
        self._pos = 0
        return True

    def _next_char(self) -> str:
        """Skip whitespace; the next character ("" at the end), left unconsumed."""
        while True:
            found = _NOT_SPACE.search(self._buffer, self._pos)
            if found is not None:
                self._pos = found.start()
                return self._buffer[self._pos]
            self._pos = len(self._buffer)
            if not self._read_more(_CHUNK):
                return ""

    def _value(self) -> tuple[Any, int]:
        """Parse the value at the cursor and move past it: ``(value, length in characters)``.

        Reads on until the value is whole; one that is still not whole past
        the row limit is skipped instead: ``(None, length)``.
        """
        start = self._offset + self._pos
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except RecursionError as error:
                raise ManifestError(
                    f"manifest {self._url} nests JSON too deeply to read"
                ) from error
            except json.JSONDecodeError as error:
                cut_short = error.msg.startswith("Unterminated string") or (
                    error.pos >= len(self._buffer) - _NEAR_END
                )
                if not cut_short or self._eof:
                    raise self._invalid(error.msg, error.pos) from error
                # The value runs on to the end of what is held.
                length = len(self._buffer) - self._pos
            else:
                # A number at the end of what was read may go on in what was not
                # ("1" of "1.5", "2" of "2e3").
                if len(self._buffer) - end >= _NEAR_END or self._eof:
                    self._pos = end
                    return value, self._offset + end - start
                length = end - self._pos
            if length > MAX_ROW_CHARS:
                return None, self._skip(start)
            self._read_more(len(self._buffer) - self._pos)

    def _skip(self, start: int) -> int:
        """Move past the value at the cursor without holding it; return its length.

        Only its structure is followed (strings, escapes, brackets): a value
        this long is refused whatever it holds.
        """
        depth, in_string, escaped = 0, False, False
        while True:
            buffer, i = self._buffer, self._pos
            while i < len(buffer):
                if escaped:
                    escaped, i = False, i + 1
                    continue
                pattern = _IN_STRING if in_string else _STRUCTURE if depth else _STRUCTURE_TOP
                found = pattern.search(buffer, i)
                if found is None:
                    i = len(buffer)
                    break
                mark, i = found.group(), found.end()
                if mark == "\\":
                    escaped = True
                    continue
                if mark == '"':
                    in_string = not in_string
                    if in_string or depth:
                        continue
                elif mark in "[{":
                    depth += 1
                    continue
                elif depth:  # a comma or a closing bracket inside the value
                    if mark == ",":
                        continue
                    depth -= 1
                    if depth:
                        continue
                else:  # what ends a bare number or word: not the value's
                    i -= 1
                self._pos = i
                return self._offset + i - start
            self._pos = i
            if not self._read_more(_CHUNK, keep=False):
                raise self._invalid("Unterminated value", self._pos)
