"""A batch process killed with SIGKILL at every point of a row's life, then run again:
every row ends with exactly one valid video, each job is paid once at the emulator
(twice only when told to resubmit a row whose submit may have reached fal), no
partial file is left at a final path, and each run's report agrees with the outputs.

The kill points: after planning, before any submit; a submit in flight, held before
or after fal queued the job; right after a submit was answered and recorded; while
waiting; once the first video is written; mid-download; while writing the report
(on S3 and on a local disk).

The process is killed from outside when the point is observed (records on disk,
files at the output, requests held at the emulator or the store, counters at the
emulator, a marker file), never on a timer.  To hold a point, a gate in front of
the emulator (an ASGI middleware) or of the S3 server (a WSGI middleware) keeps
chosen requests of the run to be killed, which alone uses :data:`KILLED_KEY`, from
being answered.  A local report is written to a temporary and renamed into place,
which no server sees: that run alone is started with a Python audit hook that
holds it at the rename (see :func:`flow_support.hold_at_report_rename`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fsspec
import numpy as np
import pytest
from flow_support import hold_report_rename_env, kill_when, run_to_end, start_batch
from PIL import Image
from support import (
    FAKE_AWS,
    explain,
    pika,
    probe_video,
    process_env,
    s3_bucket,
    s3_server,
    write_manifest,
)

from pika_tasks.emulator import EmulatorServer
from pika_tasks.emulator._config import ENDPOINT_ID
from pika_tasks.pipeline import read_reports, report_urls
from pika_tasks.records import OutputLocation, RowRecord
from pika_tasks.storage import TEMP_MARKER

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.timeout(240)]

ROWS = [f"r{n},images/{n}.png,zoom in {n}" for n in range(4)]
IDS = [f"r{n}" for n in range(len(ROWS))]
FRAMES = 5 * 4  # 5 s at 4 fps

DONE = frozenset({"succeeded", "skipped"})
"""Report statuses of a row whose video is there."""

KILLED_KEY = "fal-test-KEY-killed-run-5e07"
"""The key of the run that is killed: the gates hold its requests only, never a re-run's."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


# --------------------------------------------------------------------------- runs


def records(out: Path) -> list[RowRecord]:
    location = OutputLocation(str(out))
    found = [location.load(row_id) for row_id in IDS]
    return [r for r in found if r is not None]


def states(out: Path | OutputLocation) -> dict[str, str]:
    """Each row's recorded state (rows without a record are left out)."""
    location = out if isinstance(out, OutputLocation) else OutputLocation(str(out))
    found = (location.load(row_id) for row_id in IDS)
    return {record.id: record.state for record in found if record is not None}


# --------------------------------------------------------------------------- checks


def check_outputs(location: OutputLocation, leftovers: frozenset[str] = frozenset()) -> None:
    """Every row: one video that decodes fully, a succeeded record matching it, and
    nothing half-written anywhere under the output but the paths in ``leftovers``."""
    fs, root = fsspec.core.url_to_fs(location.url, **location.storage_options)
    fs.invalidate_cache()
    for row_id in IDS:
        data = fs.cat_file(f"{root}/{row_id}.mp4")
        info = probe_video(data)
        assert (info["codec"], info["frames"]) == ("h264", FRAMES), row_id
        record = location.load(row_id)
        assert record is not None and record.state == "succeeded", record
        assert record.size == len(data), row_id
        assert record.sha256 == hashlib.sha256(data).hexdigest(), row_id
    videos = [path for path in fs.find(root) if path.endswith(".mp4")]
    assert sorted(videos) == sorted(f"{root}/{row_id}.mp4" for row_id in IDS), videos
    found = [path for path in fs.find(root) if TEMP_MARKER in path]
    assert not [path for path in found if path not in leftovers], found


def last_report(location: OutputLocation) -> dict[str, dict[str, Any]]:
    """The newest run report, line by row id."""
    url = report_urls(location.url, location.storage_options)[-1]
    with fsspec.open(url, "rt", **location.storage_options) as handle:
        return {line["id"]: line for line in map(json.loads, handle)}


