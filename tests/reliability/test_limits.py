"""Limits: image bytes, sides and pixels, prompt lengths, and a deadline on every network
call a remote could leave hanging: connect, read, the status stream, image fetches and
video downloads.

The hanging remotes are tiny raw servers on 127.0.0.1 (see ``reliability_support``):
a listen queue that is full (a connection attempt gets no answer), a server that
reads a request and never answers, a status stream that sends its headers and then
nothing, and files that trickle out a byte at a time.  Each test bounds its own time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
from prefect import flow
from reliability_support import (
    dripping_server,
    full_backlog_port,
    png_header_only,
    silent_server,
    solid_png,
    sparse_file,
    stalling_stream_server,
)
from support import free_port, handle_at, png_bytes, settings_for

from pika_tasks import PikaClient, fetch_video
from pika_tasks.errors import DownloadTimeoutError, SubmitOutcomeUnknownError, TransportError
from pika_tasks.images import ImageError, ImageLimits, ImageUnavailableError, inspect_image
from pika_tasks.manifest import MAX_PROMPT_CHARS, read_manifest
from pika_tasks.storage import TEMP_MARKER

pytestmark = pytest.mark.timeout(60)

ARGS = {"image_url": "https://example.com/a.png", "prompt": "zoom in"}


def client_at(url: str, **settings: Any) -> PikaClient:
    """A client for ``url`` with short timeouts and quick polls."""
    quick = {"connect_timeout": 0.3, "read_timeout": 0.3, "poll_interval": 0.02}
    return PikaClient(settings_for(url, **{**quick, "max_poll_interval": 0.05, **settings}))


async def timed(call: Awaitable[Any]) -> tuple[float, BaseException | None]:
    """Seconds ``call`` took, and what it raised."""
    started = time.monotonic()
    try:
        await call
    except Exception as error:
        return time.monotonic() - started, error
    return time.monotonic() - started, None


# --------------------------------------------------------------------------- images


async def test_image_bytes_limit_is_exact(tmp_path: Path) -> None:
    """An image of exactly ``max_bytes`` passes, one byte more fails; so do huge files."""
    data = png_bytes(96, 96)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    check = await inspect_image(str(path), limits=ImageLimits(max_bytes=len(data)))
    assert check.size_bytes == len(data)
    with pytest.raises(ImageError, match=f"larger than the limit of {len(data) - 1} bytes"):
        await inspect_image(str(path), limits=ImageLimits(max_bytes=len(data) - 1))
    # A 30 MB file is refused from its size alone, by default (25 MiB).
    huge = sparse_file(tmp_path / "huge.png", 30 * 1024 * 1024)
    with pytest.raises(ImageError, match=r"larger than the limit of 26214400 bytes \(31457280\)"):
        await inspect_image(str(huge))


@pytest.mark.parametrize(
    ("size", "accepted", "reason"),
    [
        ((64, 64), True, None),
        ((63, 200), False, "is too small: 63x200, sides must be at least 64 px"),
        ((8192, 64), True, None),
        ((8193, 64), False, "is too large: 8193x64, sides may be at most 8192 px"),
    ],
)
async def test_image_side_limits_are_exact(
    tmp_path: Path, size: tuple[int, int], accepted: bool, reason: str | None
) -> None:
    """Sides of 64 and 8192 px pass; 63 and 8193 px fail with the limit named."""
    path = tmp_path / "side.png"
    path.write_bytes(solid_png(*size))
    if accepted:
        assert (await inspect_image(str(path))).width == size[0]
    else:
        with pytest.raises(ImageError) as info:
            await inspect_image(str(path))
        assert info.value.reason == reason


async def test_pixel_bombs_are_refused_from_their_header(tmp_path: Path) -> None:
    # 8000 x 8000: each side allowed, 64 M pixels are not; decoding would need ~190 MB.
    """Too many pixels are refused before any decoding, by our limit or Pillow's."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(8000, 8000))
    with pytest.raises(ImageError) as info:
        await inspect_image(str(path))
    assert info.value.reason == "is too large: 8000x8000 is more than 40000000 pixels"
    # With every limit of ours lifted, Pillow's own guard still refuses 900 M pixels.
    path.write_bytes(png_header_only(30_000, 30_000))
    loose = ImageLimits(max_side=100_000, max_pixels=10**12)
    with pytest.raises(ImageError, match="has too many pixels"):
        await inspect_image(str(path), limits=loose)


