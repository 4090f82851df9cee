"""Hostile manifests: every bad row gets one clear error naming its row and field, good
rows are kept, and no id can point outside the output location.

Two levels:

* the manifest reader alone, on many generated CSV, JSON Lines and JSON manifests
  (pure and fast: hundreds of examples);
* the batch flow, on a few generated manifests whose rows also point at images that
  are missing, not images, huge, or on private addresses over http, ftp, webhdfs,
  sftp or smb: the output folder ends up holding exactly the good rows' files,
  nothing else on disk changes, and no private address is ever contacted.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import math
import os
import posixpath
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pytest
from hostile_rows import EXTRA_NAMES, HOSTILE_IDS, Row, render, rows, windows_safe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import (
    png_header_only,
    snapshot,
    solid_png,
    sparse_file,
)
from support import ftp_banner, png_bytes, queue_env, report_lines, run_batch

from pika_tasks.emulator import EmulatorServer
from pika_tasks.images import ImageError, inspect_image
from pika_tasks.manifest import ManifestError, ManifestRow, RowError, is_safe_id, read_manifest
from pika_tasks.storage import TEMP_MARKER

# Hypothesis warns when the global random state moves during a draw.  These
# strategies never touch it, but Prefect's and the emulator's background threads
# (left running by earlier tests of the same run) do, at any moment.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

OUT = "/srv/out"


def _stays_inside(row_id: str) -> bool:
    """``{OUT}/{id}.mp4`` is a file directly inside ``OUT``."""
    target = posixpath.normpath(posixpath.join(OUT, f"{row_id}.mp4"))
    return posixpath.dirname(target) == OUT and posixpath.basename(target) == f"{row_id}.mp4"


def _no_image_anywhere(generated: list[Row], fmt: str, columns: list[str]) -> bool:
    """The manifest has no ``image`` column (CSV) or no row with one (JSON)."""
    if fmt == "csv":
        return "image" not in columns
    objects = [row for row in generated if row.raw is None]
    return bool(objects) and not any("image" in row.cells for row in objects)


# --------------------------------------------------------------------------- the reader


@dataclass
class _Expected:
    """What the reader must do with one row."""

    number: int
    fields: set[str] | None  # None: accepted (or, for an automatic id, a duplicate)
    row: Row
    duplicate: bool = False


def _expectations(generated: list[Row], numbers: list[int | None]) -> list[_Expected]:
    """What must happen to each row that is read (blank rows are skipped)."""
    claimed: set[str] = set()
    expected: list[_Expected] = []
    for row, number in zip(generated, numbers, strict=True):
        if number is None:
            continue
        if row.row_level:
            expected.append(_Expected(number, {"row"}, row))
            continue
        if row.utf8 is not None:
            expected.append(_Expected(number, {row.utf8}, row))
            continue
        key = row.explicit_id.casefold() if row.explicit_id else None
        if row.bad:
            expected.append(_Expected(number, set(row.bad), row))
        elif key is not None and key in claimed:
            expected.append(_Expected(number, {"id"}, row, duplicate=True))
        else:
            expected.append(_Expected(number, None, row))
        # An id is taken by the first row naming it, even a row refused for another field.
        if key is not None:
            claimed.add(key)
    return expected


def _whole(value: Any) -> int | None:
    """The whole number an accepted ``duration`` or ``seed`` cell stands for (None: missing)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = float(value)
    return None if math.isnan(number) else int(number)


