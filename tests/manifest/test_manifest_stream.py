"""Manifests read as a stream: rows come as they are read, and memory follows the row.

The read-ahead tests use ``counted://``, an in-memory store that counts the bytes
handed to readers (see ``manifest_support.py``): after the first row of a large manifest,
only a block of it has been read.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import tracemalloc
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from manifest_support import CountedStore, encode_rows

from pika_tasks.manifest import (
    MAX_ROW_CHARS,
    ManifestError,
    ManifestRow,
    RowError,
    _delimited,
    _json,
    iter_manifest,
    read_manifest,
)
from pika_tasks.manifest._source import HEAD_BYTES

ROWS = 20_000


def _rows(count: int, note: str = "") -> list[dict[str, Any]]:
    """Distinct rows whose text compresses about as badly as real prompts do."""
    rows = []
    for index in range(count):
        digest = hashlib.sha256(str(index).encode()).hexdigest()
        row = {"id": f"r{index}", "image": f"imgs/{index}.png", "prompt": f"pan {digest}"}
        if note:
            row["note"] = note
        rows.append(row)
    return rows


def _encode(rows: list[dict[str, Any]], fmt: str, compression: str | None = None) -> bytes:
    if fmt == "parquet":
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), sink, row_group_size=1_000)
        data = sink.getvalue()
    else:
        data = encode_rows(rows, fmt)
    if compression is None:
        return data
    fs = fsspec.filesystem("memory")
    url = f"memory://stream-compress/{hashlib.sha256(data).hexdigest()[:12]}"
    with fsspec.open(url, "wb", compression=compression) as handle:
        handle.write(data)
    try:
        compressed: bytes = fs.cat(url)
    finally:
        fs.rm(url)
    return compressed


def _items(url: str, **kwargs: Any) -> list[ManifestRow | RowError]:
    return list(iter_manifest(url, **kwargs))


# --------------------------------------------------------------------------- order, sameness


@pytest.mark.parametrize(
    ("name", "compression"),
    [
        ("m.csv", None),
        ("m.tsv", None),
        ("m.jsonl", None),
        ("m.json", None),
        ("m.parquet", None),
        ("m.csv.gz", "gzip"),
        ("m.jsonl.bz2", "bz2"),
        ("m.json.xz", "xz"),
        ("m.csv.zip", "zip"),
    ],
)
def test_every_format_streams_the_rows_and_errors_read_manifest_gives(
    counted_store: CountedStore, name: str, compression: str | None
) -> None:
    fmt = name.split(".")[1]
    rows = [{**row, "resolution": None} for row in _rows(3_000)]
    rows[10]["resolution"] = "4k"
    rows[20]["id"] = "R0"  # the same id as row 1, ignoring case
    url = counted_store.put(name, _encode(rows, fmt, compression))

    items = _items(url)
    manifest = read_manifest(url)

    assert [item for item in items if isinstance(item, ManifestRow)] == manifest.rows
    assert [item for item in items if isinstance(item, RowError)] == manifest.errors
    assert len(items) == 3_000
    numbers = [item.row_number for item in items]
    assert numbers == sorted(numbers)
    assert [(e.row_number, e.field) for e in manifest.errors] == [(11, "resolution"), (21, "id")]


# --------------------------------------------------------------------------- read-ahead


@pytest.mark.parametrize(
    ("name", "compression", "most"),
    [
        # A block of text is checked before the first row, and nothing more is needed.
        ("m.csv", None, HEAD_BYTES),
        ("m.tsv", None, HEAD_BYTES),
        ("m.jsonl", None, HEAD_BYTES),
        ("m.json", None, HEAD_BYTES),
        # The footer, then the first row group (of 20).
        ("m.parquet", None, 250_000),
        # Compressed: what the decompressor needs for a block of text (bz2 works in
        # blocks of up to 900 kB of text).
        ("m.csv.gz", "gzip", HEAD_BYTES),
        ("m.jsonl.bz2", "bz2", 400_000),
        ("m.json.xz", "xz", HEAD_BYTES),
        ("m.csv.zip", "zip", HEAD_BYTES + 1_000),
    ],
)
def test_the_first_row_comes_after_a_block_not_the_file(
    counted_store: CountedStore, name: str, compression: str | None, most: int
) -> None:
    fmt = name.split(".")[1]
    url = counted_store.put(name, _encode(_rows(ROWS), fmt, compression))
    size = counted_store.size(url)

    stream = iter_manifest(url)
    assert counted_store.bytes_read(url) == 0  # nothing is opened before the first next()
    first = next(stream)
    read_for_first = counted_store.bytes_read(url)
    rest = sum(1 for _ in stream)

    assert isinstance(first, ManifestRow) and first.id == "r0"
    assert rest == ROWS - 1
    assert 0 < read_for_first <= most
    assert read_for_first < size / 2, (read_for_first, size)
    assert counted_store.bytes_read(url) >= size * 0.9  # the counts are real: all of it, by the end
    assert counted_store.open_readers(url) == 0


def test_a_parquet_manifest_is_read_a_row_group_at_a_time(counted_store: CountedStore) -> None:
    rows = _rows(5_000)
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink, row_group_size=500)
    url = counted_store.put("m.parquet", sink.getvalue())
    assert pq.ParquetFile(io.BytesIO(sink.getvalue())).num_row_groups == 10

    stream = iter_manifest(url)
    seen: list[int] = []
    read_at: dict[int, int] = {}
    for item in stream:
        assert isinstance(item, ManifestRow)
        seen.append(item.row_number)
        read_at[item.row_number] = counted_store.bytes_read(url)

    assert seen == list(range(1, 5_001))
    # Within a row group nothing more is read; each new group reads more.
    assert read_at[1] == read_at[500] < read_at[501] == read_at[1_000] < read_at[1_001]
    assert read_at[1] < counted_store.size(url) / 3


def test_nothing_is_opened_before_the_first_row_and_closing_closes_the_file(
    counted_store: CountedStore,
) -> None:
    url = counted_store.put("m.jsonl", _encode(_rows(1_000), "jsonl"))

    stream = iter_manifest(url)
    assert counted_store.open_readers(url) == 0
    next(stream)
    assert counted_store.open_readers(url) == 1
    stream.close()
    assert counted_store.open_readers(url) == 0

    with contextlib.closing(iter_manifest(url)) as again:
        next(again)
        assert counted_store.open_readers(url) == 1
    assert counted_store.open_readers(url) == 0


# --------------------------------------------------------------------------- memory


def test_a_json_array_of_ten_thousand_rows_streams_in_bounded_memory(
    counted_store: CountedStore,
) -> None:
    rows = _rows(10_000, note="n" * 2_000)
    data = _encode(rows, "json")
    url = counted_store.put("m.json", data)
    del rows

    tracemalloc.start()
    try:
        count = sum(1 for item in iter_manifest(url) if isinstance(item, ManifestRow))
        _, streamed = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        whole = json.loads(data)
        _, parsed_whole = tracemalloc.get_traced_memory()
        del whole
    finally:
        tracemalloc.stop()

    assert count == 10_000
    # The whole parsed array takes about the file's size; the stream holds a few
    # blocks, the row, and the ids seen (about 100 bytes a row: 1 MB of the 1.5 MB).
    assert streamed < len(data) / 10, (streamed, len(data))
    assert streamed < parsed_whole / 10, (streamed, parsed_whole)


def test_a_csv_stream_holds_a_few_rows_not_the_file(counted_store: CountedStore) -> None:
    url = counted_store.put("m.csv", _encode(_rows(10_000, note="n" * 1_000), "csv"))

    tracemalloc.start()
    try:
        stream = iter_manifest(url)
        next(stream)
        _, first = tracemalloc.get_traced_memory()
        for _ in stream:
            pass
        _, streamed = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert first < 1_000_000
    assert streamed < counted_store.size(url) / 8, (streamed, counted_store.size(url))


# --------------------------------------------------------------------------- whole-file problems


def test_an_unknown_format_raises_at_the_call() -> None:
    with pytest.raises(ManifestError, match="cannot tell the format"):
        iter_manifest("memory://stream/m.xlsx")


def test_a_missing_file_raises_at_the_first_row_not_the_call(memory_root: str) -> None:
    stream = iter_manifest(f"{memory_root}/nope.csv")

    with pytest.raises(ManifestError, match="manifest not found"):
        next(stream)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("m.csv", "picture,prompt\n" + "a.png,p\n" * 100, "no 'image' column"),
        ("m.tsv", "", "is empty"),
        ("m.csv", "image,prompt,prompt\na.png,p,q\n", "appears twice"),
        ("m.json", '{"rows": [' + '{"image": "a.png"},' * 100 + "{}]}", "must hold a JSON array"),
        ("m.json", "", "is not valid JSON: Expecting value at character 1"),
    ],
)
def test_a_problem_of_the_file_raises_before_any_row(
    memory_root: str, put_manifest: Any, name: str, content: str, match: str
) -> None:
    url = put_manifest(f"{memory_root}/{name}", content)

    with pytest.raises(ManifestError, match=match):
        next(iter_manifest(url))


def test_json_rows_none_of_which_has_an_image_are_refused_then_the_file(
    memory_root: str, put_manifest: Any
) -> None:
    # JSON rows declare no columns: only the end tells that no row names an image.
    rows = [{"id": f"r{n}", "picture": "a.png", "prompt": "p"} for n in range(3)]
    url = put_manifest(f"{memory_root}/m.jsonl", rows)

    stream = iter_manifest(url)
    refused = [next(stream) for _ in range(3)]
    with pytest.raises(ManifestError, match="no row has an 'image' field"):
        next(stream)

    assert [str(item) for item in refused] == [
        f"row {n}, field 'image': is missing" for n in (1, 2, 3)
    ]


def test_an_invalid_json_array_stops_where_it_turns_invalid(
    memory_root: str, put_manifest: Any
) -> None:
    body = ",".join(json.dumps(row) for row in _rows(3)) + ', {"image": }]'
    url = put_manifest(f"{memory_root}/m.json", "[" + body)

    stream = iter_manifest(url)
    taken = [next(stream) for _ in range(3)]
    with pytest.raises(ManifestError, match="is not valid JSON: Expecting value at character"):
        next(stream)

    assert [item.id for item in taken if isinstance(item, ManifestRow)] == ["r0", "r1", "r2"]


def test_a_corrupt_gzip_tail_stops_the_stream_where_it_breaks(counted_store: CountedStore) -> None:
    data = bytearray(_encode(_rows(ROWS), "csv", "gzip"))
    data[len(data) // 2 :] = b"\x00" * (len(data) - len(data) // 2)
    url = counted_store.put("m.csv.gz", bytes(data))

    stream = iter_manifest(url)
    assert isinstance(next(stream), ManifestRow)
    with pytest.raises(ManifestError, match=r"cannot read manifest .* as gzip"):
        for _ in stream:
            pass
    assert counted_store.open_readers(url) == 0


# --------------------------------------------------------------------------- NUL bytes


def test_nul_bytes_in_the_first_block_refuse_the_file(memory_root: str) -> None:
    url = f"{memory_root}/m.csv"
    fsspec.filesystem("memory").pipe(url, b"image,prompt\na.png,p\x00q\n")

    with pytest.raises(ManifestError, match=r"not UTF-8 text \(it holds NUL bytes\)"):
        next(iter_manifest(url))


def test_a_nul_byte_past_the_first_block_fails_its_row(memory_root: str) -> None:
    rows = _rows(2_000)
    text = encode_rows(rows, "csv").decode()
    lines = text.splitlines(keepends=True)
    assert len("".join(lines[:1_500])) > HEAD_BYTES
    lines[1_500] = lines[1_500].replace("pan ", "pan \x00", 1)
    url = f"{memory_root}/m.csv"
    fsspec.filesystem("memory").pipe(url, "".join(lines).encode())

    manifest = read_manifest(url)

    assert len(manifest.rows) == 1_999
    assert [(e.row_number, e.field) for e in manifest.errors] == [(1_500, "prompt")]
    assert "NUL byte" in manifest.errors[0].reason


def test_a_nul_byte_past_the_first_block_of_json_lines_fails_its_row(memory_root: str) -> None:
    lines = [json.dumps(row) + "\n" for row in _rows(2_000)]
    lines[1_500] = lines[1_500].replace("pan ", "pan \x00", 1)
    url = f"{memory_root}/m.jsonl"
    fsspec.filesystem("memory").pipe(url, "".join(lines).encode())

    manifest = read_manifest(url)

    assert len(manifest.rows) == 1_999
    assert [(e.row_number, e.field) for e in manifest.errors] == [(1_501, "row")]
    assert manifest.errors[0].reason.startswith("is not valid JSON: Invalid control character")


# --------------------------------------------------------------------------- oversized rows


def _huge(chars: int) -> str:
    return "z" * chars


def test_a_csv_row_longer_than_the_limit_fails_alone(memory_root: str) -> None:
    cell = _huge(MAX_ROW_CHARS + 10)
    text = (
        "id,image,prompt,note\n"
        "a,a.png,p,\n"
        f'b,b.png,p,"{cell[:100]}\n{cell}, ""quoted"" "\n'
        "c,c.png,p,\n"
    )
    url = f"{memory_root}/m.csv"
    fsspec.filesystem("memory").pipe(url, text.encode())

    manifest = read_manifest(url)

    assert [(row.row_number, row.id) for row in manifest.rows] == [(1, "a"), (4, "c")]
    [error] = manifest.errors
    record = text.splitlines(keepends=True)[2:4]
    assert str(error) == (
        f"row 2, field 'row': is {len(''.join(record))} characters long; "
        f"a row may hold at most {MAX_ROW_CHARS}"
    )


def _jsonl_with(huge: str) -> str:
    return f'{{"id": "a", "image": "a.png", "prompt": "p"}}\n{huge}\n' + (
        '{"id": "c", "image": "c.png", "prompt": "p"}\n'
    )


def _json_with(huge: str) -> str:
    return f'[{{"id": "a", "image": "a.png", "prompt": "p"}}, {huge}, ' + (
        '{"id": "c", "image": "c.png", "prompt": "p"}]'
    )


@pytest.mark.parametrize(
    ("name", "manifest_with", "note"),
    [
        ("m.jsonl", _jsonl_with, lambda text: text),
        ("m.json", _json_with, lambda text: [text, "]}"]),  # a bracket inside a string
    ],
    ids=["json-lines-row", "json-array-item"],
)
def test_a_row_longer_than_the_limit_fails_alone(
    name: str, manifest_with: Any, note: Any, memory_root: str
) -> None:
    huge = json.dumps({"image": "b.png", "prompt": "p", "note": note(_huge(MAX_ROW_CHARS))})
    url = f"{memory_root}/{name}"
    fsspec.filesystem("memory").pipe(url, manifest_with(huge).encode())

    manifest = read_manifest(url)

    assert [row.id for row in manifest.rows] == ["a", "c"]
    assert [str(e) for e in manifest.errors] == [
        f"row 2, field 'row': is {len(huge)} characters long; a row may hold at most "
        f"{MAX_ROW_CHARS}"
    ]


# --------------------------------------------------------------------------- record boundaries

_CSV_TEXT = st.text(alphabet=st.sampled_from(list('ab ,;"\n\r\t')), max_size=80)


def _csv_record_lines(text: str, delimiter: str) -> list[int]:
    """The line count after each record, as the csv module reads ``text``."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    ends = []
    for _ in reader:
        ends.append(reader.line_num)
    return ends


