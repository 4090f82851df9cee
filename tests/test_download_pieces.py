"""The download's own logic, without a server: the body handed on in whole pieces, in order and
hashed, and a resume accepted only when it continues exactly where the writes stopped."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import httpx
import pytest

from pika_tasks._download import (
    _HASH_IN_THREAD_FROM,
    RangeIgnored,
    _Pipeline,
    _Progress,
    _start_part,
)

URL = "http://files.test/files/video.mp4"


async def test_pieces_reach_the_chunk_size_keep_their_order_and_are_hashed() -> None:
    written: list[bytes] = []
    progress = _Progress()
    pipeline = _Pipeline(written.append, progress, chunk_size=10)
    chunks = [b"abcd", b"efgh", b"ijkl", b"m", b"nopqrstuvwxyz", b"!"]
    for chunk in chunks:
        await pipeline.feed(chunk)
    await pipeline.flush()
    body = b"".join(chunks)
    assert written == [b"abcdefghijkl", b"mnopqrstuvwxyz", b"!"]  # each >= 10 but the last
    assert progress.received == len(body)
    assert progress.sha256.hexdigest() == hashlib.sha256(body).hexdigest()


async def test_an_async_writer_is_awaited_one_piece_at_a_time() -> None:
    order: list[str] = []

    async def write(piece: bytes) -> None:
        order.append(f"start {piece!r}")
        await asyncio.sleep(0)
        order.append(f"end {piece!r}")

    pipeline = _Pipeline(write, _Progress(), chunk_size=1)
    for chunk in (b"a", b"b"):
        await pipeline.feed(chunk)
    await pipeline.flush()
    assert order == ["start b'a'", "end b'a'", "start b'b'", "end b'b'"]


@pytest.mark.parametrize("in_thread", [True, False], ids=["write_in_thread", "on_the_loop"])
async def test_a_plain_writer_writes_large_pieces_in_the_hashing_thread_when_allowed(
    in_thread: bool,
) -> None:
    """Allowed, one thread hop a piece writes and hashes it, and the loop's thread only
    reads; pieces too small to be worth a hop are written and hashed in place.  Not
    allowed (the default, for writers tied to the loop's thread), every piece is
    written on the loop."""
    loop_thread = threading.get_ident()
    seen: list[tuple[int, bool]] = []

    def write(piece: bytes) -> None:
        seen.append((len(piece), threading.get_ident() == loop_thread))

    progress = _Progress()
    pipeline = _Pipeline(write, progress, _HASH_IN_THREAD_FROM, write_in_thread=in_thread)
    body = [b"x" * _HASH_IN_THREAD_FROM, b"y" * _HASH_IN_THREAD_FROM, b"z" * 10]
    for chunk in body:
        await pipeline.feed(chunk)
    await pipeline.flush()
    on_loop = not in_thread
    assert seen == [(_HASH_IN_THREAD_FROM, on_loop), (_HASH_IN_THREAD_FROM, on_loop), (10, True)]
    assert progress.sha256.hexdigest() == hashlib.sha256(b"".join(body)).hexdigest()
    assert progress.received == sum(map(len, body))


async def test_an_abandoned_download_waits_for_the_piece_its_thread_is_writing() -> None:
    """A write in a thread cannot be stopped: the caller, who discards the file next,
    must not go on until it has ended."""
    started, go = threading.Event(), threading.Event()
    finished: list[int] = []

    def write(piece: bytes) -> None:
        started.set()
        go.wait(10)
        finished.append(len(piece))

    pipeline = _Pipeline(write, _Progress(), _HASH_IN_THREAD_FROM, write_in_thread=True)
    await pipeline.feed(b"x" * _HASH_IN_THREAD_FROM)
    assert await asyncio.to_thread(started.wait, 10)
    abandoning = asyncio.create_task(pipeline.abandon())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not abandoning.done() and finished == []
    go.set()
    await abandoning
    assert finished == [_HASH_IN_THREAD_FROM]


async def test_an_async_writer_runs_on_the_loop_beside_the_hash() -> None:
    loop_thread = threading.get_ident()
    on_loop: list[bool] = []

    async def write(piece: bytes) -> None:
        on_loop.append(threading.get_ident() == loop_thread)

    pipeline = _Pipeline(write, _Progress(), _HASH_IN_THREAD_FROM, write_in_thread=True)
    await pipeline.feed(b"x" * _HASH_IN_THREAD_FROM)
    await pipeline.flush()
    assert on_loop == [True]


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", URL))


def test_the_first_answer_sets_the_size_type_and_a_strong_etag() -> None:
    progress = _Progress()
    _start_part(
        answer(200, **{"content-length": "100", "content-type": "video/mp4", "etag": '"x"'}),
        progress,
    )
    assert (progress.total, progress.content_type, progress.etag) == (100, "video/mp4", '"x"')
    weak = _Progress()
    _start_part(answer(200, etag='W/"x"'), weak)
    assert (weak.total, weak.etag) == (None, None)  # a weak tag cannot guard a resume


def test_a_resume_must_continue_exactly_where_the_writes_stopped() -> None:
    progress = _Progress(received=40, total=100)
    _start_part(answer(206, **{"content-range": "bytes 40-99/100"}), progress)
    assert progress.total == 100

    for refused in (
        answer(200),  # the whole file again: what was written cannot be taken back
        answer(206, **{"content-range": "bytes 0-99/100"}),  # another offset
        answer(206),  # no Content-Range
    ):
        with pytest.raises(RangeIgnored, match="at byte 40"):
            _start_part(refused, _Progress(received=40, total=100))
