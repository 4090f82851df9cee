"""Claims at an output location: one holder per row, stale claims taken over by the next
generation, exclusive creates that hold under racing threads and on S3."""

from __future__ import annotations

import subprocess
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pika_tasks.claims import ClaimBook, Holder, has_exclusive_create
from pika_tasks.records import OutputLocation


def book_at(url: str, options: dict[str, Any] | None = None, lease: float = 60) -> ClaimBook:
    return ClaimBook(OutputLocation(url, options), lease_seconds=lease)


def test_one_holder_per_row_until_released(tmp_path: Path) -> None:
    book = book_at(str(tmp_path / "out"))
    first = book.take("a", Holder(flow_run_id="one"))
    assert first is not None and first.generation == 1
    assert book.take("a", Holder(flow_run_id="two")) is None
    assert book.take("b", Holder(flow_run_id="two")) is not None, "rows are claimed one by one"
    current = book.current("a")
    assert current is not None and current.holder.flow_run_id == "one"
    book.release(first)
    assert book.current("a") is None
    assert not (tmp_path / "out" / "_claims" / "a").exists()


def test_a_stale_claim_is_taken_over_once_by_the_next_generation(tmp_path: Path) -> None:
    book = book_at(str(tmp_path / "out"))
    stale = book.take("a", Holder(flow_run_id="dead"))
    assert stale is not None
    winners = [book.take("a", Holder(flow_run_id=f"run-{n}"), over=stale) for n in range(3)]
    taken = [claim for claim in winners if claim is not None]
    assert len(taken) == 1 and taken[0].generation == 2
    assert book.current("a") == taken[0]
    book.release(taken[0])  # the stale generation goes with it
    assert book.current("a") is None


def test_racing_threads_take_a_row_once(tmp_path: Path) -> None:
    book = book_at(str(tmp_path / "out"))
    start = threading.Barrier(8)
    won: list[str] = []

    def race(name: str) -> None:
        start.wait()
        if book.take("a", Holder(flow_run_id=name)) is not None:
            won.append(name)

    threads = [threading.Thread(target=race, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(won) == 1, won


def test_a_run_that_ends_removes_the_claims_folder_only_when_empty(tmp_path: Path) -> None:
    book = book_at(str(tmp_path / "out"))
    mine = book.take("a", Holder(flow_run_id="one"))
    theirs = book.take("b", Holder(flow_run_id="two"))
    assert mine is not None and theirs is not None
    book.release(mine)
    book.tidy()  # run "one" ends while "two" still holds its row
    assert (tmp_path / "out" / "_claims" / "b" / "00000001.json").is_file()
    book.release(theirs)
    book.tidy()
    assert not (tmp_path / "out" / "_claims").exists()
    assert book.take("a", Holder(flow_run_id="three")) is not None, "the folder is made again"


def test_a_claim_folder_removed_between_its_makedirs_and_the_create_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another run releasing its last claim removes the empty folder (rmdir): when that
    # lands between this run's makedirs and its create, the create must not fail the row.
    from fsspec.implementations.local import LocalFileSystem

    book = book_at(str(tmp_path / "out"))
    makedirs = LocalFileSystem.makedirs
    removed: list[str] = []

    def makedirs_then_lose_it(self: Any, path: str, exist_ok: bool = False) -> None:
        makedirs(self, path, exist_ok=exist_ok)
        if len(removed) < 2:  # twice: the third attempt is left alone
            Path(path).rmdir()
            removed.append(path)

    monkeypatch.setattr(LocalFileSystem, "makedirs", makedirs_then_lose_it)
    claim = book.take("a", Holder(flow_run_id="one"))
    assert claim is not None and claim.generation == 1
    assert len(removed) == 2
    assert (tmp_path / "out" / "_claims" / "a" / "00000001.json").is_file()

    removed.clear()
    monkeypatch.setattr(
        LocalFileSystem,
        "makedirs",
        lambda self, path, exist_ok=False: (
            makedirs(self, path, exist_ok=exist_ok),
            Path(path).rmdir(),
        ),
    )
    with pytest.raises(FileNotFoundError):  # a folder that never stays is an error, not a loop
        book.take("b", Holder(flow_run_id="one"))


def test_exclusive_create_holds_on_s3(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    bucket, options = s3_bucket
    book = book_at(f"{bucket}/out", {**options, "skip_instance_cache": True})
    assert book.atomic
    assert book.take("a", Holder(flow_run_id="one")) is not None
    assert book.take("a", Holder(flow_run_id="two")) is None


def test_staleness_by_lease_and_by_process(tmp_path: Path) -> None:
    book = book_at(str(tmp_path / "out"), lease=30)
    claim = book.take("a", Holder(flow_run_id="one"))
    assert claim is not None
    assert not claim.lease_expired()
    assert claim.lease_expired(now=datetime.now(UTC) + timedelta(seconds=31))
    renewed = book.renew(claim)
    assert renewed.lease_expires_at > claim.lease_expires_at
    assert book.current("a") == renewed

    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = book.take("b", Holder(flow_run_id="two", pid=gone.pid))
    assert dead is not None and dead.process_gone()
    elsewhere = book.take("c", Holder(flow_run_id="three", host=f"other-{uuid.uuid4().hex}"))
    assert elsewhere is not None and not elsewhere.process_gone(), "another host: lease only"


@pytest.mark.parametrize(
    ("url", "atomic"),
    [("/tmp/out", True), ("memory://out", True), ("s3://b/out", True), ("gs://b/out", False)],
)
def test_stores_with_an_atomic_create_are_named(url: str, atomic: bool) -> None:
    assert has_exclusive_create(url) is atomic
