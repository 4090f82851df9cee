"""Atomic writes on every filesystem, and the resume decisions read from records."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest
import s3fs
from prefect.utilities.timeout import timeout_async
from support import handle_at

from pika_tasks.pipeline import ReportWriter, RowOutcome, report_urls
from pika_tasks.records import OutputLocation, RowRecord
from pika_tasks.storage import (
    TEMP_MARKER,
    atomic_writer,
    atomic_writer_async,
    read_bytes,
    remove_files,
    stale_partials,
    write_bytes_atomic,
    write_text_atomic,
)

HANDLE = handle_at("http://q", "r1")


@pytest.fixture(params=["local", "memory", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    if request.param == "local":
        return str(tmp_path / "out"), {}
    if request.param == "memory":
        return f"memory://{tmp_path.name}/out", {}
    bucket, options = request.getfixturevalue("s3_bucket")
    return f"{bucket}/out", options


def _names(url: str, options: dict[str, Any]) -> list[str]:
    fs, path = fsspec.core.url_to_fs(url, **options)
    return [p.rsplit("/", 1)[-1] for p in fs.find(path)] if fs.exists(path) else []


def test_atomic_write_lands_whole(location: tuple[str, dict[str, Any]]) -> None:
    base, options = location
    write_bytes_atomic(f"{base}/v.mp4", b"x" * 10_000, options)
    assert read_bytes(f"{base}/v.mp4", options) == b"x" * 10_000
    assert _names(base, options) == ["v.mp4"]


def test_failed_write_leaves_nothing_at_the_final_path(
    location: tuple[str, dict[str, Any]],
) -> None:
    base, options = location
    with (
        pytest.raises(RuntimeError, match="interrupted"),
        atomic_writer(f"{base}/v.mp4", options) as f,
    ):
        f.write(b"half a video")
        raise RuntimeError("interrupted")
    names = _names(base, options)
    assert "v.mp4" not in names
    assert not [n for n in names if TEMP_MARKER in n]


def test_records_round_trip_and_reports(location: tuple[str, dict[str, Any]]) -> None:
    base, options = location
    out = OutputLocation(base, options)
    record = RowRecord(id="a", state="submitted", fingerprint="f1", request=HANDLE)
    out.save(record)
    assert out.load("a") == record
    assert out.load("missing") is None
    assert out.recorded_ids() == {"a"}
    with ReportWriter(base, "run-1", options) as report:
        report.add(RowOutcome(id="a", row_number=1, status="succeeded"))
        url = report.close().report_url
    assert report_urls(base, options) == [url]
    assert read_bytes(url, options).decode().count("\n") == 1


def test_unreadable_record_counts_as_absent(tmp_path: Path) -> None:
    out = OutputLocation(str(tmp_path))
    (tmp_path / "a.json").write_text("{not json")
    assert out.load("a") is None


def test_video_exists_checks_the_recorded_size(tmp_path: Path) -> None:
    out = OutputLocation(str(tmp_path))
    video = tmp_path / "a.mp4"
    video.write_bytes(b"1234")
    record = RowRecord(id="a", state="succeeded", fingerprint="f", output=str(video), size=4)
    assert out.video_exists(record)
    assert not out.video_exists(record.model_copy(update={"size": 5}))
    video.unlink()
    assert not out.video_exists(record)


async def test_async_atomic_write_lands_whole(location: tuple[str, dict[str, Any]]) -> None:
    base, options = location
    async with atomic_writer_async(f"{base}/deep/v.mp4", options) as sink:
        for n in range(3):
            await sink.write(bytes([n]) * 4096)
    assert read_bytes(f"{base}/deep/v.mp4", options) == b"\0" * 4096 + b"\1" * 4096 + b"\2" * 4096
    assert _names(f"{base}/deep", options) == ["v.mp4"]


async def test_the_sinks_writer_is_the_files_own_write_only_where_writes_are_cheap(
    location: tuple[str, dict[str, Any]],
) -> None:
    base, options = location
    async with atomic_writer_async(f"{base}/w.bin", options) as sink:
        writer = sink.writer
        if base.startswith("s3://"):
            assert writer == sink.write  # an upload can block: awaited, in a thread
            await writer(b"abc")  # type: ignore[misc]
        else:
            assert not asyncio.iscoroutinefunction(writer)
            await asyncio.to_thread(writer, b"abc")
    assert read_bytes(f"{base}/w.bin", options) == b"abc"


async def test_failed_async_write_leaves_nothing(location: tuple[str, dict[str, Any]]) -> None:
    base, options = location
    with pytest.raises(RuntimeError, match="interrupted"):
        async with atomic_writer_async(f"{base}/v.mp4", options) as sink:
            await sink.write(b"half a video")
            raise RuntimeError("interrupted")
    assert _names(base, options) == []


def _multipart_uploads(bucket_url: str, options: dict[str, Any]) -> list[str]:
    fs, bucket = fsspec.core.url_to_fs(bucket_url, **options)
    uploads = fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
    return [upload["Key"] for upload in uploads]


def test_s3_writes_the_final_key_directly_and_aborts_on_failure(
    s3_bucket: tuple[str, dict[str, Any]],
) -> None:
    bucket, options = s3_bucket
    fs, _ = fsspec.core.url_to_fs(bucket, **options)
    # Bigger than s3fs's block, so parts are uploaded before the failure.
    block = fs.default_block_size
    with (
        pytest.raises(RuntimeError, match="interrupted"),
        atomic_writer(f"{bucket}/out/v.mp4", options) as f,
    ):
        f.write(b"x" * (block + 1024))
        f.flush()
        assert _multipart_uploads(bucket, options) == ["out/v.mp4"]  # no temporary key
        raise RuntimeError("interrupted")
    assert _names(f"{bucket}/out", options) == []
    assert _multipart_uploads(bucket, options) == []  # aborted, nothing left to bill

    with atomic_writer(f"{bucket}/out/v.mp4", options) as f:
        f.write(b"y" * 10)
    assert read_bytes(f"{bucket}/out/v.mp4", options) == b"y" * 10
    assert _multipart_uploads(bucket, options) == []


def test_stale_partials_lists_the_folder_once_for_every_file(
    location: tuple[str, dict[str, Any]],
) -> None:
    base, options = location
    assert stale_partials(f"{base}/missing", options) == {}
    write_bytes_atomic(f"{base}/keep.mp4", b"k", options)
    fs, path = fsspec.core.url_to_fs(base, **options)
    fs.pipe(f"{path}/.v.mp4{TEMP_MARKER}aaaa", b"half")
    fs.pipe(f"{path}/.v.mp4{TEMP_MARKER}bbbb", b"half")
    fs.pipe(f"{path}/.w.mp4{TEMP_MARKER}cccc", b"other row")
    found = stale_partials(base, options)
    assert sorted(found) == ["v.mp4", "w.mp4"]
    assert len(found["v.mp4"]) == 2
    remove_files(found["v.mp4"], base, options)
    assert sorted(_names(base, options)) == sorted(["keep.mp4", f".w.mp4{TEMP_MARKER}cccc"])
    # Listed again after the removal, not answered from a cached listing.
    assert sorted(stale_partials(base, options)) == ["w.mp4"]


@dataclass
class HeldPart:
    """s3fs's start of a multipart upload, held until ``go`` is set (real S3 answers
    too fast to cancel a write in between); ``discarded`` is set when the file is."""

    started: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)
    discarded: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def held_part(monkeypatch: pytest.MonkeyPatch) -> HeldPart:
    held = HeldPart()
    initiate, discard = s3fs.core.S3File._initiate_upload, s3fs.core.S3File.discard

    def held_initiate(self: s3fs.core.S3File) -> None:
        held.started.set()
        held.go.wait(10)
        initiate(self)

    def noted_discard(self: s3fs.core.S3File) -> None:
        held.discarded.set()
        discard(self)

    monkeypatch.setattr(s3fs.core.S3File, "_initiate_upload", held_initiate)
    monkeypatch.setattr(s3fs.core.S3File, "discard", noted_discard)
    return held


async def _write_a_part(url: str, options: dict[str, Any]) -> None:
    fs, _ = fsspec.core.url_to_fs(url, **options)
    async with atomic_writer_async(url, options) as sink:
        await sink.write(b"x" * (fs.default_block_size + 1024))


async def test_s3_write_cancelled_while_its_part_goes_out_leaves_no_upload(
    s3_bucket: tuple[str, dict[str, Any]], held_part: HeldPart
) -> None:
    """A cancelled fetch cannot stop a write already in its thread: the multipart
    upload that write starts must still be aborted, or S3 keeps (and bills) it unseen."""
    bucket, options = s3_bucket
    task = asyncio.create_task(_write_a_part(f"{bucket}/out/v.mp4", options))
    assert await asyncio.to_thread(held_part.started.wait, 10)
    task.cancel()
    # A discard before the part has gone out finds no upload to abort.
    early = await asyncio.to_thread(held_part.discarded.wait, 0.5)
    held_part.go.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert held_part.discarded.is_set() and not early
    assert _multipart_uploads(bucket, options) == []
    assert _names(bucket, options) == []


async def test_s3_write_timed_out_by_prefect_is_discarded_before_the_task_ends(
    s3_bucket: tuple[str, dict[str, Any]], held_part: HeldPart
) -> None:
    """Prefect's task timeout cancels through an anyio scope, again at every await:
    the discard must still finish before the fetch ends, not linger unawaited."""
    bucket, options = s3_bucket

    def release_when_started() -> None:
        held_part.started.wait(10)
        # The bounded wait lets a discard that does not wait for the write show itself.
        held_part.discarded.wait(0.5)
        held_part.go.set()

    releaser = threading.Thread(target=release_when_started)
    releaser.start()
    before = asyncio.all_tasks()
    with pytest.raises(TimeoutError), timeout_async(0.2):  # what Prefect's task engine uses
        await _write_a_part(f"{bucket}/out/v.mp4", options)
    left_running = [task for task in asyncio.all_tasks() - before if not task.done()]
    releaser.join(10)
    assert left_running == []
    assert held_part.discarded.is_set()
    assert _multipart_uploads(bucket, options) == []
    assert _names(bucket, options) == []


def test_a_record_reaches_the_disk_before_its_name_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut cannot be had here: what is checked is the order of the writes.

    The record's bytes are synced while it still has its temporary name, and the
    folder (the rename) after it has its own, so after a cut the name never points at
    an empty file that the next run would read as no record, and pay again.
    """
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync
    final = tmp_path / "out" / "a.json"

    def noting_fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), final.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", noting_fsync)
    final.parent.mkdir()  # the folder's own creation is synced too: see below
    out = OutputLocation(str(tmp_path / "out"))
    out.save(RowRecord(id="a", state="submitting", fingerprint="f"))

    assert len(synced) == 2
    (file_path, published_then), (folder_path, published_after) = synced
    assert TEMP_MARKER in file_path and not published_then
    assert folder_path == str(final.parent) and published_after
    assert out.load("a") is not None

    synced.clear()
    write_bytes_atomic(f"{tmp_path}/out/v.mp4", b"video")  # not asked to be durable
    write_text_atomic(f"memory://durable-{tmp_path.name}/a.json", "{}", durable=True)
    assert synced == []


