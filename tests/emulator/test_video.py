"""Rendered videos: real H.264, right size and length, the input as first frame, Range."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
from emulator_support import (
    data_uri,
    decode_video,
    png_bytes,
    sample_image,
    submit,
    wait_completed,
)

from pika_tasks.emulator._render import fit_cover


def _video(client: httpx.Client, base: str, **fields: Any) -> tuple[dict[str, Any], bytes]:
    answer = submit(client, base, **fields)
    wait_completed(client, answer["status_url"], timeout=60)
    result = client.get(answer["response_url"]).json()
    video = client.get(result["video"]["url"])
    assert video.status_code == 200
    return result, video.content


def test_720p_video_is_h264_with_the_input_as_first_frame(
    make_emulator: Callable[..., Any], client: httpx.Client
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=4)
    image = sample_image(400, 300)  # 4:3 into 16:9: cover crops top and bottom
    result, data = _video(
        client, emu.url, image_url=data_uri(png_bytes(image)), prompt="slow zoom in"
    )
    decoded = decode_video(data)
    assert decoded.codec == "h264"
    assert (decoded.width, decoded.height) == (1280, 720)
    assert len(decoded.frames) == 5 * 4
    assert round(decoded.fps) == 4
    expected = np.asarray(fit_cover(image, 1280, 720), dtype=np.float32)
    first = decoded.frames[0].astype(np.float32)
    assert np.abs(first - expected).mean() < 6.0
    last = decoded.frames[-1].astype(np.float32)
    assert np.abs(last - expected).mean() > 10.0  # the camera moved
    assert result["video"]["file_size"] == len(data)
    assert data[4:8] == b"ftyp"


def test_1080p_ten_seconds(make_emulator: Callable[..., Any], client: httpx.Client) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2)
    _, data = _video(
        client,
        emu.url,
        image_url=data_uri(png_bytes(sample_image(200, 400))),
        prompt="pan left",
        resolution="1080p",
        duration=10,
    )
    decoded = decode_video(data)
    assert (decoded.width, decoded.height, len(decoded.frames)) == (1920, 1080, 20)


def test_same_input_same_video_and_prompt_changes_motion(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2, runners=3)
    _, first = _video(client, emu.url, image_url=image_uri, prompt="orbit", seed=5)
    _, again = _video(client, emu.url, image_url=image_uri, prompt="orbit", seed=5)
    _, other = _video(client, emu.url, image_url=image_uri, prompt="dolly out", seed=5)
    assert first == again
    assert first != other
    a, b = decode_video(first).frames, decode_video(other).frames
    assert np.abs(a[0].astype(int) - b[0].astype(int)).mean() < 3.0  # same first frame
    assert np.abs(a[-1].astype(int) - b[-1].astype(int)).mean() > 10.0  # different moves


def test_min_video_bytes_pads_with_a_valid_box(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2, min_video_bytes=3_000_000)
    result, data = _video(client, emu.url, image_url=image_uri)
    assert len(data) == result["video"]["file_size"] == 3_000_000
    assert len(decode_video(data).frames) == 10
    assert emu.stats()["bytes_served"] >= 3_000_000


def test_range_requests_resume_a_download(
    emulator: Any, client: httpx.Client, image_uri: str
) -> None:
    result, data = _video(client, emulator.url, image_url=image_uri)
    url = result["video"]["url"]
    size = len(data)
    part = client.get(url, headers={"Range": f"bytes={size // 2}-"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes {size // 2}-{size - 1}/{size}"
    assert int(part.headers["content-length"]) == size - size // 2
    assert data[: size // 2] + part.content == data
    middle = client.get(url, headers={"Range": "bytes=10-19"})
    assert (middle.status_code, middle.content) == (206, data[10:20])
    tail = client.get(url, headers={"Range": "bytes=-5"})
    assert tail.content == data[-5:]
    beyond = client.get(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    stale = client.get(url, headers={"Range": "bytes=10-19", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == data
    head = client.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == size
    assert head.headers["accept-ranges"] == "bytes" and head.content == b""
    assert client.get(f"{emulator.url}/files/nope.mp4").status_code == 404