def _check_accepted(parsed: ManifestRow, row: Row, csv_columns: list[str] | None) -> None:
    """An accepted row holds the row's values, normalised, and a safe id."""
    cells = row.cells
    if row.explicit_id is not None:
        assert parsed.id == row.explicit_id
    assert is_safe_id(parsed.id) and _stays_inside(parsed.id) and windows_safe(parsed.id)
    assert parsed.prompt == cells["prompt"].strip()
    negative = cells.get("negative_prompt")
    assert parsed.negative_prompt == (negative.strip() if isinstance(negative, str) else "")
    resolution = cells.get("resolution")
    if isinstance(resolution, str) and resolution.strip():
        assert parsed.resolution == resolution.strip().lower()
    else:
        assert parsed.resolution == "720p"
    assert parsed.duration == (_whole(cells.get("duration")) or 5)
    assert parsed.seed == _whole(cells.get("seed"))
    # A CSV row has every column of the header; a JSON row only its own keys.
    extras = {name for name in (csv_columns or cells) if name in EXTRA_NAMES}
    assert set(parsed.metadata) == extras
    json.dumps(parsed.metadata, allow_nan=False)  # metadata is plain JSON


def _check_refused(error: RowError, expected: _Expected) -> None:
    """A refused row's one error names its row and one of its wrong fields."""
    assert expected.fields is not None
    assert error.field in expected.fields, (error, expected.fields)
    assert str(error).startswith(f"row {expected.number}, field {error.field!r}: ")
    assert error.reason.strip()
    if expected.duplicate:
        assert "duplicate id" in error.reason


@given(
    data=st.data(),
    fmt=st.sampled_from(["csv", "jsonl", "json"]),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_hostile_row_gets_one_error_naming_its_row_and_field(
    data: st.DataObject, fmt: str
) -> None:
    """Each generated row is accepted or refused exactly as its construction says."""
    generated = data.draw(st.lists(rows(fmt), min_size=2, max_size=8), label="rows")
    rendered = render(generated, fmt)
    url = f"memory://hostile-{uuid.uuid4().hex[:10]}/manifest.{fmt}"
    fs = fsspec.filesystem("memory")
    fs.pipe(url, rendered.data)
    try:
        if _no_image_anywhere(generated, fmt, rendered.columns):
            with pytest.raises(ManifestError, match="'image'"):
                read_manifest(url)
            return
        manifest = read_manifest(url)
    finally:
        fs.rm(url)

    expected = _expectations(generated, rendered.numbers)
    by_number = {item.number: item for item in expected}
    seen = [row.row_number for row in manifest.rows] + [e.row_number for e in manifest.errors]
    assert sorted(seen) == sorted(by_number), "each row read once: accepted or refused"
    ids: set[str] = set()
    for parsed in manifest.rows:
        item = by_number[parsed.row_number]
        assert item.fields is None, f"row {item.number} should be refused for {item.fields}"
        _check_accepted(parsed, item.row, rendered.columns if fmt == "csv" else None)
        assert parsed.id.casefold() not in ids
        ids.add(parsed.id.casefold())
    for error in manifest.errors:
        item = by_number[error.row_number]
        if item.fields is None:
            # Only a row without an id of its own can collide with another (same video).
            assert item.row.explicit_id is None and error.field == "id", error
            assert "duplicate id" in error.reason and "same video" in error.reason
            continue
        _check_refused(error, item)


@given(ids=st.lists(st.sampled_from(HOSTILE_IDS), min_size=1, max_size=6))
@settings(max_examples=60, deadline=None)
def test_escaping_and_reserved_ids_are_refused_in_every_format(ids: list[str]) -> None:
    """Ids aiming outside the output, or at a Windows device, are refused in CSV and JSON Lines."""
    for fmt in ("csv", "jsonl"):
        generated = [
            Row(cells={"id": row_id, "image": "a.png", "prompt": "p"}, bad={"id"}) for row_id in ids
        ]
        rendered = render(generated, fmt)
        url = f"memory://escape-{uuid.uuid4().hex[:10]}/m.{fmt}"
        fsspec.filesystem("memory").pipe(url, rendered.data)
        manifest = read_manifest(url)
        fsspec.filesystem("memory").rm(url)
        assert manifest.rows == []
        assert [error.field for error in manifest.errors] == ["id"] * len(ids)
        for number, error in zip(rendered.numbers, manifest.errors, strict=True):
            assert str(error).startswith(f"row {number}, field 'id': ")


@pytest.mark.parametrize("size", [131_073, 5_000_000])
def test_a_huge_csv_cell_fails_only_its_row(size: int) -> None:
    """A cell longer than the csv module's field limit fails its row, not the file."""
    url = f"memory://huge-cell-{size}/manifest.csv"
    text = f"id,image,prompt\ngood,a.png,zoom in\nhuge,a.png,{'z' * size}\nalso-good,b.png,pan\n"
    fsspec.filesystem("memory").pipe(url, text.encode())
    try:
        manifest = read_manifest(url)
    finally:
        fsspec.filesystem("memory").rm(url)
    assert [row.id for row in manifest.rows] == ["good", "also-good"]
    assert [str(error) for error in manifest.errors] == [
        f"row 2, field 'prompt': is {size} characters long; the limit is 2000"
    ]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [900, 100_000], ids=["parses-then-recurses", "cannot-parse"])
