"""A manifest from someone else, with local images confined to one folder (``image_root``).

The manifest lives in ``inbox/`` and its rows point at images inside it and, every
way a path can be written, at real PNGs outside it: a relative ``..``, an absolute
path, a symbolic link inside the folder, ``file://`` URLs, chained URLs (a cache, a
zip archive), a sibling folder sharing the folder's name as a prefix, a system file.
Without the option every one of them but the system file is a good image (the
control); with it, through the batch flow, ``estimate`` and both commands, each
fails alone naming its row and field, nothing is read from outside, and the good
rows are generated and paid for once each.
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from reliability_support import snapshot
from support import explain, pika, png_bytes, point_at, process_env, report_lines, run_batch

from pika_tasks.estimate import estimate_batch

pytestmark = pytest.mark.timeout(120)

CONFINED = "the folder local images are confined to (after resolving '..' and symbolic links)"


@dataclass
class Inbox:
    """The folders, the manifest, and the rows that must fail (row number -> image)."""

    base: Path
    root: Path
    manifest: Path
    good: dict[str, int]  # id -> row number
    outside: dict[int, str]  # row number -> image as the run resolves it


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    base = tmp_path
    root = base / "inbox"
    (root / "images").mkdir(parents=True)
    (base / "outside").mkdir()
    (base / "inbox-2").mkdir()
    (root / "images" / "good0.png").write_bytes(png_bytes(color=(10, 120, 200)))
    (root / "images" / "good1.png").write_bytes(png_bytes(color=(200, 120, 10)))
    secret = png_bytes(color=(250, 0, 0))
    (base / "outside" / "secret.png").write_bytes(secret)
    (base / "inbox-2" / "a.png").write_bytes(secret)
    with zipfile.ZipFile(base / "outside" / "images.zip", "w") as archive:
        archive.writestr("secret.png", secret)
    (root / "images" / "leak.png").symlink_to(base / "outside" / "secret.png")
    rows = [
        ("good-0", "images/good0.png"),
        ("dotdot", "../outside/secret.png"),
        ("absolute", f"{base}/outside/secret.png"),
        ("link", "images/leak.png"),
        ("good-1", f"file://{root}/images/good1.png"),
        ("file-url", f"file://{base}/outside/secret.png"),
        ("cached", f"simplecache::file://{base}/outside/secret.png"),
        ("zipped", f"zip://secret.png::{base}/outside/images.zip"),
        ("sibling", f"{base}/inbox-2/a.png"),
        ("system", "/etc/passwd"),
    ]
    manifest = root / "manifest.csv"
    lines = ["id,image,prompt"] + [f"{row_id},{image},slow zoom in" for row_id, image in rows]
    manifest.write_text("\n".join(lines) + "\n")
    resolved = {
        "dotdot": f"{base}/outside/secret.png",
        "link": f"{root}/images/leak.png",
    }
    return Inbox(
        base,
        root,
        manifest,
        good={row_id: n for n, (row_id, _) in enumerate(rows, 1) if row_id.startswith("good")},
        outside={
            n: resolved.get(row_id, image)
            for n, (row_id, image) in enumerate(rows, 1)
            if not row_id.startswith("good")
        },
    )


def _expected_error(inbox: Inbox, number: int) -> str:
    return (
        f"row {number}, field 'image': {inbox.outside[number]}: is outside {inbox.root}, {CONFINED}"
    )


async def test_without_the_option_every_image_but_the_system_file_is_good(inbox: Inbox) -> None:
    """The control: the rows refused below are refused for where their images are."""
    estimate = await estimate_batch(str(inbox.manifest))

    assert [(row.row_number, row.id) for row in estimate.invalid] == [(10, "system")]
    assert "is not an image" in estimate.invalid[0].error


async def test_estimate_refuses_every_image_outside_the_folder(inbox: Inbox) -> None:
    estimate = await estimate_batch(str(inbox.manifest), image_root=str(inbox.root))

    assert {row.row_number: row.error for row in estimate.invalid} == {
        number: _expected_error(inbox, number) for number in inbox.outside
    }
    assert sum(line.to_submit for line in estimate.lines) == len(inbox.good)


def test_each_row_outside_the_folder_fails_alone_through_the_batch_flow(
    inbox: Inbox,
    make_emulator: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    prefect_harness: None,
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.05, fps=4, fast=True)
    point_at(emu, monkeypatch)
    out = inbox.base / "out"
    before = snapshot(inbox.base, skip=out)

    _, result = asyncio.run(
        run_batch(str(inbox.manifest), str(out), fail_on_partial=False, image_root=str(inbox.root))
    )

    lines = {line["row_number"]: line for line in report_lines(result.report_url)}
    assert (result.succeeded, result.failed) == (len(inbox.good), len(inbox.outside))
    for row_id, number in inbox.good.items():
        assert (lines[number]["id"], lines[number]["status"]) == (row_id, "succeeded")
    for number in inbox.outside:
        assert lines[number]["status"] == "failed"
        assert lines[number]["error"] == _expected_error(inbox, number)
        assert lines[number]["cost_usd"] == 0
    assert emu.stats()["submissions"] == len(inbox.good)
    expected = {f"{row_id}.{ext}" for row_id in inbox.good for ext in ("mp4", "json")}
    # Besides the run's own folders (_runs, _claims...), only the good rows' files.
    assert {path.name for path in out.iterdir() if path.name[0] != "_"} == expected
    assert snapshot(inbox.base, skip=out) == before


def test_estimate_command_takes_image_root(inbox: Inbox) -> None:
    done = pika(
        "estimate",
        str(inbox.manifest),
        "--image-root",
        str(inbox.root),
        "--json",
        env=process_env(),
        timeout=60,
        cwd=inbox.base,
    )

    assert done.returncode == 1, explain(done)
    estimate = json.loads(done.stdout)
    assert {row["row_number"]: row["error"] for row in estimate["invalid"]} == {
        number: _expected_error(inbox, number) for number in inbox.outside
    }


def test_run_command_takes_image_root(inbox: Inbox, prefect_harness: None) -> None:
    out = inbox.base / "out"
    done = pika(
        "run",
        str(inbox.manifest),
        "--out",
        str(out),
        "--local",
        "--job-seconds",
        "0.05",
        "--image-root",
        str(inbox.root),
        env=process_env(),
        timeout=90,
        cwd=inbox.base,
    )

    assert done.returncode == 1, explain(done)
    lines = {line["row_number"]: line for line in report_lines(out)}
    assert {n for n, line in lines.items() if line["status"] == "succeeded"} == set(
        inbox.good.values()
    )
    assert {n: line["error"] for n, line in lines.items() if line["status"] == "failed"} == {
        number: _expected_error(inbox, number) for number in inbox.outside
    }
