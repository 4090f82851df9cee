"""Hypothesis strategies for hostile manifests, each row labelled with what must happen to it.

A generated row knows its own verdict by construction: every field value is
drawn either from values the manifest reader must accept or from values it must
refuse, so a test can say which fields may be named in the row's error without
re-implementing the reader.

Manifests are rendered to the bytes of a CSV, JSON Lines or JSON file; undecodable
bytes are spliced in after encoding, at a marker placed in the chosen cell.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

MARKER = "\ue000\ue001"
"""Put in a cell where undecodable bytes go; replaced after the manifest is encoded."""

_NOT_IN_TEXT = "\x00\ue000\ue001"
"""Never generated in text: NUL makes a whole file unreadable, the others are the marker."""

_TEXT = st.characters(codec="utf-8", exclude_characters=_NOT_IN_TEXT)
"""Any character but lone surrogates, NUL and the marker."""

BAD_BYTES = (b"\xff", b"\xfe\xfe", b"\xe9", b"\xc3(", b"\xed\xa0\x80", b"\x80")
"""Byte sequences that are not UTF-8."""

KNOWN = ("id", "image", "prompt", "negative_prompt", "resolution", "duration", "seed")
EXTRA_NAMES = ("note", "Camera", "x-meta", "tags", "owner_email")


class _Absent:
    """The type of :data:`ABSENT`."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""A column left out of the row."""

# Missing cells: an absent key, null, or blank text.
MISSING: tuple[Any, ...] = (None, "", "   ", "\t")

ESCAPING_IDS = (
    "..",
    ".",
    "../escape",
    "../../etc/passwd",
    "/etc/passwd",
    "/tmp/owned",
    "a/b",
    "a\\b",
    "..\\..\\win",
    "C:\\x",
    "C:x",
    "s3://bucket/x",
    "file:///tmp/x",
    "~/x",
    ".hidden",
    " .. ",
    "%2e%2e%2fx",
    "x" * 129,
    "a b",
    "é",
    "\u202eevil",
    "\uff58",  # fullwidth x
    "a\x01b",
    "a\nb",
)
"""Ids that name files outside the output folder, hidden files, or are unsafe as names."""

WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{port}{n}" for port in ("COM", "LPT") for n in range(10)}
)
"""Names Windows gives to devices: ``{output}/NUL.mp4`` there is the null device."""

WINDOWS_UNSAFE_IDS = (
    "CON",
    "con",
    "Nul",
    "aux.mp4",
    "PRN.final",
    "COM1",
    "com9.v2",
    "LPT1",
    "lpt0.x.y",
    "clip.",
    "a..",
    "ok.b.",
)
"""Ids that are file names nowhere but on Windows: device names and trailing dots."""

HOSTILE_IDS = ESCAPING_IDS + WINDOWS_UNSAFE_IDS
"""Every id the reader must refuse."""


def windows_safe(row_id: str) -> bool:
    """``{id}.mp4`` is an ordinary file on Windows too (no device name, no trailing dot)."""
    return row_id.split(".")[0].upper() not in WINDOWS_DEVICES and not row_id.endswith(".")


@dataclass
class Row:
    """One generated row and what the reader must do with it.

    Attributes:
        cells: column -> value; a column that is not there is absent.
        bad: fields that are wrong: the row's error must name one of them.
        row_level: the row as a whole is wrong (not an object, not JSON, extra cells).
        utf8: the column whose cell holds undecodable bytes (the error names it).
        explicit_id: the row's id when it gives a valid one (stripped).
        raw: a JSON Lines line to write as is (for rows that are not objects).
        blank: a row with nothing in it, which the reader skips.
    """

    cells: dict[str, Any] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)
    row_level: bool = False
    utf8: str | None = None
    bad_bytes: bytes = b""
    explicit_id: str | None = None
    raw: str | None = None
    blank: bool = False
    extra_cells: list[str] = field(default_factory=list)
    short: bool = False

    @property
    def good(self) -> bool:
        """No field is wrong (it may still be refused as a duplicate)."""
        return not (self.bad or self.row_level or self.utf8)