def test_a_deeply_nested_jsonl_row_fails_only_its_row(depth: int) -> None:
    """A JSON Lines row nested thousands deep is refused alone; the good rows are kept."""
    url = f"memory://deep-{depth}/manifest.jsonl"
    lines = [
        '{"id": "good", "image": "a.png", "prompt": "zoom in"}',
        '{"id": "deep", "image": "a.png", "prompt": "p", "note": ' + _nested(depth) + "}",
        '{"id": "also-good", "image": "b.png", "prompt": "pan"}',
    ]
    fsspec.filesystem("memory").pipe(url, ("\n".join(lines) + "\n").encode())
    try:
        manifest = read_manifest(url)
    finally:
        fsspec.filesystem("memory").rm(url)
    assert [row.id for row in manifest.rows] == ["good", "also-good"]
    assert [error.row_number for error in manifest.errors] == [2]
    assert str(manifest.errors[0]).startswith("row 2, field ")


def test_a_deeply_nested_json_array_is_a_manifest_error() -> None:
    """A JSON array that cannot be parsed for its depth is refused with a ManifestError."""
    url = "memory://deep-array/manifest.json"
    body = '[{"image": "a.png", "prompt": "p", "note": ' + _nested(100_000) + "}]"
    fsspec.filesystem("memory").pipe(url, body.encode())
    try:
        with pytest.raises(ManifestError):
            read_manifest(url)
    finally:
        fsspec.filesystem("memory").rm(url)


# --------------------------------------------------------------------------- the batch flow


class _ImageHost:
    """A loopback http server with one valid image: any connection to it is a failure here.

    ``hits`` records every connection (whatever protocol the client meant to
    speak: an FTP or SFTP client connects, then waits for a greeting) and
    every GET.
    """

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits
        body = png_bytes()

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                hits.append(f"connection from {client_address[0]}")
                return True

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def image_host() -> Iterator[_ImageHost]:
    """A loopback image server (which the flow must never reach: it is a private address)."""
    host = _ImageHost()
    yield host
    host.close()


@pytest.fixture(scope="module")
def fast_queue(prefect_harness: None) -> Iterator[EmulatorServer]:
    """A fast emulator for the whole module, with the flow's environment pointed at it.

    Module-scoped because hypothesis runs many examples in one test function.
    """
    with (
        EmulatorServer(runners=4, job_seconds=0.05, fps=4, fast=True) as emu,
        pytest.MonkeyPatch.context() as patch,
    ):
        for name, value in queue_env(emu).items():
            patch.setenv(name, value)
        yield emu


GOOD_IMAGES = ("good0.png", "good1.png")


def _fill_images(folder: Path) -> None:
    """The images the hostile rows point at: good ones and every kind of bad one."""
    images = folder / "images"
    images.mkdir(parents=True)
    for n, name in enumerate(GOOD_IMAGES):
        (images / name).write_bytes(png_bytes(color=(40 * n, 120, 200)))
    (images / "notes.png").write_text("these are notes, not an image\n")
    (images / "empty.png").write_bytes(b"")
    sparse_file(images / "huge.png", 30 * 1024 * 1024)  # over the 25 MiB limit
    (images / "wide.png").write_bytes(solid_png(9000, 64))  # a side over 8192 px
    (images / "bomb.png").write_bytes(png_header_only(30_000, 30_000))
    (images / "folder.png").mkdir()


