"""Downloads (streamed, checked, resumed with Range) and uploads to fal's storage."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from _client_support import ARGS, expect

from pika_tasks.client import PikaClient
from pika_tasks.errors import ResultExpiredError, TransportError
from pika_tasks.models import File

EmuClient = Callable[..., tuple[Any, PikaClient]]
VIDEO = bytes(range(256)) * 40  # 10,240 bytes
CDN = "https://cdn.test/files/v.mp4"


async def finished_video(client: PikaClient) -> File:
    handle = await client.submit(ARGS)
    await client.wait(handle)
    return (await client.result(handle)).video


async def test_dropped_download_resumes_with_range(emu_client: EmuClient) -> None:
    # Which downloads drop depends on the (random) file name: download until one did.
    emu, client = emu_client(drop_download_rate=0.5, settings={"max_retries": 20})
    video = await finished_video(client)
    for _ in range(20):
        before = emu.stats()
        chunks: list[bytes] = []
        info = await client.download(video.url, chunks.append, chunk_size=1024)
        after = emu.stats()
        body = b"".join(chunks)
        assert info.size == len(body) == video.file_size
        assert info.sha256 == hashlib.sha256(body).hexdigest()
        assert body[4:8] == b"ftyp"
        if after["downloads"] - before["downloads"] >= 2:
            break
    else:
        raise AssertionError("no download was dropped")
    assert after["faults"]["drop_download"] > before["faults"].get("drop_download", 0)
    # Resumed, not restarted: every byte was served once.
    assert after["bytes_served"] - before["bytes_served"] == info.size


async def test_downloads_that_keep_dropping_give_up(emu_client: EmuClient) -> None:
    emu, client = emu_client(drop_download_rate=1.0)
    video = await finished_video(client)
    with expect(TransportError, match="stopped after"):
        await client.download(video.url, lambda chunk: None)
    assert emu.stats()["downloads"] == client.settings.max_retries + 1


async def test_unknown_file_is_expired(emu_client: EmuClient) -> None:
    emu, client = emu_client()
    with expect(ResultExpiredError):
        await client.download(f"{emu.url}/files/no-such-file.mp4", lambda chunk: None)


async def test_upload_then_download_the_same_bytes(emu_client: EmuClient) -> None:
    emu, client = emu_client()
    file_url = await client.upload(VIDEO, content_type="image/png", file_name="cat.png")
    chunks: list[bytes] = []
    info = await client.download(file_url, chunks.append)
    assert b"".join(chunks) == VIDEO
    assert info.size == len(VIDEO)
    requests = emu.stats()["requests"]
    assert requests["storage_initiate"] == 1 and requests["storage_upload"] == 1


class _Body(httpx.AsyncByteStream):
    """A response body that yields ``data`` then fails, like a dropped connection."""

    def __init__(self, data: bytes, *, fail: bool) -> None:
        self._data, self._fail = data, fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data
        if self._fail:
            raise httpx.ReadError("connection reset by peer")


def scripted(
    answers: list[httpx.Response], seen: list[httpx.Request]
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return handler


async def test_resume_answered_from_the_start_is_not_taken(
    make_client: Callable[..., PikaClient],
) -> None:
    seen: list[httpx.Request] = []
    answers = [
        httpx.Response(
            200, headers={"Content-Length": str(len(VIDEO))}, stream=_Body(VIDEO[:4000], fail=True)
        ),
        httpx.Response(200, content=VIDEO),
    ]
    http = httpx.AsyncClient(transport=httpx.MockTransport(scripted(answers, seen)))
    client = make_client("https://queue.test", http=http)
    written: list[bytes] = []
    with expect(TransportError, match="cannot be taken back"):
        await client.download(CDN, written.append)
    assert [request.headers.get("Range") for request in seen] == [None, "bytes=4000-"]
    assert b"".join(written) == VIDEO[:4000]


async def test_short_body_is_resumed_and_checked(make_client: Callable[..., PikaClient]) -> None:
    seen: list[httpx.Request] = []
    size = len(VIDEO)
    answers = [
        httpx.Response(
            200, headers={"Content-Length": str(size)}, stream=_Body(VIDEO[:6000], fail=False)
        ),
        httpx.Response(
            206,
            headers={"Content-Range": f"bytes 6000-{size - 1}/{size}"},
            content=VIDEO[6000:],
        ),
    ]
    http = httpx.AsyncClient(transport=httpx.MockTransport(scripted(answers, seen)))
    client = make_client("https://queue.test", http=http)
    written: list[bytes] = []

    async def write(chunk: bytes) -> None:
        written.append(chunk)

    info = await client.download(CDN, write)
    assert b"".join(written) == VIDEO
    assert info.size == size and info.sha256 == hashlib.sha256(VIDEO).hexdigest()
    assert seen[1].headers["Range"] == "bytes=6000-"