def _field(name: str, text_only: bool, hostile: bool) -> st.SearchStrategy[tuple[Any, bool]]:
    """A value for ``name`` as ``(value, wrong?)``; ``ABSENT`` leaves the column out.

    A ``hostile`` field takes a value the reader must refuse, any other field
    one it must accept.
    """
    good, bad = _values(name, text_only)
    if hostile:
        return bad.map(lambda value: (value, True))
    return good.map(lambda value: (value, False))


def _values(name: str, text_only: bool) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """(accepted values, refused values) of one column; JSON types only outside CSV."""
    missing = st.sampled_from((*MISSING, ABSENT))
    if name == "id":
        safe = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(
            windows_safe
        )
        pool = st.sampled_from(["dup", "DUP", "Dup", "clip-1", "CLIP-1"])
        good = st.one_of(
            safe, pool, safe.map(lambda value: f"  {value} "), st.just("y" * 128), missing
        )
        bad: list[Any] = list(HOSTILE_IDS)
        if not text_only:
            good = st.one_of(good, st.integers(0, 10_000))
            bad += [True, 1.5, [], {"id": "x"}, "a\x00b"]
        return good, st.sampled_from(bad)
    if name == "image":
        good = st.sampled_from(
            [
                "images/0.png",
                "./images/1.png",
                "images/../images/2.png",
                "https://example.com/a.png",
                "/abs/path/a.png",
                "memory://elsewhere/a.png",
            ]
        )
        bad = ["data:image/png;base64,iVBORw0KGgo=", "../../../etc/passwd", *MISSING, ABSENT]
        if not text_only:
            bad += [5, ["a.png"], {"url": "a.png"}, True]
        return good, st.sampled_from(bad)
    if name in ("prompt", "negative_prompt"):
        prose = st.text(alphabet=_TEXT, min_size=1, max_size=40).filter(str.strip)
        good = st.one_of(prose, st.just("p" * 2000), st.just("  " + "q" * 2000 + "  "))
        bad = ["x" * 2001, "y" * 60_000]
        if not text_only:
            bad += [42, ["a"], False, {"text": "a"}]
        if name == "prompt":
            return good, st.one_of(st.sampled_from(bad), missing)
        return st.one_of(good, missing), st.sampled_from(bad)
    if name == "resolution":
        accepted: list[Any] = ["720p", "1080p", "1080P", " 720p "]
        refused: list[Any] = ["4k", "720", "1080", "hd", "720p;"]
        json_refused: list[Any] = [720, True, ["720p"]]
    elif name == "duration":
        accepted = ["5", "10", " 10 ", "5.0", "+5", "05"]
        refused = ["7", "five", "-5", "5.5", "1e1", "10s"]
        json_refused = [7, 5.5, True, [5]]
        if not text_only:
            accepted += [5, 10, 5.0, 10.0]
    else:  # seed
        accepted = ["0", "4294967295", "42", " 7 ", "+3"]
        refused = ["-1", "4294967296", "abc", "1.5", "1e3", "0x10"]
        json_refused = [-1, 4294967296, 1.5, True, [1], math.inf]
        if not text_only:
            accepted += [0, 4294967295, 3.0, math.nan]
    if not text_only:
        refused += json_refused
    return st.one_of(st.sampled_from(accepted), missing), st.sampled_from(refused)


_JSON_EXTRA = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(alphabet=_TEXT, max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(alphabet="abcxyz_", max_size=5), children, max_size=3),
    ),
    max_leaves=6,
)


_CSV_EXTRA = st.text(alphabet=_TEXT, max_size=15)