def _hostile_rows(port: int) -> dict[str, tuple[dict[str, Any], str]]:
    """Row templates that must fail, each with the field its error must name."""
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    image = "images/good0.png"
    return {
        "escape-id-dotdot": ({"id": "../outside", "image": image, "prompt": "p"}, "id"),
        "escape-id-abs": ({"id": "/tmp/pika-owned", "image": image, "prompt": "p"}, "id"),
        "escape-id-win": ({"id": "..\\..\\x", "image": image, "prompt": "p"}, "id"),
        "escape-id-url": ({"id": "file:///etc/x", "image": image, "prompt": "p"}, "id"),
        "hidden-id": ({"id": ".bashrc", "image": image, "prompt": "p"}, "id"),
        "device-id": ({"id": "NUL", "image": image, "prompt": "p"}, "id"),
        "device-id-ext": ({"id": "com1.final", "image": image, "prompt": "p"}, "id"),
        "trailing-dot-id": ({"id": "clip.", "image": image, "prompt": "p"}, "id"),
        "missing-image-cell": ({"image": "", "prompt": "p"}, "image"),
        "image-not-found": ({"image": "images/nowhere.png", "prompt": "p"}, "image"),
        "image-not-an-image": ({"image": "images/notes.png", "prompt": "p"}, "image"),
        "image-empty": ({"image": "images/empty.png", "prompt": "p"}, "image"),
        "image-huge-file": ({"image": "images/huge.png", "prompt": "p"}, "image"),
        "image-too-wide": ({"image": "images/wide.png", "prompt": "p"}, "image"),
        "image-pixel-bomb": ({"image": "images/bomb.png", "prompt": "p"}, "image"),
        "image-is-folder": ({"image": "images/folder.png", "prompt": "p"}, "image"),
        "image-system-file": ({"image": "../../../../../etc/hostname", "prompt": "p"}, "image"),
        "image-data-uri": ({"image": data_uri, "prompt": "p"}, "image"),
        "http-loopback": ({"image": f"http://127.0.0.1:{port}/a.png", "prompt": "p"}, "image"),
        "http-localhost": ({"image": f"http://localhost:{port}/a.png", "prompt": "p"}, "image"),
        "http-ipv6-loopback": ({"image": f"http://[::1]:{port}/a.png", "prompt": "p"}, "image"),
        "http-private": ({"image": "http://10.20.30.40/a.png", "prompt": "p"}, "image"),
        "http-metadata": ({"image": "http://169.254.169.254/latest/a.png", "prompt": "p"}, "image"),
        "http-any": ({"image": f"http://0.0.0.0:{port}/a.png", "prompt": "p"}, "image"),
        "http-decimal": ({"image": f"http://2130706433:{port}/a.png", "prompt": "p"}, "image"),
        "http-short": ({"image": f"http://127.1:{port}/a.png", "prompt": "p"}, "image"),
        "http-mapped": ({"image": f"http://[::ffff:127.0.0.1]:{port}/a", "prompt": "p"}, "image"),
        "http-userinfo": (
            {"image": f"http://example.com@127.0.0.1:{port}/a.png", "prompt": "p"},
            "image",
        ),
        "ftp-loopback": ({"image": f"ftp://127.0.0.1:{port}/a.png", "prompt": "p"}, "image"),
        "ftp-cached": (
            {"image": f"simplecache::ftp://user:pw@127.1:{port}/a.png", "prompt": "p"},
            "image",
        ),
        "webhdfs-localhost": (
            {"image": f"webhdfs://localhost:{port}/a.png", "prompt": "p"},
            "image",
        ),
        "sftp-decimal": ({"image": f"sftp://2130706433:{port}/a.png", "prompt": "p"}, "image"),
        "smb-private": ({"image": "smb://10.20.30.40/share/a.png", "prompt": "p"}, "image"),
        "empty-prompt": ({"image": image, "prompt": "   "}, "prompt"),
        "huge-prompt": ({"image": image, "prompt": "z" * 100_000}, "prompt"),
        "bad-resolution": ({"image": image, "prompt": "p", "resolution": "8k"}, "resolution"),
        "bad-duration": ({"image": image, "prompt": "p", "duration": "15"}, "duration"),
        "bad-seed": ({"image": image, "prompt": "p", "seed": "-3"}, "seed"),
        "wrong-type-prompt": ({"image": image, "prompt": 12345}, "prompt"),
        "wrong-type-image": ({"image": ["images/good0.png"], "prompt": "p"}, "image"),
        "non-utf8-prompt": ({"image": image, "prompt": "caf\udce9 au lait"}, "prompt"),
        "non-utf8-extra": ({"image": image, "prompt": "p", "note": "\udcff"}, "note"),
    }