@pytest.mark.timeout(20)
async def test_an_image_that_trickles_in_is_cut_at_its_deadline() -> None:
    # One byte every 50 ms: no single read ever waits long, only the total deadline helps.
    """An http image sent a byte at a time fails at the fetch deadline, not never."""
    async with dripping_server(size=10_000, every=0.05) as server:
        limits = ImageLimits(timeout_seconds=1.0, allow_private_addresses=True)
        seconds, error = await timed(inspect_image(f"{server.url}/files/a.png", limits=limits))
    assert isinstance(error, ImageUnavailableError), error
    assert "timed out after 1 s" in str(error)
    assert 1.0 <= seconds < 3.0


# --------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_prompt_lengths_are_limited_exactly(fmt: str) -> None:
    """Prompts and negative prompts of 2000 characters pass, longer ones fail their row."""
    at_limit, over = "a" * MAX_PROMPT_CHARS, "b" * (MAX_PROMPT_CHARS + 1)
    rows = [
        {"id": "ok", "image": "a.png", "prompt": at_limit, "negative_prompt": at_limit},
        {"id": "long", "image": "a.png", "prompt": over, "negative_prompt": ""},
        {"id": "long-negative", "image": "a.png", "prompt": "p", "negative_prompt": over},
        {"id": "huge", "image": "a.png", "prompt": "c" * 100_000, "negative_prompt": ""},
    ]
    url = f"memory://limits-{fmt}/manifest.{fmt}"
    if fmt == "csv":
        text = "id,image,prompt,negative_prompt\n" + "".join(
            ",".join(row.values()) + "\n" for row in rows
        )
    else:
        text = "".join(json.dumps(row) + "\n" for row in rows)
    fsspec.filesystem("memory").pipe(url, text.encode())
    manifest = read_manifest(url)
    assert [row.id for row in manifest.rows] == ["ok"]
    assert len(manifest.rows[0].prompt) == MAX_PROMPT_CHARS
    assert [str(error) for error in manifest.errors] == [
        f"row 2, field 'prompt': is {MAX_PROMPT_CHARS + 1} characters long; "
        f"the limit is {MAX_PROMPT_CHARS}",
        f"row 3, field 'negative_prompt': is {MAX_PROMPT_CHARS + 1} characters long; "
        f"the limit is {MAX_PROMPT_CHARS}",
        f"row 4, field 'prompt': is 100000 characters long; the limit is {MAX_PROMPT_CHARS}",
    ]


# --------------------------------------------------------------------------- connect


async def test_a_connection_that_is_never_accepted_times_out_and_is_safe_to_resend() -> None:
    """A connect that hangs times out; a submit that never connected is resent, boundedly."""
    with full_backlog_port() as port:
        async with client_at(f"http://127.0.0.1:{port}") as client:
            seconds, error = await timed(client.submit(ARGS))
            status_seconds, status_error = await timed(
                client.status(handle_at(client.settings.queue_url))
            )
    # Never connected, so never sent: a submit may be (and was) resent, and fails as a
    # transport error, never as "outcome unknown".
    for spent, failure in ((seconds, error), (status_seconds, status_error)):
        assert isinstance(failure, TransportError), failure
        assert not isinstance(failure, SubmitOutcomeUnknownError)
        assert "ConnectTimeout" in str(failure)
        assert 3 * 0.3 <= spent < 3 * 0.3 + 2.0  # three attempts, each cut at 0.3 s


async def test_a_refused_connection_fails_fast() -> None:
    """Nothing listening: a transport error at once, after the bounded retries."""
    async with client_at(f"http://127.0.0.1:{free_port()}") as client:
        seconds, error = await timed(client.submit(ARGS))
    assert isinstance(error, TransportError) and "ConnectError" in str(error)
    assert seconds < 2.0


# --------------------------------------------------------------------------- read


