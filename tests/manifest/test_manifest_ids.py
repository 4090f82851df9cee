"""Row ids: accepted ids never escape the output folder; automatic ids are stable."""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pika_tasks.manifest import (
    MAX_ID_LENGTH,
    RowDefaults,
    auto_id,
    check_id,
    is_safe_id,
    read_manifest,
)

OUT = "/srv/out"

ROW = {"image": "a.png", "prompt": "p"}

# Windows' device names, as Microsoft lists them (an independent copy for the tests).
DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"{p}{n}" for p in ("COM", "LPT") for n in range(10))}

# Text biased towards the characters that make paths dangerous.
TRICKY = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("./\\:~-_aZ09 \x00\n\t%?#@")),
        st.characters(),
    ),
    max_size=140,
)


def _usable_on_windows(row_id: str) -> bool:
    """``{id}.mp4`` names a file on Windows: no device name, no trailing dot or space."""
    return row_id.split(".")[0].upper() not in DEVICES and not row_id.endswith((".", " "))


def _stays_inside(out: str, row_id: str) -> bool:
    """``{out}/{id}.mp4`` is a file directly in ``out``, with POSIX and Windows path rules."""
    for paths in (os.path, posixpath, ntpath):
        folder = paths.normpath(out)
        target = paths.normpath(paths.join(folder, row_id + ".mp4"))
        if paths.dirname(target) != folder or paths.basename(target) != row_id + ".mp4":
            return False
    return True


@given(TRICKY)
@settings(max_examples=400)
def test_an_accepted_id_never_escapes_the_output_folder(row_id: str) -> None:
    if not is_safe_id(row_id):
        with pytest.raises(ValueError):
            check_id(row_id)
        return
    assert check_id(row_id) == row_id
    assert _stays_inside(OUT, row_id)
    assert not any(sep in row_id for sep in ("/", "\\", ":", "\x00"))
    assert not row_id.startswith(".")
    assert 1 <= len(row_id) <= MAX_ID_LENGTH
    assert row_id.isascii() and row_id.isprintable()
    assert _usable_on_windows(row_id)


@given(st.lists(TRICKY, min_size=1, max_size=8))
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_ids_read_from_a_manifest_never_escape(ids: list[str]) -> None:
    url = f"memory://ids-{uuid.uuid4().hex[:8]}/m.jsonl"
    rows = [{"id": row_id, "image": "a.png", "prompt": "p"} for row_id in ids]
    with fsspec.open(url, "w") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in rows))

    manifest = read_manifest(url)

    assert len(manifest.rows) + len(manifest.errors) == len(ids)
    seen: set[str] = set()
    for row in manifest.rows:
        assert _stays_inside(OUT, row.id) and _usable_on_windows(row.id)
        assert row.id.casefold() not in seen
        seen.add(row.id.casefold())
    fsspec.filesystem("memory").rm(url)


# Image names whose stem is a device name or ends with a dot or a space.
DEVICE_IMAGES = st.sampled_from(
    ["CON", "con.png", "imgs/NUL.jpg", "a/Com1.png", "LPT9", "aux.tar.gz", "prn.", "x/clip..png"]
)


@given(
    image=st.one_of(TRICKY, DEVICE_IMAGES),
    prompt=st.text(max_size=50),
    seed=st.none() | st.integers(0, 2**32 - 1),
)
def test_automatic_ids_are_always_safe(image: str, prompt: str, seed: int | None) -> None:
    row_id = auto_id(image, prompt, "", "720p", 5, seed)

    assert is_safe_id(row_id)
    assert _usable_on_windows(row_id)
    assert row_id == auto_id(image, prompt, "", "720p", 5, seed)


@pytest.mark.parametrize("image", ["CON.png", "imgs/nul.jpg", "LPT1", "aux."])
def test_automatic_ids_of_device_named_images_keep_the_name_safely(image: str) -> None:
    row_id = auto_id(image, "p", "", "720p", 5, None)

    stem = image.rsplit("/", 1)[-1].split(".")[0]
    assert row_id.startswith(f"{stem}-") and is_safe_id(row_id)


@pytest.mark.parametrize(
    "row_id",
    [
        "a",
        "clip-001",
        "Clip_1.v2",
        "a..b",
        "-dash",
        "x" * MAX_ID_LENGTH,
        "0",
        # Near device names, but not one.
        "CONSOLE",
        "con-1",
        "aux_2",
        "COM10",
        "LPT",
        "nul-video.mp4",
        "clip.con",
    ],
)
def test_accepted_ids(row_id: str) -> None:
    assert check_id(row_id) == row_id