@dataclass
class _Plan:
    """A batch-flow manifest: its format, and each row with the field its error must name.

    A good row names no field (None).
    """

    fmt: str
    rows: list[tuple[dict[str, Any], str | None]]  # (cells, field of the expected error)


@st.composite
def _plans(draw: st.DrawFn, port: int) -> _Plan:
    """One to three hostile rows, one or two good ones, in any order, maybe a duplicate id."""
    fmt = draw(st.sampled_from(["csv", "jsonl"]))
    hostile = _hostile_rows(port)
    names = sorted(
        name
        for name, (cells, _) in hostile.items()
        if fmt == "jsonl" or not any(not isinstance(v, str) for v in cells.values())
    )
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    good_count = draw(st.integers(1, 2))
    planned: list[tuple[dict[str, Any], str | None]] = [
        (dict(hostile[name][0]), hostile[name][1]) for name in chosen
    ]
    for n in range(good_count):
        cells = {
            "id": f"good-{n}",
            "image": f"images/{GOOD_IMAGES[n]}",
            "prompt": "slow zoom in",
            "note": draw(st.sampled_from(["", "x", "ünïcödé", "a,b;c"])),
        }
        planned.append((cells, None))
    order = draw(st.permutations(range(len(planned))))
    ordered = [planned[i] for i in order]
    if draw(st.booleans()):
        # The first good row's id again, case changed: refused, the first row kept.
        ordered.append(({"id": "GOOD-0", "image": "images/good1.png", "prompt": "pan"}, "id"))
    return _Plan(fmt, ordered)


def _write_plan(folder: Path, plan: _Plan) -> Path:
    """Write the plan as ``manifest.csv`` or ``manifest.jsonl`` (undecodable text as raw bytes)."""
    if plan.fmt == "jsonl":
        lines = [json.dumps(cells, ensure_ascii=False) for cells, _ in plan.rows]
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        path = folder / "manifest.jsonl"
    else:
        columns: list[str] = []
        for cells, _ in plan.rows:
            columns.extend(name for name in cells if name not in columns)

        def quote(value: str) -> str:
            return '"' + value.replace('"', '""') + '"'

        lines = [",".join(columns)]
        for cells, _ in plan.rows:
            lines.append(",".join(quote(str(cells.get(name, ""))) for name in columns))
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        path = folder / "manifest.csv"
    path.write_bytes(data)
    return path


def _expected_rows(plan: _Plan) -> dict[int, tuple[str, str]]:
    """Row number -> ``("succeeded", id)``, or ``("failed", "row N, field 'F'")``."""
    return {
        number: ("succeeded", str(cells["id"]))
        if field is None
        else ("failed", f"row {number}, field '{field}'")
        for number, (cells, field) in enumerate(plan.rows, start=1)
    }


