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

# Text biased towards the characters that make paths dangerous.
TRICKY = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("./\\:~-_aZ09 \x00\n\t%?#@")),
        st.characters(),
    ),
    max_size=140,
)


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
        assert _stays_inside(OUT, row.id)
        assert row.id.casefold() not in seen
        seen.add(row.id.casefold())
    fsspec.filesystem("memory").rm(url)


@given(image=TRICKY, prompt=st.text(max_size=50), seed=st.none() | st.integers(0, 2**32 - 1))
def test_automatic_ids_are_always_safe(image: str, prompt: str, seed: int | None) -> None:
    row_id = auto_id(image, prompt, "", "720p", 5, seed)

    assert is_safe_id(row_id)
    assert row_id == auto_id(image, prompt, "", "720p", 5, seed)


@pytest.mark.parametrize(
    "row_id", ["a", "clip-001", "Clip_1.v2", "a..b", "-dash", "x" * MAX_ID_LENGTH, "0"]
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
    ],
)
def test_refused_ids(row_id: str) -> None:
    assert not is_safe_id(row_id)
    with pytest.raises(ValueError, match=r"^id "):
        check_id(row_id)


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