def check_report_agrees(location: OutputLocation, statuses: dict[str, frozenset[str]]) -> None:
    """The newest report gives each row one of ``statuses[id]`` and agrees with the files:
    a succeeded or skipped row names its video, which is there with its record's size
    (and request); a failed row has no video at its final path."""
    fs, root = fsspec.core.url_to_fs(location.url, **location.storage_options)
    fs.invalidate_cache()
    lines = last_report(location)
    assert sorted(lines) == IDS
    for row_id, line in lines.items():
        assert line["status"] in statuses[row_id], line
        video = f"{root}/{row_id}.mp4"
        record = location.load(row_id)
        if line["status"] in ("succeeded", "skipped"):
            assert line["output"] == location.video_url(row_id), line
            assert record is not None and record.state == "succeeded"
            assert fs.size(video) == record.size
            if line["status"] == "succeeded":
                assert record.request is not None
                assert line["request_id"] == record.request.request_id
        else:
            assert not fs.exists(video), line


def rerun_and_check(manifest: Path, out: Path, emu: Any, *, submissions: int) -> None:
    done = run_to_end(manifest, out, emu)
    assert done.returncode == 0, explain(done)
    location = OutputLocation(str(out))
    check_outputs(location)
    check_report_agrees(location, dict.fromkeys(IDS, DONE))
    assert emu.stats()["submissions"] == submissions


def print_figures(point: str, at_kill: int, *runs: tuple[str, int]) -> None:
    """The test's figures, for ``pytest -s``: jobs paid at fal at the kill and after each
    later run (printed once every check passed)."""
    after = "; ".join(f"after {name}: {paid}" for name, paid in runs)
    print(
        f"\nkilled {point}: {len(ROWS)} rows; jobs paid at the kill: {at_kill}; {after}; "
        "every row one valid video, no partial file"
    )


def large_images(folder: Path) -> None:
    """Replace the manifest's images with ~3 MB PNGs, over the 2 MB sent inline: each
    is uploaded to fal's storage before its row's submit."""
    for n in range(len(ROWS)):
        pixels = np.random.default_rng(n).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        (folder / "images" / f"{n}.png").write_bytes(buffer.getvalue())


# --------------------------------------------------------------------------- gates


class Release:
    """Held requests wait on this until the test lets them go (bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._released = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._thread_event = threading.Event()

    async def wait(self) -> None:
        """Wait, in a server's event loop, without a worker thread."""
        event = asyncio.Event()
        with self._lock:
            if self._released:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 180)

    def wait_blocking(self) -> None:
        """Wait, in a server's worker thread."""
        self._thread_event.wait(180)

    def __call__(self) -> None:
        with self._lock:
            self._released = True
            waiters, self._waiters = self._waiters, []
        self._thread_event.set()
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that server has stopped already
                loop.call_soon_threadsafe(event.set)


@dataclass
class Hold:
    """Which requests of the killed run a gate holds, and where.

    Attributes:
        method: the HTTP method.
        path_has: text the path must contain.
        where: ``"before-fal"`` holds the request before the emulator sees it (a
            submit is never queued); ``"after-fal"`` lets the emulator handle it
            and holds its answer (a submit is queued, its answer never arrives).
        body_has: when set, only requests whose body holds one of these.
    """

    method: str
    path_has: str
    where: Literal["before-fal", "after-fal"] = "before-fal"
    body_has: tuple[bytes, ...] = ()


class EmulatorGate:
    """ASGI middleware in front of the emulator that holds requests as ``holds`` say."""

    def __init__(self, app: App, holds: list[Hold]) -> None:
        self.app = app
        self.holds = holds
        self.held: list[str] = []  # "METHOD path" of each request held, in order
        self.release = Release()
        self._key = f"Key {KILLED_KEY}".encode()

    def _candidate(self, scope: Scope) -> list[Hold]:
        if scope["type"] != "http" or (b"authorization", self._key) not in scope["headers"]:
            return []
        return [
            hold
            for hold in self.holds
            if hold.method == scope["method"] and hold.path_has in scope["path"]
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        candidates = self._candidate(scope)
        if not candidates:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        chosen = next(
            (h for h in candidates if not h.body_has or any(b in body for b in h.body_has)),
            None,
        )
        replay = _replay(body, receive)
        if chosen is None:
            await self.app(scope, replay, send)
            return
        if chosen.where == "before-fal":
            self.held.append(f"{scope['method']} {scope['path']}")
            await self.release.wait()
            # The client that asked is gone; fal never saw the request.
            await _answer_quietly(send, [_start(503), {"type": "http.response.body"}])
            return
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, replay, keep)
        self.held.append(f"{scope['method']} {scope['path']}")
        await self.release.wait()
        await _answer_quietly(send, answer)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already, then whatever comes next."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _start(status: int) -> Message:
    return {"type": "http.response.start", "status": status, "headers": []}