def _expected_files(plan: _Plan) -> set[str]:
    """The files the good rows leave in the output: a video and a record each."""
    good = [cells["id"] for cells, field in plan.rows if field is None]
    return {f"{row_id}.{ext}" for row_id in good for ext in ("mp4", "json")}


def _escape_targets(out: Path, plan: _Plan) -> list[Path]:
    """Where each refused id would have put its files had it been joined to ``out``."""
    targets = []
    for cells, field in plan.rows:
        if field == "id" and isinstance(cells.get("id"), str):
            for ext in ("mp4", "json"):
                targets.append(Path(os.path.normpath(os.path.join(out, f"{cells['id']}.{ext}"))))
    return [target for target in targets if out not in target.parents]


@dataclass
class _Seen:
    """What a batch run on a plan did, for the test to compare with what it should have done.

    Attributes:
        rows: row number -> ``(status, id)`` of a succeeded row, ``(status, error head)``
            of a failed one (the error up to its field's name).
        files: the names in the output folder, but ``_claims``.
        reports: the names in ``_runs``.
        left_behind: claims not released and temporaries left in the output.
        written_outside: paths changed or created outside the output (inputs, their
            folder, the working directory, the targets the refused ids aimed at).
        private_hits: requests that reached the private image host.
    """

    rows: dict[int, tuple[str, str]]
    files: set[str]
    reports: list[str]
    left_behind: list[str]
    written_outside: list[str]
    private_hits: list[str]


def _error_head(error: str) -> str:
    """``row N, field 'F'`` of a row error ``row N, field 'F': reason``."""
    return error[: error.index("': ") + 1] if "': " in error else error


def run_plan(plan: _Plan, image_host: _ImageHost) -> _Seen:
    """Run the batch flow on ``plan`` in a fresh folder and a fresh working directory."""
    hits_before = len(image_host.hits)
    with tempfile.TemporaryDirectory(prefix="pika-hostile-") as root:
        base = Path(root)
        work = base / "in"
        cwd = base / "cwd"
        cwd.mkdir()
        _fill_images(work)
        manifest = _write_plan(work, plan)
        out = base / "out"
        before = snapshot(base, skip=out)
        escapes = _escape_targets(out, plan)
        previous_cwd = os.getcwd()
        os.chdir(cwd)
        try:
            _, result = asyncio.run(run_batch(str(manifest), str(out), fail_on_partial=False))
        finally:
            os.chdir(previous_cwd)
        rows = {
            line["row_number"]: (
                (line["status"], line["id"])
                if line["status"] == "succeeded"
                else (line["status"], _error_head(line["error"] or ""))
            )
            for line in report_lines(result.report_url)
        }
        after = snapshot(base, skip=out)
        return _Seen(
            rows=rows,
            files={path.name for path in out.iterdir()} - {"_claims"},
            reports=sorted(path.name for path in (out / "_runs").iterdir()),
            left_behind=sorted(
                [str(path) for path in out.glob("_claims/**/*") if not path.is_dir()]
                + [str(path) for path in out.rglob("*") if TEMP_MARKER in path.name]
            ),
            written_outside=sorted(
                [
                    name
                    for name in before.keys() | after.keys()
                    if before.get(name) != after.get(name)
                ]
                + [str(path) for path in cwd.iterdir()]
                + [str(target) for target in escapes if target.exists()]
            ),
            private_hits=image_host.hits[hits_before:],
        )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_kind_of_hostile_row_fails_alone(
    fmt: str, fast_queue: EmulatorServer, image_host: _ImageHost
) -> None:
    """Every hostile row kind at once, beside good rows, through the batch flow."""
    hostile = _hostile_rows(image_host.port)
    rows_: list[tuple[dict[str, Any], str | None]] = [
        (dict(cells), field)
        for cells, field in hostile.values()
        if fmt == "jsonl" or all(isinstance(value, str) for value in cells.values())
    ]
    good = {"image": "images/good0.png", "prompt": "slow zoom in", "note": "kept"}
    rows_.insert(3, ({"id": "good-0", **good}, None))
    rows_.append(({"id": "good-1", **good, "image": "images/good1.png"}, None))
    rows_.append(({"id": "Good-1", **good}, "id"))  # a duplicate, case changed
    plan = _Plan(fmt, rows_)

    seen = run_plan(plan, image_host)

    assert seen.rows == _expected_rows(plan), "good rows succeed, each other row fails alone"
    assert seen.files == _expected_files(plan) | {"_runs"}
    assert len(seen.reports) == 1 and seen.reports[0].endswith(".jsonl")
    assert (seen.left_behind, seen.written_outside, seen.private_hits) == ([], [], [])