@pytest.mark.parametrize(
    "row_id",
    [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "a\\b",
        "/abs",
        "C:x",
        "s3://b/k",
        "a\x00",
        "a\x7f",
        "é",
        "x" * 129,
        "clip.",
        "clip..",
        "clip ",
        "CON",
        "nul.mp4",
    ],
)
def test_refused_ids(row_id: str) -> None:
    assert not is_safe_id(row_id)
    with pytest.raises(ValueError, match=r"^id "):
        check_id(row_id)


@pytest.mark.parametrize(
    "row_id",
    [
        *sorted(DEVICES),
        *(name.lower() for name in sorted(DEVICES)),
        "Con",
        "nUl",
        "CON.mp4",
        "nul.json",
        "Aux.final.v2",
        "lpt9.x",
    ],
)
def test_windows_device_names_are_refused_in_any_case_with_any_extension(row_id: str) -> None:
    with pytest.raises(ValueError, match="a device name Windows reserves"):
        check_id(row_id)


@pytest.mark.parametrize("row_id", ["clip.", "a.b.", "x" * 127 + "."])
def test_ids_ending_with_a_dot_are_refused(row_id: str) -> None:
    with pytest.raises(ValueError, match=r"ends with '\.'; ids may not end with a dot or a space"):
        check_id(row_id)


def test_an_id_ending_with_a_space_is_refused_but_a_manifest_cell_is_trimmed(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="ends with a space"):
        check_id("clip ")

    manifest = read_manifest(_write(tmp_path / "m.jsonl", [{"id": "clip ", **ROW}]))

    assert [row.id for row in manifest.rows] == ["clip"]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_unsafe_windows_names_fail_their_row_naming_the_field_id(
    tmp_path: Path, suffix: str
) -> None:
    ids = ["good-1", "CON", "nul.mp4", "Com1", "lpt9.final", "clip.", "good-2", "aux"]
    path = tmp_path / f"m.{suffix}"
    if suffix == "csv":
        path.write_text("id,image,prompt\n" + "".join(f"{i},a.png,p\n" for i in ids))
    else:
        _write(path, [{"id": row_id, **ROW} for row_id in ids])

    manifest = read_manifest(str(path))

    assert [row.id for row in manifest.rows] == ["good-1", "good-2"]
    refused = {error.row_number: error for error in manifest.errors}
    assert sorted(refused) == [2, 3, 4, 5, 6, 8]
    for number, error in refused.items():
        assert error.field == "id"
        assert str(error).startswith(f"row {number}, field 'id': {ids[number - 1]!r} ")
    assert "ends with '.'" in refused[6].reason
    assert "device name Windows reserves" in refused[3].reason


def _write(path: Path, rows: list[dict[str, Any]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_automatic_ids_are_stable_across_reads_and_folders(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"image": "imgs/Beach Sunset.png", "prompt": "waves"},
        {"image": "imgs/beach.png", "prompt": "waves", "seed": 3},
    ]
    first = read_manifest(_write(tmp_path / "a" / "m.jsonl", rows))
    again = read_manifest(_write(tmp_path / "a" / "m.jsonl", rows))
    moved = read_manifest(_write(tmp_path / "b" / "m.jsonl", rows))

    ids = [row.id for row in first.rows]
    assert ids == [row.id for row in again.rows] == [row.id for row in moved.rows]
    assert ids[0].startswith("Beach-Sunset-")
    assert ids[1].startswith("beach-")
    assert len(set(ids)) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "waves crash"},
        {"negative_prompt": "blur"},
        {"resolution": "1080p"},
        {"duration": 10},
        {"seed": 1},
        {"image": "imgs/other/a.png"},
    ],
)
def test_automatic_id_changes_with_the_video_asked_for(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    base = {"image": "imgs/a.png", "prompt": "waves"}
    before = read_manifest(_write(tmp_path / "1.jsonl", [base])).rows[0].id
    after = read_manifest(_write(tmp_path / "2.jsonl", [{**base, **change}])).rows[0].id

    assert before != after
    assert before.split("-")[0] == "a"


def test_automatic_id_follows_the_defaults(tmp_path: Path) -> None:
    url = _write(tmp_path / "m.jsonl", [{"image": "a.png"}])

    one = read_manifest(url, defaults=RowDefaults(prompt="waves")).rows[0].id
    two = read_manifest(url, defaults=RowDefaults(prompt="waves", prompt_suffix="slow")).rows[0].id

    assert one != two


def test_image_names_without_usable_characters_get_a_row_slug() -> None:
    assert auto_id("imgs/日本.png", "p", "", "720p", 5, None).startswith("row-")
    assert auto_id("https://x.test/a.png?sig=1", "p", "", "720p", 5, None).startswith("a-")