async def _answer_quietly(send: Send, messages: list[Message]) -> None:
    with contextlib.suppress(Exception):  # the connection died with its process
        for message in messages:
            await send(message)


@pytest.fixture
def gated_emulator() -> Iterator[Callable[..., tuple[EmulatorServer, EmulatorGate]]]:
    """``emu, gate = gated_emulator([Hold(...)], **config)``: an emulator behind a gate."""
    started: list[tuple[EmulatorServer, EmulatorGate]] = []

    def start(holds: list[Hold], **config: Any) -> tuple[EmulatorServer, EmulatorGate]:
        emu = EmulatorServer(**config)
        gate = EmulatorGate(emu.app, holds)
        emu.app = gate  # type: ignore[assignment]  # served instead of the app it wraps
        emu.start()
        started.append((emu, gate))
        return emu, gate

    yield start
    for emu, gate in started:
        gate.release()
        emu.stop()


class StoreGate:
    """WSGI middleware in front of moto's S3 that holds, while ``holding``, every
    request whose path contains ``path_has`` (answered 503, never stored, on release)."""

    def __init__(self, app: Callable[..., Any], path_has: str) -> None:
        self.app = app
        self.path_has = path_has
        self.holding = True
        self.held: list[str] = []
        self.release = Release()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if self.holding and self.path_has in path:
            self.held.append(f"{environ['REQUEST_METHOD']} {path}")
            self.release.wait_blocking()
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return [b""]
        return self.app(environ, start_response)