# Loopback, written plainly and in disguise, as a manifest row might write it.
_LOOPBACK_FORMS = ("127.0.0.1", "localhost", "2130706433", "127.1", "user:pw@127.0.0.1")


@pytest.mark.parametrize("host", _LOOPBACK_FORMS)
@pytest.mark.parametrize("protocol", ["ftp", "webhdfs", "sftp", "ssh", "smb", "hdfs"])
async def test_images_over_other_network_protocols_are_not_fetched_from_private_hosts(
    protocol: str, host: str
) -> None:
    """A private address is refused before any connection, whatever the protocol."""
    raised: BaseException | None = None
    with ftp_banner() as banner:
        try:
            await inspect_image(f"{protocol}://{host}:{banner.port}/a.png")
        except Exception as error:
            raised = error
    assert banner.connections == [], f"{protocol}:// connected to 127.0.0.1"
    assert isinstance(raised, ImageError), raised
    assert "private, loopback or link-local address" in str(raised)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("private_allowed", [False, True], ids=["refused", "allowed-but-failing"])
def test_an_ftp_image_that_fails_fails_only_its_row(
    private_allowed: bool, fast_queue: EmulatorServer, tmp_path: Path
) -> None:
    """A row whose ftp:// image is on loopback fails alone, the good row is generated.

    By default the FTP server is never contacted; when private addresses are
    allowed, its refusal (an ftplib error, not an OSError) fails the row with a
    message naming the image.
    """
    with ftp_banner() as banner:
        image = f"ftp://127.0.0.1:{banner.port}/a.png"
        plan = _Plan(
            "csv",
            [
                ({"id": "good-0", "image": "images/good0.png", "prompt": "zoom in"}, None),
                ({"id": "ftp", "image": image, "prompt": "p"}, "image"),
            ],
        )
        _fill_images(tmp_path)
        manifest = _write_plan(tmp_path, plan)
        _, result = asyncio.run(
            run_batch(
                str(manifest),
                str(tmp_path / "out"),
                fail_on_partial=False,
                allow_private_image_urls=private_allowed,
            )
        )
    lines = report_lines(result.report_url)
    assert [line["status"] for line in lines] == ["succeeded", "failed"]
    error = lines[1]["error"]
    if private_allowed:
        assert error.startswith(f"row 2, field 'image': {image}: cannot be read: 421 "), error
        assert len(banner.connections) == 1
    else:
        assert error.startswith(f"row 2, field 'image': {image}: host '127.0.0.1' resolves to ")
        assert banner.connections == []


@pytest.mark.timeout(150)
@given(data=st.data())
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_hostile_rows_fail_alone_and_nothing_is_written_outside_the_output(
    data: st.DataObject, fast_queue: EmulatorServer, image_host: _ImageHost
) -> None:
    """Generated mixes of hostile and good rows through the batch flow."""
    plan = data.draw(_plans(image_host.port), label="plan")

    seen = run_plan(plan, image_host)

    assert seen.rows == _expected_rows(plan)
    assert seen.files - {"_runs"} == _expected_files(plan), "only the good rows' files"
    assert seen.reports == [seen.reports[0]] and seen.reports[0].endswith(".jsonl")
    assert seen.left_behind == [], "claims released, no temporaries"
    assert seen.written_outside == [], "nothing outside the output changed"
    assert seen.private_hits == [], "a private address was fetched"