async def test_a_submit_without_an_answer_is_never_resent() -> None:
    """A submit whose answer never comes is reported as of unknown outcome, sent once."""
    async with silent_server() as server, client_at(server.url) as client:
        seconds, error = await timed(client.submit(ARGS))
    assert isinstance(error, SubmitOutcomeUnknownError), error
    assert "ReadTimeout" in str(error)
    assert server.paths() == ["POST /fal-ai/pika/v2.2/image-to-video"]  # sent once, only once
    assert 0.3 <= seconds < 2.0


def _calls(client: PikaClient, url: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Each idempotent call of the client, aimed at ``url``."""
    handle = handle_at(url)
    return {
        "status": lambda: client.status(handle),
        "result": lambda: client.result(handle),
        "cancel": lambda: client.cancel(handle),
        "download": lambda: client.download(f"{url}/files/video.mp4", lambda chunk: None),
        "upload": lambda: client.upload(b"png", content_type="image/png"),
    }


@pytest.mark.parametrize("call", ["status", "result", "cancel", "download", "upload"])
async def test_calls_without_an_answer_time_out_and_retry_a_bounded_number_of_times(
    call: str,
) -> None:
    """Idempotent calls to a server that never answers fail after max_retries read timeouts."""
    async with silent_server() as server, client_at(server.url) as client:
        seconds, error = await timed(_calls(client, server.url)[call]())
    assert isinstance(error, TransportError), error
    assert "ReadTimeout" in str(error)
    assert len(server.requests) == 3  # the first try and max_retries=2 retries
    assert 3 * 0.3 <= seconds < 3 * 0.3 + 2.0


# --------------------------------------------------------------------------- the status stream


async def test_a_silent_status_stream_falls_back_to_polling_within_its_idle_timeout() -> None:
    """A stream that sends headers and then nothing is dropped after sse_idle_timeout."""
    async with (
        stalling_stream_server() as server,
        client_at(server.url, sse_idle_timeout=0.5, read_timeout=5.0) as client,
    ):
        seconds, error = await timed(client.wait(handle_at(server.url), timeout=10))
    assert error is None
    paths = server.paths()
    assert paths[0] == "GET /fal-ai/pika/requests/req-1/status/stream"
    assert paths[1:] == ["GET /fal-ai/pika/requests/req-1/status"]  # one poll said COMPLETED
    assert 0.5 <= seconds < 0.5 + 2.0


# --------------------------------------------------------------------------- downloads


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("task_timeout", "download_timeout", "error", "at_least"),
    [
        # fetch_video's timeout_seconds stops it long before download_timeout (900 s).
        (1.5, None, TimeoutError, 0.0),
        # With no task timeout, the client's download_timeout stops it.
        (None, 1.0, DownloadTimeoutError, 1.0),
    ],
    ids=["task-timeout", "download-timeout"],
)
async def test_a_trickling_download_is_stopped_in_time_and_leaves_no_file(
    task_timeout: float | None,
    download_timeout: float | None,
    error: type[Exception],
    at_least: float,
    tmp_path: Path,
) -> None:
    """A video sent a byte at a time (one every 50 ms never trips the 0.3 s read timeout)
    is stopped by whichever bound is set, and leaves no file behind."""
    destination = tmp_path / "video.mp4"
    limits = {} if download_timeout is None else {"download_timeout": download_timeout}
    async with dripping_server(size=100_000, every=0.05) as server:
        handle = handle_at(server.url).model_copy(update={"response_url": f"{server.url}/result"})
        bounded = fetch_video.with_options(timeout_seconds=task_timeout, retries=0)

        @flow(name="limits-trickling-download")
        async def fetch(settings_url: str) -> Any:
            settings = settings_for(settings_url, read_timeout=0.3, **limits)
            return await bounded(handle, str(destination), settings=settings)

        started = time.monotonic()
        state = await fetch(server.url, return_state=True)
        seconds = time.monotonic() - started
    assert state.is_failed()
    with pytest.raises(error):
        await state.aresult()
    assert at_least <= seconds < (task_timeout or download_timeout or 0) + 5.0
    assert not destination.exists()
    assert not [path for path in tmp_path.iterdir() if TEMP_MARKER in path.name]