def test_the_folders_a_first_record_creates_reach_the_disk_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new folder is a name in its parent: each parent that gained one is synced.
    synced: list[str] = []
    real_fsync = os.fsync

    def noting_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", noting_fsync)
    out = OutputLocation(str(tmp_path / "runs" / "out"))
    out.save(RowRecord(id="a", state="submitting", fingerprint="f"))
    folders = [path for path in synced if TEMP_MARKER not in path]
    assert folders == [str(tmp_path), str(tmp_path / "runs"), str(tmp_path / "runs" / "out")]

    synced.clear()
    out.save(RowRecord(id="b", state="submitting", fingerprint="f"))
    assert [path for path in synced if TEMP_MARKER not in path] == [str(tmp_path / "runs" / "out")]


@pytest.mark.parametrize(
    ("error", "saved"),
    [(errno.EINVAL, True), (errno.EACCES, True), (errno.EIO, False)],
    ids=["a mount that cannot sync", "a folder that cannot be opened", "a disk that lost data"],
)
def test_a_filesystem_that_cannot_sync_still_saves_but_a_lost_write_fails(
    error: int, saved: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some mounts (FUSE, CIFS, virtiofs) refuse fsync with EINVAL; EIO means data was lost.
    def failing_fsync(fd: int) -> None:
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    out = OutputLocation(str(tmp_path / "out"))
    record = RowRecord(id="a", state="submitting", fingerprint="f")
    if saved:
        out.save(record)
        assert out.load("a") == record
    else:
        with pytest.raises(OSError, match=os.strerror(errno.EIO)):
            out.save(record)
        assert out.load("a") is None and _names(str(tmp_path / "out"), {}) == []
