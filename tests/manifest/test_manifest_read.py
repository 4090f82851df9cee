"""Reading manifests: every format, compression, file system and the row defaults."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pika_tasks.manifest import (
    Manifest,
    ManifestRow,
    RowDefaults,
    read_manifest,
)
from pika_tasks.models import ImageToVideoInput

ROWS: list[dict[str, Any]] = [
    {
        "id": "cat",
        "image": "imgs/cat.png",
        "prompt": "the cat yawns",
        "negative_prompt": "blur",
        "resolution": "1080p",
        "duration": 10,
        "seed": 42,
        "album": "pets",
    },
    {
        "id": "dog",
        "image": "https://example.com/dog.jpg",
        "prompt": "the dog runs",
        "negative_prompt": None,
        "resolution": None,
        "duration": None,
        "seed": None,
        "album": "pets",
    },
]


def _summary(manifest: Manifest) -> list[tuple[Any, ...]]:
    return [
        (
            row.row_number,
            row.id,
            row.image,
            row.prompt,
            row.negative_prompt,
            row.resolution,
            row.duration,
            row.seed,
            row.metadata,
        )
        for row in manifest.rows
    ]


def _expected(folder: str) -> list[tuple[Any, ...]]:
    return [
        (
            1,
            "cat",
            f"{folder}/imgs/cat.png",
            "the cat yawns",
            "blur",
            "1080p",
            10,
            42,
            {"album": "pets"},
        ),
        (
            2,
            "dog",
            "https://example.com/dog.jpg",
            "the dog runs",
            "",
            "720p",
            5,
            None,
            {"album": "pets"},
        ),
    ]


@pytest.mark.parametrize(
    ("name", "compression", "format"),
    [
        ("m.csv", None, "csv"),
        ("m.tsv", None, "tsv"),
        ("m.jsonl", None, "jsonl"),
        ("m.ndjson", None, "jsonl"),
        ("m.json", None, "json"),
        ("m.parquet", None, "parquet"),
        ("m.csv.gz", "gzip", "csv"),
        ("m.jsonl.bz2", "bz2", "jsonl"),
        ("m.json.xz", "xz", "json"),
    ],
)
def test_every_format_reads_the_same_rows_from_a_local_folder(
    tmp_path: Path, put_manifest: Any, name: str, compression: str | None, format: str
) -> None:
    url = put_manifest(str(tmp_path / name), ROWS, compression=compression)

    manifest = read_manifest(url)

    assert manifest.errors == []
    assert manifest.format == format
    assert manifest.url == url
    assert manifest.base_url == str(tmp_path)
    assert _summary(manifest) == _expected(str(tmp_path))


def test_memory_manifest_resolves_images_in_memory(memory_root: str, put_manifest: Any) -> None:
    url = put_manifest(f"{memory_root}/in/m.jsonl", ROWS)

    manifest = read_manifest(url)

    assert manifest.base_url == f"{memory_root}/in"
    assert manifest.rows[0].image == f"{memory_root}/in/imgs/cat.png"
    assert _summary(manifest) == _expected(f"{memory_root}/in")


def test_s3_manifest_resolves_images_in_the_bucket(
    s3_bucket: tuple[str, dict[str, Any]], put_manifest: Any
) -> None:
    bucket, options = s3_bucket
    rows = [*ROWS, {"id": "up", "image": "../shared/up.png", "prompt": "p"}]
    url = put_manifest(f"{bucket}/in/m.csv", rows, storage_options=options)

    manifest = read_manifest(url, storage_options=options)

    assert manifest.errors == []
    assert manifest.base_url == f"{bucket}/in"
    assert [row.image for row in manifest.rows] == [
        f"{bucket}/in/imgs/cat.png",
        "https://example.com/dog.jpg",
        f"{bucket}/shared/up.png",
    ]


def test_compressed_manifest_on_s3(
    s3_bucket: tuple[str, dict[str, Any]], put_manifest: Any
) -> None:
    bucket, options = s3_bucket
    url = put_manifest(f"{bucket}/in/m.jsonl.gz", ROWS, storage_options=options, compression="gzip")

    manifest = read_manifest(url, storage_options=options)

    assert _summary(manifest) == _expected(f"{bucket}/in")


def test_format_argument_overrides_the_extension(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "rows.txt"), ROWS, format="csv")

    manifest = read_manifest(url, format="csv")

    assert manifest.format == "csv"
    assert [row.id for row in manifest.rows] == ["cat", "dog"]


def test_explicit_compression_with_a_plain_name(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "rows.csv"), ROWS, format="csv", compression="gzip")

    manifest = read_manifest(url, compression="gzip")

    assert [row.id for row in manifest.rows] == ["cat", "dog"]


def test_relative_local_manifest_path_gives_absolute_images(
    tmp_path: Path, put_manifest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_manifest(str(tmp_path / "sub" / "m.csv"), ROWS)
    monkeypatch.chdir(tmp_path)

    manifest = read_manifest(os.path.join("sub", "m.csv"))

    assert manifest.base_url == str(tmp_path / "sub")
    assert manifest.rows[0].image == str(tmp_path / "sub" / "imgs" / "cat.png")


def test_file_url_manifest_keeps_the_protocol(tmp_path: Path, put_manifest: Any) -> None:
    put_manifest(str(tmp_path / "m.csv"), ROWS)

    manifest = read_manifest(f"file://{tmp_path}/m.csv")

    assert manifest.rows[0].image == f"file://{tmp_path}/imgs/cat.png"


def test_absolute_paths_and_urls_are_kept(memory_root: str, put_manifest: Any) -> None:
    rows = [
        {"id": "a", "image": "/data/frames/a.png", "prompt": "p"},
        {"id": "b", "image": "s3://other-bucket/b.png", "prompt": "p"},
        {"id": "c", "image": "gcs://bucket/c.png", "prompt": "p"},
        {"id": "d", "image": "HTTP://Example.com/d.png?x=1", "prompt": "p"},
        {"id": "e", "image": "imgs/./sub/../e.png", "prompt": "p"},
    ]
    url = put_manifest(f"{memory_root}/m.json", rows)

    manifest = read_manifest(url)

    assert [row.image for row in manifest.rows] == [
        "/data/frames/a.png",
        "s3://other-bucket/b.png",
        "gcs://bucket/c.png",
        "HTTP://Example.com/d.png?x=1",
        f"{memory_root}/imgs/e.png",
    ]


def test_csv_values_are_coerced_and_empty_cells_are_missing(
    tmp_path: Path, put_manifest: Any
) -> None:
    text = (
        "image,prompt,resolution,duration,seed,negative_prompt,note\n"
        "a.png,  waves  ,1080P, 10 ,0042,,\n"
        "b.png,clouds,,,,,hello\n"
    )
    url = put_manifest(str(tmp_path / "m.csv"), text)

    rows = read_manifest(url).rows

    assert (rows[0].prompt, rows[0].resolution, rows[0].duration, rows[0].seed) == (
        "waves",
        "1080p",
        10,
        42,
    )
    assert rows[0].negative_prompt == ""
    assert rows[0].metadata == {"note": None}
    assert (rows[1].resolution, rows[1].duration, rows[1].seed) == ("720p", 5, None)
    assert rows[1].metadata == {"note": "hello"}


def test_defaults_fill_missing_fields_and_row_values_win(tmp_path: Path, put_manifest: Any) -> None:
    rows = [
        {
            "id": "own",
            "image": "a.png",
            "prompt": "own prompt",
            "negative_prompt": "own neg",
            "resolution": "720p",
            "duration": 5,
            "seed": 1,
        },
        {
            "id": "dflt",
            "image": "b.png",
            "prompt": None,
            "negative_prompt": None,
            "resolution": None,
            "duration": None,
            "seed": None,
        },
    ]
    url = put_manifest(str(tmp_path / "m.jsonl"), rows)
    defaults = RowDefaults(
        prompt="default prompt",
        prompt_suffix="cinematic",
        negative_prompt="default neg",
        resolution="1080p",
        duration=10,
        seed=7,
    )

    own, dflt = read_manifest(url, defaults=defaults).rows

    assert (own.prompt, own.negative_prompt, own.resolution, own.duration, own.seed) == (
        "own prompt, cinematic",
        "own neg",
        "720p",
        5,
        1,
    )
    assert (dflt.prompt, dflt.negative_prompt, dflt.resolution, dflt.duration, dflt.seed) == (
        "default prompt, cinematic",
        "default neg",
        "1080p",
        10,
        7,
    )


@pytest.mark.parametrize(
    ("prompt", "suffix", "expected"),
    [
        ("waves", "", "waves"),
        ("waves", "  slow  ", "waves, slow"),
        ("waves,", "slow", "waves, slow"),
        ("waves", ", slow", "waves, slow"),
        ("waves", ". Shot on film.", "waves. Shot on film."),
    ],
)
def test_prompt_suffix_joining(
    tmp_path: Path, put_manifest: Any, prompt: str, suffix: str, expected: str
) -> None:
    url = put_manifest(str(tmp_path / "m.json"), [{"image": "a.png", "prompt": prompt}])

    manifest = read_manifest(url, defaults=RowDefaults(prompt_suffix=suffix))

    assert manifest.rows[0].prompt == expected


def test_csv_row_numbers_count_lines_and_skip_blank_lines(
    tmp_path: Path, put_manifest: Any
) -> None:
    text = (
        "\ufeffid,image,prompt,resolution\r\n"
        "a,a.png,first,\r\n"
        "\r\n"
        'b,b.png,"two\nlines",\r\n'
        "c,c.png,third,4k\r\n"
    )
    url = put_manifest(str(tmp_path / "m.csv"), text)

    manifest = read_manifest(url)

    assert [(row.row_number, row.id) for row in manifest.rows] == [(1, "a"), (3, "b")]
    assert manifest.rows[1].prompt == "two\nlines"
    assert [(error.row_number, error.id) for error in manifest.errors] == [(5, "c")]


def test_jsonl_row_numbers_are_line_numbers(tmp_path: Path, put_manifest: Any) -> None:
    text = (
        '{"image": "a.png", "prompt": "p", "id": "a"}\n'
        "\n"
        '{"image": "b.png", "prompt": "p", "id": "b"}\n'
    )
    url = put_manifest(str(tmp_path / "m.jsonl"), text)

    assert [row.row_number for row in read_manifest(url).rows] == [1, 3]


def test_parquet_types_become_json_safe_metadata(tmp_path: Path, put_manifest: Any) -> None:
    rows = [
        {
            "id": 17,
            "image": "a.png",
            "prompt": "p",
            "duration": 10,
            "seed": 3,
            "taken": dt.datetime(2024, 5, 1, 12, 30),
            "score": float("nan"),
            "tags": ["x", "y"],
            "raw": b"\xff\x00",
        },
        {
            "id": 18,
            "image": "b.png",
            "prompt": "p",
            "duration": None,
            "seed": None,
            "taken": None,
            "score": 0.5,
            "tags": [],
            "raw": b"ok",
        },
    ]
    url = put_manifest(str(tmp_path / "m.parquet"), rows)

    manifest = read_manifest(url)

    first, second = manifest.rows
    assert (first.id, first.duration, first.seed) == ("17", 10, 3)
    assert first.metadata == {
        "taken": "2024-05-01T12:30:00",
        "score": None,
        "tags": ["x", "y"],
        "raw": "/wA=",
    }
    assert (second.duration, second.seed, second.metadata["raw"]) == (5, None, "ok")
    json.loads(manifest.model_dump_json())


def test_rows_are_json_serialisable_and_round_trip(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), ROWS)
    manifest = read_manifest(url)

    again = Manifest.model_validate_json(manifest.model_dump_json())

    assert again == manifest
    assert ManifestRow.model_validate(manifest.rows[0].model_dump(mode="json")) == manifest.rows[0]


def test_to_input_builds_the_api_request(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), ROWS)
    row = read_manifest(url).rows[0]

    request = row.to_input("https://cdn.example/cat.png")

    assert request == ImageToVideoInput(
        image_url="https://cdn.example/cat.png",
        prompt="the cat yawns",
        negative_prompt="blur",
        resolution="1080p",
        duration=10,
        seed=42,
    )


def test_manifest_row_refuses_an_unsafe_id_when_built_directly() -> None:
    with pytest.raises(ValueError, match="contains '/'"):
        ManifestRow(row_number=1, id="../x", image="/a.png", prompt="p")


def test_row_defaults_are_validated() -> None:
    with pytest.raises(ValueError, match="resolution"):
        RowDefaults(resolution="4k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        RowDefaults(seed=-1)


def test_header_only_csv_has_no_rows(tmp_path: Path, put_manifest: Any) -> None:
    url = put_manifest(str(tmp_path / "m.csv"), "image,prompt\n")

    manifest = read_manifest(url)

    assert (manifest.rows, manifest.errors, manifest.ok) == ([], [], True)


def test_unnamed_header_cells_keep_only_non_empty_values(tmp_path: Path, put_manifest: Any) -> None:
    text = "image,prompt,\na.png,p,\nb.png,p,stray\n"
    url = put_manifest(str(tmp_path / "m.csv"), text)

    rows = read_manifest(url).rows

    assert [row.metadata for row in rows] == [{}, {"column_3": "stray"}]


def test_chained_manifest_url_resolves_images_in_the_outer_store(
    memory_root: str, put_manifest: Any
) -> None:
    put_manifest(f"{memory_root}/in/m.csv", ROWS)

    manifest = read_manifest(f"simplecache::{memory_root}/in/m.csv")

    assert manifest.base_url == f"{memory_root}/in"
    assert manifest.rows[0].image == f"{memory_root}/in/imgs/cat.png"