@given(text=_CSV_TEXT, delimiter=st.sampled_from([",", "\t"]), cut=st.integers(1, 7))
@settings(max_examples=400, deadline=None)
def test_the_oversized_record_skipper_ends_records_where_csv_does(
    text: str, delimiter: str, cut: int
) -> None:
    """Fed lines, or pieces of them, the skipper finds the record ends csv.reader finds."""
    lines = io.StringIO(text, newline="").readlines()
    ends: list[int] = []
    end = _delimited._RecordEnd(delimiter)
    for number, line in enumerate(lines, 1):
        pieces = [line[i : i + cut] for i in range(0, len(line), cut)]
        if len(pieces) > 1 and pieces[-1] == "\n" and pieces[-2].endswith("\r"):
            pieces[-2:] = [pieces[-2] + "\n"]  # the reader never splits a "\r\n"
        if any(end.feed(piece) for piece in pieces[:-1]):
            raise AssertionError(f"a record ended inside line {number}: {line!r}")
        if end.feed(pieces[-1]):
            ends.append(number)
            end = _delimited._RecordEnd(delimiter)
    if lines and (not ends or ends[-1] != len(lines)):
        ends.append(len(lines))  # the end of the text ends the last record

    assert ends == _csv_record_lines(text, delimiter)


@given(text=_CSV_TEXT, limit=st.integers(7, 40), chunk=st.integers(1, 5))
@settings(max_examples=400, deadline=None)
def test_rows_after_an_oversized_csv_row_keep_their_numbers_and_cells(
    text: str, limit: int, chunk: int
) -> None:
    """With a tiny row limit, each row over it fails alone; the others read as csv reads them."""
    whole = "image\n" + text
    lines = io.StringIO(whole, newline="").readlines()
    reader = csv.reader(io.StringIO(whole, newline=""), strict=False)
    next(reader)
    expected: list[tuple[int, Any]] = []
    start = reader.line_num
    for cells in reader:
        chars = len("".join(lines[start : reader.line_num]))
        if chars > limit:
            expected.append((start, "too long"))
        elif any(cell.strip() for cell in cells):
            expected.append((start, cells))
        start = reader.line_num

    source = io.TextIOWrapper(io.BytesIO(whole.encode()), encoding="utf-8", newline="")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_delimited, "MAX_ROW_CHARS", limit)
        patch.setattr(_delimited, "_CHUNK", chunk)
        records = list(_delimited.delimited_records(source, ",", "m.csv"))

    assert [record.row_number for record in records] == [number for number, _ in expected]
    for record, (_, cells) in zip(records, expected, strict=True):
        if cells == "too long":
            assert record.problem is not None and "a row may hold at most" in record.problem[1]
        elif record.values is not None:
            assert record.values["image"] == cells[0]
        else:
            assert record.problem == ("row", f"has {len(cells)} cells but the header has 1 columns")


_JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(alphabet=st.sampled_from(list('a"\\[]{},:é\u2028\n ')), max_size=12),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(alphabet='ab"[', max_size=3), children, max_size=4),
    ),
    max_leaves=10,
)


@given(
    values=st.lists(_JSON_VALUES, max_size=6),
    chunk=st.integers(1, 9),
    limit=st.integers(1, 60),
    spaces=st.sampled_from(["", " ", "\n  "]),
)
@settings(max_examples=400, deadline=None)
def test_json_array_items_read_in_tiny_pieces_parse_as_json_loads_does(
    values: list[Any], chunk: int, limit: int, spaces: str
) -> None:
    """Any piece size: each item parses as json.loads parses it, or is refused for its length."""
    parts = [json.dumps(value, ensure_ascii=False) for value in values]
    text = "[" + spaces + ("," + spaces).join(parts) + spaces + "]"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_json, "_CHUNK", chunk)
        patch.setattr(_json, "MAX_ROW_CHARS", limit)
        items = list(_json._ArrayItems(io.StringIO(text), "m.json"))

    assert [number for number, _, _ in items] == list(range(1, len(values) + 1))
    for (_, value, chars), part in zip(items, parts, strict=True):
        assert chars == len(part)
        if chars <= limit:
            assert json.dumps(value) == json.dumps(json.loads(part))