def _one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws.

    Hypothesis favours the ends of a range (0, the maximum), so a residue from
    the middle of a wide range is used rather than ``== 0``.
    """
    return st.integers(0, 999).map(lambda value: value % n == 1)


@st.composite
def rows(draw: st.DrawFn, fmt: str) -> Row:
    """One row for a manifest in ``fmt`` (``csv``, ``jsonl`` or ``json``)."""
    text_only = fmt == "csv"
    if fmt == "jsonl" and draw(_one_in(12)):
        raw = draw(st.sampled_from(['{"id": "x",', "[1, 2]", '"just text"', "42", "null", "}{"]))
        return Row(row_level=True, raw=raw)
    if fmt == "json" and draw(_one_in(12)):
        return Row(row_level=True, raw=draw(st.sampled_from(["[1, 2]", '"text"', "42", "null"])))
    if fmt == "csv" and draw(_one_in(16)):
        return Row(blank=True)
    row = Row()
    # Most rows have a wrong field or two; the rest of the row is fine.
    hostile = draw(st.sets(st.sampled_from(KNOWN), max_size=2))
    for name in KNOWN:
        value, wrong = draw(_field(name, text_only, name in hostile))
        if value is ABSENT:
            if wrong:
                row.bad.add(name)
            continue
        row.cells[name] = value
        if wrong:
            row.bad.add(name)
    for name in draw(st.lists(st.sampled_from(EXTRA_NAMES), max_size=2, unique=True)):
        row.cells[name] = draw(_CSV_EXTRA if text_only else _JSON_EXTRA)
    if "id" not in row.bad:
        row.explicit_id = _good_id(row.cells.get("id", ABSENT))
    if text_only and draw(_one_in(12)):
        row.extra_cells = ["surplus"]
        row.row_level = True
    row.short = text_only and not row.extra_cells and draw(st.booleans())
    strings = [name for name, value in row.cells.items() if isinstance(value, str)]
    undecodable: bool = draw(_one_in(10))
    if strings and undecodable:
        row.utf8 = draw(st.sampled_from(strings))
        row.bad_bytes = draw(st.sampled_from(BAD_BYTES))
        row.cells[row.utf8] = row.cells[row.utf8] + MARKER
    return row


def _good_id(value: Any) -> str | None:
    """The id a row with an accepted ``id`` value gets (stripped; integers as text)."""
    if value is ABSENT or value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    stripped = str(value).strip()
    return stripped or None


@dataclass
class Rendered:
    """A manifest's bytes and the 1-based row number of every generated row (None if skipped)."""

    data: bytes
    numbers: list[int | None]
    columns: list[str]


def render(generated: list[Row], fmt: str) -> Rendered:
    """Encode ``generated`` as a ``fmt`` manifest, splicing in the undecodable bytes."""
    if fmt == "csv":
        return _render_csv(generated)
    numbers: list[int | None] = []
    parts: list[str] = []
    for index, row in enumerate(generated, start=1):
        numbers.append(index)
        parts.append(row.raw if row.raw is not None else json.dumps(row.cells, ensure_ascii=False))
    text = "\n".join(parts) + "\n" if fmt == "jsonl" else "[" + ",\n".join(parts) + "]"
    columns = sorted({name for row in generated for name in row.cells})
    return Rendered(_splice(text, generated), numbers, columns)


def _render_csv(generated: list[Row]) -> Rendered:
    """CSV with a header of every column used, numbering rows as the reader does."""
    columns: list[str] = []
    for row in generated:
        columns.extend(name for name in row.cells if name not in columns)
    if not columns:
        columns = ["image"]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    numbers: list[int | None] = []
    for row in generated:
        start = buffer.getvalue()
        cells = [_csv_text(row.cells.get(name, "")) for name in columns]
        if row.blank:
            cells = ["" for _ in columns]
        while row.short and cells and cells[-1] == "":
            cells.pop()  # a short row: its missing trailing cells read as empty
        cells += row.extra_cells
        writer.writerow(cells)
        # The reader numbers a row by the line it starts on, minus the header line,
        # and skips rows with nothing in them.
        lines_before = len(io.StringIO(start, newline="").readlines())
        empty = all(not cell.strip() for cell in cells)
        numbers.append(None if empty else lines_before)
    return Rendered(_splice(buffer.getvalue(), generated), numbers, columns)


def _csv_text(value: Any) -> str:
    """A CSV cell's text for ``value`` (null is an empty cell)."""
    return "" if value is None else str(value)


def _splice(text: str, generated: list[Row]) -> bytes:
    """UTF-8 bytes of ``text`` with each marker replaced by its row's bad bytes, in order."""
    data = text.encode("utf-8")
    marker = MARKER.encode("utf-8")
    for row in generated:
        if row.utf8 is not None:
            data = data.replace(marker, row.bad_bytes, 1)
    assert marker not in data
    return data