@pytest.fixture
def gated_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, Any], StoreGate]]:
    """A bucket on moto's S3 behind a :class:`StoreGate` that holds report writes.

    Yields ``("s3://bucket", storage_options, gate)``.
    """
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    gate: StoreGate | None = None

    def gated(moto: Callable[..., Any]) -> StoreGate:
        nonlocal gate
        gate = StoreGate(moto, "/_runs/")
        return gate

    with s3_server(gated) as server, s3_bucket(server, "pika-kill") as bucket:
        assert gate is not None
        try:
            yield bucket, {**server, "skip_instance_cache": True}, gate
        finally:
            gate.release()


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "point",
    ["all-submitted-while-waiting", "first-video-written", "mid-download"],
)
def test_killed_batch_resumes_without_paying_twice(
    point: str, make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    big = point == "mid-download"
    emu = make_emulator(
        runners=2,
        job_seconds=1.0 if point != "first-video-written" else 0.3,
        fps=4,
        # Large videos make a download long enough to be caught half way.
        min_video_bytes=40_000_000 if big else 0,
    )
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    process = start_batch(manifest, out, emu)

    def seen() -> bool:
        if point == "all-submitted-while-waiting":
            found = records(out)
            return len(found) == len(ROWS) and all(r.state == "submitted" for r in found)
        if point == "first-video-written":
            return any(out.glob("r*.mp4"))
        return emu.stats()["bytes_served"] > 0 and any(
            TEMP_MARKER in p.name for p in out.glob(".*")
        )

    kill_when(process, seen)
    at_kill = emu.stats()["submissions"]
    if point == "mid-download":
        assert not list(out.glob("r*.mp4")), "a partial video was left at a final path"
    rerun_and_check(manifest, out, emu, submissions=len(ROWS))
    print_figures(point, at_kill, ("the re-run", len(ROWS)))


def test_killed_after_planning_before_any_submit(
    gated_emulator: Callable[..., tuple[EmulatorServer, EmulatorGate]], tmp_path: Path
) -> None:
    """Killed once every row is planned, while the first image's upload (which comes
    before a row's submit intent) is held: no record, nothing at fal; the re-run
    submits every row once, with no unknown outcome to report."""
    emu, gate = gated_emulator(
        [Hold("POST", "/storage/upload/initiate")], runners=2, job_seconds=0.3, fps=4
    )
    manifest = write_manifest(tmp_path, ROWS)
    large_images(tmp_path)
    out = tmp_path / "out"
    process = start_batch(manifest, out, emu, key=KILLED_KEY)

    kill_when(process, lambda: bool(gate.held))

    assert records(out) == [], "a submit intent was recorded before the image was uploaded"
    stats = emu.stats()
    assert (stats["submissions"], stats["uploads"]) == (0, 0)
    gate.release()
    rerun_and_check(manifest, out, emu, submissions=len(ROWS))
    lines = last_report(OutputLocation(str(out)))
    assert {line["action"] for line in lines.values()} == {"submit"}
    print_figures("after planning, before any submit", 0, ("the re-run", len(ROWS)))


@pytest.mark.parametrize("where", ["before-fal", "after-fal"])
def test_killed_with_submits_in_flight(
    where: Literal["before-fal", "after-fal"],
    gated_emulator: Callable[..., tuple[EmulatorServer, EmulatorGate]],
    tmp_path: Path,
) -> None:
    """Killed while the submits of rows r1 and r3 are in flight (their intent recorded,
    no answer), with r0 and r2 submitted and recorded.

    Whether fal queued r1 and r3 (``after-fal``: it did, ``before-fal``: it did not) is
    unknown to the re-run, which finishes r0 and r2 without paying again and reports
    r1 and r3 as of unknown outcome without submitting them.  A run with
    ``--resubmit-unknown`` then finishes them, paying for each once more.
    """
    held_rows, free_rows = ["r1", "r3"], ["r0", "r2"]
    emu, gate = gated_emulator(
        [Hold("POST", f"/{ENDPOINT_ID}", where, body_has=(b"zoom in 1", b"zoom in 3"))],
        runners=2,
        job_seconds=0.5,
        fps=4,
    )
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    process = start_batch(manifest, out, emu, key=KILLED_KEY)

    def seen() -> bool:
        recorded = states(out)
        return len(gate.held) == len(held_rows) and all(
            recorded.get(row_id) in ("submitted", "succeeded") for row_id in free_rows
        )

    kill_when(process, seen)

    recorded = states(out)
    assert [recorded[row_id] for row_id in held_rows] == ["submitting", "submitting"]
    queued_at_kill = emu.stats()["submissions"]
    assert queued_at_kill == (4 if where == "after-fal" else 2)
    gate.release()

    again = run_to_end(manifest, out, emu)
    assert again.returncode == 1, explain(again)
    assert emu.stats()["submissions"] == queued_at_kill, "the re-run paid again"
    location = OutputLocation(str(out))
    check_report_agrees(
        location,
        {
            "r0": DONE,
            "r1": frozenset({"failed"}),
            "r2": DONE,
            "r3": frozenset({"failed"}),
        },
    )
    lines = last_report(location)
    for row_id in held_rows:
        assert lines[row_id]["action"] == "unknown"
        assert "may have reached fal" in lines[row_id]["error"]
        assert "--resubmit-unknown" in lines[row_id]["error"]
        assert lines[row_id]["cost_usd"] == 0
    assert {lines[row_id]["action"] for row_id in free_rows} <= {"reattach", "skip"}

    forced = run_to_end(manifest, out, emu, "--resubmit-unknown")
    assert forced.returncode == 0, explain(forced)
    check_outputs(location)
    check_report_agrees(location, dict.fromkeys(IDS, DONE))
    lines = last_report(location)
    assert {row_id: lines[row_id]["action"] for row_id in held_rows} == dict.fromkeys(
        held_rows, "submit"
    )
    assert {lines[row_id]["status"] for row_id in free_rows} == {"skipped"}
    # Each held row paid once more; had fal not queued them, that is their only payment.
    assert emu.stats()["submissions"] == queued_at_kill + len(held_rows)
    print_figures(
        f"with 2 submits in flight, held {where}",
        queued_at_kill,
        ("the re-run (2 rows reported unknown)", queued_at_kill),
        ("--resubmit-unknown", queued_at_kill + len(held_rows)),
    )


def test_killed_right_after_a_submit_was_answered_and_recorded(
    gated_emulator: Callable[..., tuple[EmulatorServer, EmulatorGate]], tmp_path: Path
) -> None:
    """One row at a time; killed once the first submit's answer is recorded, its wait
    held at the emulator: the re-run re-attaches that row and submits the others."""
    emu, gate = gated_emulator([Hold("GET", "/requests/")], runners=2, job_seconds=0.3, fps=4)
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    process = start_batch(manifest, out, emu, "--max-concurrency", "1", key=KILLED_KEY)

    kill_when(process, lambda: "submitted" in states(out).values())

    recorded = states(out)
    assert list(recorded.values()) == ["submitted"], recorded
    assert emu.stats()["submissions"] == 1
    (first,) = recorded
    gate.release()
    rerun_and_check(manifest, out, emu, submissions=len(ROWS))
    actions = {
        row_id: line["action"] for row_id, line in last_report(OutputLocation(str(out))).items()
    }
    assert actions == {row_id: "reattach" if row_id == first else "submit" for row_id in IDS}
    print_figures("right after a submit was recorded", 1, ("the re-run", len(ROWS)))


def test_killed_while_writing_the_report(
    make_emulator: Callable[..., Any],
    gated_s3: tuple[str, dict[str, Any], StoreGate],
    tmp_path: Path,
) -> None:
    """Output on S3; killed while the run report's upload is held at the store, every
    row done: no report of the killed run appears, and the re-run pays nothing,
    skips every row and writes the one report."""
    bucket, options, gate = gated_s3
    emu = make_emulator(runners=2, job_seconds=0.3, fps=4)
    manifest = write_manifest(tmp_path, ROWS)
    out = f"{bucket}/out"
    storage = json.dumps(
        {key: value for key, value in options.items() if key != "skip_instance_cache"}
    )
    location = OutputLocation(out, options)
    process = start_batch(manifest, out, emu, "--output-storage-options", storage)

    kill_when(process, lambda: bool(gate.held))

    assert gate.held[0].startswith(("PUT ", "POST ")) and "/out/_runs/" in gate.held[0]
    assert states(location) == dict.fromkeys(IDS, "succeeded")
    assert report_urls(location.url, location.storage_options) == [], (
        "a report of the killed run is visible"
    )
    at_kill = emu.stats()["submissions"]
    assert at_kill == len(ROWS)
    gate.holding = False
    gate.release()

    done = run_to_end(manifest, out, emu, "--output-storage-options", storage)
    assert done.returncode == 0, explain(done)
    assert emu.stats()["submissions"] == len(ROWS)
    check_outputs(location)
    assert len(report_urls(location.url, location.storage_options)) == 1
    check_report_agrees(location, dict.fromkeys(IDS, frozenset({"skipped"})))
    print_figures("while writing the report", at_kill, ("the re-run", len(ROWS)))


def test_killed_while_writing_the_report_on_a_local_disk(
    make_emulator: Callable[..., Any], tmp_path: Path
) -> None:
    """Output on a local disk; killed at the rename that would publish the run report,
    with the whole report in its temporary and every row done: no report of the
    killed run appears at a final path; its temporary is left hidden in ``_runs/``,
    where every reader of reports ignores it; the re-run pays nothing, skips every
    row and writes the one report, which ``pika-tasks report`` reads."""
    emu = make_emulator(runners=2, job_seconds=0.3, fps=4)
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    marker = tmp_path / "held-at-rename.json"
    hold = hold_report_rename_env(tmp_path / "hold", marker)
    process = start_batch(manifest, out, emu, extra_env=hold)

    kill_when(process, marker.exists)

    held = json.loads(marker.read_text())
    assert held["pid"] == process.pid
    temporary, final = Path(held["from"]), Path(held["to"])
    assert final.parent == out / "_runs" and final.suffix == ".jsonl", final
    assert temporary.parent == final.parent and temporary.name.startswith(".")
    assert TEMP_MARKER in temporary.name and not temporary.name.endswith(".jsonl")
    # The kill landed between the report's write and its rename: all of it written.
    assert states(out) == dict.fromkeys(IDS, "succeeded")
    killed_lines = [json.loads(line) for line in temporary.read_text().splitlines()]
    assert sorted(line["id"] for line in killed_lines) == IDS
    assert {line["status"] for line in killed_lines} == {"succeeded"}
    assert not final.exists()
    assert report_urls(str(out)) == [], "a report of the killed run is visible"
    at_kill = emu.stats()["submissions"]
    assert at_kill == len(ROWS)

    done = run_to_end(manifest, out, emu)
    assert done.returncode == 0, explain(done)
    assert emu.stats()["submissions"] == len(ROWS)
    location = OutputLocation(str(out))
    # The killed run's temporary is the one thing left, and nothing reads it.
    check_outputs(location, leftovers=frozenset({str(temporary)}))
    assert temporary.exists()
    assert len(report_urls(location.url)) == 1
    check_report_agrees(location, dict.fromkeys(IDS, frozenset({"skipped"})))
    assert [run.skipped for run in read_reports(location.url)] == [len(ROWS)]
    shown = pika("report", str(out), "--all", "--json", env=process_env(), timeout=60)
    assert shown.returncode == 0, explain(shown)
    assert [run["skipped"] for run in json.loads(shown.stdout)["runs"]] == [len(ROWS)]
    print_figures("while writing the report on a local disk", at_kill, ("the re-run", len(ROWS)))
