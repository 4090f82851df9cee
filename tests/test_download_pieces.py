"""The download's own logic, without a server: the body handed on in whole pieces, in order and
hashed, and a resume accepted only when it continues exactly where the writes stopped."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from pika_tasks._download import RangeIgnored, _Pipeline, _Progress, _start_part

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
