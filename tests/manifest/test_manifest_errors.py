"""Bad rows become RowErrors without stopping the good rows; unreadable files raise."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

import pytest

from pika_tasks.errors import PikaError
from pika_tasks.manifest import (
    MAX_PROMPT_CHARS,
    ManifestError,
    RowDefaults,
    RowError,
    read_manifest,
)

GOOD = "good,good.png,a good prompt,,,,"
HEADER = "id,image,prompt,resolution,duration,seed,negative_prompt"


@pytest.mark.parametrize(
    ("line", "field", "reason", "row_id"),
    [
        ("r,,a prompt,,,,", "image", "is missing", "r"),
        ("r,a.png,,,,,", "prompt", "is missing, and no default prompt was given", "r"),
        ("r,a.png,   ,,,,", "prompt", "is missing, and no default prompt was given", "r"),
        ("r,a.png,p,4k,,,", "resolution", "'4k' is not one of 720p, 1080p", "r"),
        ("r,a.png,p,,7,,", "duration", "'7' is not one of 5, 10", "r"),
        ("r,a.png,p,,five,,", "duration", "'five' is not one of 5, 10", "r"),
        ("r,a.png,p,,,abc,", "seed", "'abc' is not a whole number", "r"),
        ("r,a.png,p,,,1.5,", "seed", "'1.5' is not a whole number", "r"),
        ("r,a.png,p,,,-1,", "seed", "-1 is out of range: seeds are 0..4294967295", "r"),
        (
            "r,a.png,p,,,4294967296,",
            "seed",
            "4294967296 is out of range: seeds are 0..4294967295",
            "r",
        ),
        ("r,data:image/png;base64 AAAA,p,,,,", "image", "data: URIs are not accepted", "r"),
        ("../x,a.png,p,,,,", "id", "'../x' contains '/'", None),
        ("a\\b,a.png,p,,,,", "id", "contains '\\\\'", None),
        ("s3://b/x,a.png,p,,,,", "id", "contains ':'", None),
        (".hidden,a.png,p,,,,", "id", "'.hidden' starts with '.'", None),
        ("..,a.png,p,,,,", "id", "'..' starts with '.'", None),
        ("has space,a.png,p,,,,", "id", "contains ' '", None),
        (
            f"{'x' * 129},a.png,p,,,,",
            "id",
            "is 129 characters long; ids may have at most 128",
            None,
        ),
        ("r,a.png,p,,,,,extra", "row", "has 8 cells but the header has 7 columns", None),
    ],
)
def test_bad_csv_row_is_reported_and_good_rows_kept(
    tmp_path: Path, put_manifest: Any, line: str, field: str, reason: str, row_id: str | None
) -> None:
    url = put_manifest(
        str(tmp_path / "m.csv"), f"{HEADER}\n{GOOD}\n{line}\n{GOOD.replace('good', 'fine')}\n"
    )

    manifest = read_manifest(url)

    assert [row.id for row in manifest.rows] == ["good", "fine"]
    assert len(manifest.errors) == 1
    error = manifest.errors[0]
    assert (error.row_number, error.field, error.id) == (2, field, row_id)
    assert reason in error.reason
    assert str(error) == f"row 2, field {field!r}: {error.reason}"


def test_control_characters_in_ids_are_refused_and_shown_escaped(
    tmp_path: Path, put_manifest: Any
) -> None:
    rows = [
        {"id": "a\x00b", "image": "a.png", "prompt": "p"},
        {"id": "a\nb", "image": "a.png", "prompt": "p"},
        {"id": "", "image": "c.png", "prompt": "p"},
    ]
    url = put_manifest(str(tmp_path / "m.jsonl"), rows)

    manifest = read_manifest(url)

    assert [(e.row_number, e.field) for e in manifest.errors] == [(1, "id"), (2, "id")]
    assert "'a\\x00b' contains '\\x00'" in manifest.errors[0].reason
    assert "'a\\nb' contains '\\n'" in manifest.errors[1].reason
    assert len(manifest.rows) == 1  # an empty id means "make one"


def test_prompt_longer_than_the_limit(tmp_path: Path, put_manifest: Any) -> None:
    rows = [
        {"id": "long", "image": "a.png", "prompt": "x" * (MAX_PROMPT_CHARS + 1)},
        {"id": "edge", "image": "a.png", "prompt": "x" * MAX_PROMPT_CHARS},
        {"id": "neg", "image": "a.png", "prompt": "p", "negative_prompt": "n" * 2001},
    ]
    url = put_manifest(str(tmp_path / "m.json"), rows)

    manifest = read_manifest(url)

    assert [row.id for row in manifest.rows] == ["edge"]
    assert [str(e) for e in manifest.errors] == [
        "row 1, field 'prompt': is 2001 characters long; the limit is 2000",
        "row 3, field 'negative_prompt': is 2001 characters long; the limit is 2000",
    ]


def test_prompt_over_the_limit_because_of_the_suffix(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(
        str(tmp_path / "m.json"), [{"id": "a", "image": "a.png", "prompt": "x" * 1995}]
    )

    manifest = read_manifest(url, defaults=RowDefaults(prompt_suffix="slow"))

    assert str(manifest.errors[0]) == (
        "row 1, field 'prompt': is 2001 characters long with the suffix; the limit is 2000"
    )


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ({"image": ["a.png"], "prompt": "p"}, "image", "must be a string, not a list"),
        ({"image": {"url": "a.png"}, "prompt": "p"}, "image", "must be a string, not an object"),
        ({"image": "a.png", "prompt": ["p"]}, "prompt", "must be a string, not a list"),
        ({"image": "a.png", "prompt": 5}, "prompt", "must be a string, not an integer"),
        (
            {"image": "a.png", "prompt": "p", "negative_prompt": {"a": 1}},
            "negative_prompt",
            "must be a string, not an object",
        ),
        (
            {"image": "a.png", "prompt": "p", "resolution": ["720p"]},
            "resolution",
            "must be a string, not a list",
        ),
        (
            {"image": "a.png", "prompt": "p", "duration": True},
            "duration",
            "true is not one of 5, 10",
        ),
        ({"image": "a.png", "prompt": "p", "duration": 7.5}, "duration", "7.5 is not one of 5, 10"),
        ({"image": "a.png", "prompt": "p", "seed": [1]}, "seed", "[1] is not a whole number"),
        ({"image": "a.png", "prompt": "p", "seed": False}, "seed", "false is not a whole number"),
        ({"image": "a.png", "prompt": "p", "id": ["x"]}, "id", "must be a string, not a list"),
        ({"image": "a.png", "prompt": "p", "id": True}, "id", "must be a string, not a boolean"),
    ],
)
def test_wrong_json_types_are_row_errors(
    tmp_path: Path, put_manifest: Any, row: dict[str, Any], field: str, reason: str
) -> None:
    rows = [{"image": "ok.png", "prompt": "fine"}, row]
    url = put_manifest(str(tmp_path / "m.jsonl"), rows)

    manifest = read_manifest(url)

    assert len(manifest.rows) == 1
    assert [(e.row_number, e.field, e.reason) for e in manifest.errors] == [(2, field, reason)]


def test_json_numbers_that_are_whole_are_accepted(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(
        str(tmp_path / "m.json"),
        [{"id": 7, "image": "a.png", "prompt": "p", "duration": 10.0, "seed": 4294967295}],
    )

    row = read_manifest(url).rows[0]

    assert (row.id, row.duration, row.seed) == ("7", 10, 4294967295)


def test_unparseable_jsonl_lines_and_non_objects(tmp_path: Path, put_manifest: Any) -> None:
    text = (
        '{"image": "a.png", "prompt": "p", "id": "a"}\n'
        '{"image": "b.png", "prompt": \n'
        '["not", "an", "object"]\n'
        '{"image": "d.png", "prompt": "p", "id": "d"}\n'
    )
    url = put_manifest(str(tmp_path / "m.jsonl"), text)

    manifest = read_manifest(url)

    assert [row.id for row in manifest.rows] == ["a", "d"]
    assert [(e.row_number, e.field) for e in manifest.errors] == [(2, "row"), (3, "row")]
    assert manifest.errors[0].reason.startswith("is not valid JSON: Expecting value at character")
    assert manifest.errors[1].reason == "must be a JSON object, not a list"


def test_a_nul_character_in_an_image_fails_its_row_alone(tmp_path: Path, put_manifest: Any) -> None:
    # JSON can carry U+0000 (a CSV with NUL bytes is refused whole); before, "~" and a NUL
    # made the home-folder lookup raise, and the whole manifest stopped at that row.
    rows = [
        {"id": "home", "image": "~\x00/a.png", "prompt": "p"},
        {"id": "plain", "image": "a\x00.png", "prompt": "p"},
        {"id": "good", "image": "good.png", "prompt": "p"},
    ]
    url = put_manifest(str(tmp_path / "m.jsonl"), rows)

    manifest = read_manifest(url)

    assert [row.id for row in manifest.rows] == ["good"]
    assert [(e.row_number, e.field, e.id) for e in manifest.errors] == [
        (1, "image", "home"),
        (2, "image", "plain"),
    ]
    assert {e.reason for e in manifest.errors} == {
        "holds a NUL character, which no path or URL can hold"
    }


def test_non_object_items_in_a_json_array(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(
        str(tmp_path / "m.json"), '[{"image": "a.png", "prompt": "p"}, "b.png", null]'
    )

    manifest = read_manifest(url)

    assert len(manifest.rows) == 1
    assert [str(e) for e in manifest.errors] == [
        "row 2, field 'row': must be a JSON object, not a string",
        "row 3, field 'row': must be a JSON object, not null",
    ]


def test_duplicate_ids_refuse_every_later_row(tmp_path: Path, put_manifest: Any) -> None:
    rows = [
        {"id": "x", "image": "a.png", "prompt": "p"},
        {"id": "y", "image": "b.png", "prompt": "p"},
        {"id": "x", "image": "c.png", "prompt": "p"},
        {"id": "X", "image": "d.png", "prompt": "p"},
    ]
    url = put_manifest(str(tmp_path / "m.csv"), rows)

    manifest = read_manifest(url)

    assert [row.id for row in manifest.rows] == ["x", "y"]
    assert [str(e) for e in manifest.errors] == [
        "row 3, field 'id': duplicate id 'x', first used on row 1",
        "row 4, field 'id': duplicate id 'X' (the same as 'x' when case is ignored), "
        "first used on row 1",
    ]


def test_an_id_is_taken_even_by_a_refused_row(tmp_path: Path, put_manifest: Any) -> None:
    rows = [
        {"id": "x", "image": "a.png", "prompt": "p", "resolution": "4k"},
        {"id": "x", "image": "b.png", "prompt": "p"},
    ]
    url = put_manifest(str(tmp_path / "m.csv"), rows)

    manifest = read_manifest(url)

    assert manifest.rows == []
    assert [(e.row_number, e.field) for e in manifest.errors] == [(1, "resolution"), (2, "id")]


def test_identical_rows_without_ids_are_duplicates(tmp_path: Path, put_manifest: Any) -> None:
    rows = [{"image": "a.png", "prompt": "p"}, {"image": "a.png", "prompt": "p"}]
    url = put_manifest(str(tmp_path / "m.csv"), rows)

    manifest = read_manifest(url)

    assert len(manifest.rows) == 1
    error = manifest.errors[0]
    assert (error.row_number, error.field) == (2, "id")
    assert error.reason.startswith(f"duplicate id {manifest.rows[0].id!r}, first used on row 1;")
    assert "give the rows distinct ids" in error.reason


def test_relative_image_climbing_out_of_an_http_host(put_manifest: Any, memory_root: str) -> None:
    # Reading from http would need a server; the resolution rule is the same.
    from pika_tasks.manifest._rows import _FieldProblem, resolve_relative_image

    with pytest.raises(_FieldProblem, match="climbs above the root"):
        resolve_relative_image("../../x.png", "https://example.com/in")
    assert (
        resolve_relative_image("../x.png", "https://example.com/in") == "https://example.com/x.png"
    )


def test_non_utf8_cells_name_the_row_and_column(tmp_path: Path, put_manifest: Any) -> None:
    data = (
        b"id,image,prompt,note\n"
        b"a,a.png,fine,ok\n"
        b"b,b.png,caf\xe9 au lait,ok\n"
        b"c,c.png,fine,\xff\n"
        b"d,d.png,fine,ok\n"
    )
    url = put_manifest(str(tmp_path / "m.csv"), data)

    manifest = read_manifest(url)

    assert [row.id for row in manifest.rows] == ["a", "d"]
    assert [str(e) for e in manifest.errors] == [
        "row 2, field 'prompt': is not valid UTF-8 (byte 0xe9 at character 4): "
        "save the manifest as UTF-8",
        "row 3, field 'note': is not valid UTF-8 (byte 0xff at character 1): "
        "save the manifest as UTF-8",
    ]


def test_non_utf8_bytes_in_jsonl(tmp_path: Path, put_manifest: Any) -> None:
    data = b'{"image": "a.png", "prompt": "ok"}\n{"image": "b\xe9.png", "prompt": "p"}\n'
    url = put_manifest(str(tmp_path / "m.jsonl"), data)

    manifest = read_manifest(url)

    assert len(manifest.rows) == 1
    assert (manifest.errors[0].row_number, manifest.errors[0].field) == (2, "image")
    assert "byte 0xe9" in manifest.errors[0].reason


# --------------------------------------------------------------------------- whole file


def _raises(url: str, match: str, **kwargs: Any) -> ManifestError:
    with pytest.raises(ManifestError, match=match) as caught:
        read_manifest(url, **kwargs)
    assert isinstance(caught.value, PikaError)
    return caught.value


def test_missing_local_file(tmp_path: Path) -> None:
    _raises(str(tmp_path / "nope.csv"), "manifest not found: .*nope.csv")


def test_missing_memory_file(memory_root: str) -> None:
    _raises(f"{memory_root}/nope.jsonl", "manifest not found")


def test_missing_s3_object(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    bucket, options = s3_bucket
    _raises(f"{bucket}/nope.csv", "manifest not found", storage_options=options)


def test_a_folder_is_not_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    _raises(str(tmp_path / "dir.csv"), "is a folder")


@pytest.mark.parametrize("name", ["m.xlsx", "manifest", "m.gz"])
def test_unknown_format(tmp_path: Path, put_manifest: Any, name: str) -> None:
    url = put_manifest(str(tmp_path / name), b"x")
    _raises(url, "cannot tell the format")


def test_unknown_format_argument(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), "image,prompt\n")
    _raises(url, "unknown manifest format 'xml'", format="xml")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("m.csv", "picture,prompt\na.png,p\n"),
        ("m.jsonl", '{"picture": "a.png", "prompt": "p"}\n'),
        ("m.json", '[{"picture": "a.png", "prompt": "p"}]'),
        ("m.parquet", [{"picture": "a.png", "prompt": "p"}]),
    ],
)
def test_no_image_column(tmp_path: Path, put_manifest: Any, name: str, content: Any) -> None:
    url = put_manifest(str(tmp_path / name), content)
    _raises(url, "'image'")


def test_semicolon_separated_csv_gets_a_hint(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), "image;prompt\na.png;p\n")
    _raises(url, "looks separated by ';'")


def test_duplicate_column(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), "image,prompt,prompt\na.png,p,q\n")
    _raises(url, "column 'prompt' appears twice")


def test_empty_csv(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), b"")
    _raises(url, "is empty")


@pytest.mark.parametrize("content", ['{"rows": []}', '"a.png"', "42"])
def test_json_that_is_not_an_array(tmp_path: Path, put_manifest: Any, content: str) -> None:
    url = put_manifest(str(tmp_path / "m.json"), content)
    _raises(url, "must hold a JSON array of row objects")


def test_invalid_json_file(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.json"), '[{"image": ')
    _raises(url, "is not valid JSON")


def test_utf16_file(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), "image,prompt\na.png,p\n".encode("utf-16"))
    _raises(url, "UTF-16")


def test_binary_file_with_a_text_extension(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), gzip.compress(b"image,prompt\n"))
    _raises(url, "not UTF-8 text")


def test_header_that_is_not_utf8(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), b"image,pr\xf6mpt\na.png,p\n")
    _raises(url, "header row is not valid UTF-8")


def test_corrupt_gzip(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv.gz"), b"this is not gzip")
    _raises(url, "cannot read manifest .* as gzip")


def test_corrupt_parquet(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.parquet"), b"PAR1 not really")
    _raises(url, "not a readable Parquet file")


def test_parquet_without_pyarrow(
    tmp_path: Path, put_manifest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = put_manifest(str(tmp_path / "m.parquet"), [{"image": "a.png", "prompt": "p"}])
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    _raises(url, r"needs pyarrow: pip install 'pika-tasks\[parquet\]'")


def test_unknown_protocol(put_manifest: Any) -> None:
    _raises("nosuchproto://bucket/m.csv", "cannot open manifest")


def test_row_error_string_form() -> None:
    error = RowError(row_number=7, field="resolution", reason="'4k' is not one of 720p, 1080p")
    assert str(error) == "row 7, field 'resolution': '4k' is not one of 720p, 1080p"
