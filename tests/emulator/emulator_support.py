"""Helpers shared by the emulator tests: images, submits and status polls, video decoding."""

from __future__ import annotations

import base64
import io
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import httpx
import numpy as np
from PIL import Image, ImageDraw
from support import wait_until

ENDPOINT = "/fal-ai/pika/v2.2/image-to-video"


def sample_image(width: int = 400, height: int = 300) -> Image.Image:
    """A picture with structure (gradient, shapes) so that fitting errors show."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 0] = x[None, :]
    pixels[..., 1] = y[:, None]
    pixels[..., 2] = 128
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.3, height * 0.3, width * 0.6, height * 0.7), fill=(250, 250, 40))
    draw.rectangle((width * 0.7, height * 0.1, width * 0.9, height * 0.4), fill=(20, 20, 200))
    return image


def png_bytes(image: Image.Image | None = None) -> bytes:
    """``image`` (default :func:`sample_image`) encoded as PNG."""
    buffer = io.BytesIO()
    (image or sample_image()).save(buffer, "PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data`` as a base64 ``data:`` URI."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def submit(
    client: httpx.Client,
    base: str,
    *,
    image_url: str,
    prompt: str = "a calm scene",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Submit a job and return the 200 answer's JSON."""
    response = client.post(
        f"{base}{ENDPOINT}",
        json={"image_url": image_url, "prompt": prompt, **fields},
        headers=headers,
        params=params,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_completed(
    client: httpx.Client,
    status_url: str,
    *,
    timeout: float = 20.0,
    logs: bool = False,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll a status URL until 200 COMPLETED; return that status JSON."""
    answer: dict[str, Any] = {}

    def done() -> bool:
        params = {"logs": "1" if logs else "0"}
        response = client.get(status_url, params=params, headers=headers)
        assert response.status_code in (200, 202), response.text
        answer.clear()
        answer.update(response.json())
        return response.status_code == 200

    wait_until(done, timeout=timeout)
    assert answer["status"] == "COMPLETED"
    return answer


@dataclass
class DecodedVideo:
    """What PyAV reads back from an MP4."""

    codec: str
    width: int
    height: int
    frames: list[np.ndarray]
    fps: float


def decode_video(data: bytes) -> DecodedVideo:
    """Decode every frame of an MP4 to RGB arrays."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return DecodedVideo(
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frames=frames,
            fps=float(stream.average_rate or 0),
        )


@dataclass
class LoopbackHttp:
    """A tiny HTTP server: GET serves ``body``; POST bodies are queued in ``posts``.

    Every POST is also queued with its headers in ``deliveries`` (accepted or
    not); the first ``refuse`` POSTs are answered 500 and left out of ``posts``.
    """

    body: bytes = b""
    content_type: str = "image/png"
    refuse: int = 0
    posts: queue.Queue[bytes] = field(default_factory=queue.Queue)
    deliveries: queue.Queue[tuple[dict[str, str], bytes]] = field(default_factory=queue.Queue)
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LoopbackHttp:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", owner.content_type)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                owner.deliveries.put((dict(self.headers.items()), data))
                with owner._lock:
                    refused = owner.refuse > 0
                    owner.refuse -= 1 if refused else 0
                if not refused:
                    owner.posts.put(data)
                self.send_response(500 if refused else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


def sse_statuses(client: httpx.Client, status_url: str) -> Iterator[dict[str, Any]]:
    """The status objects of a status stream, in order, until it closes."""
    import json

    from httpx_sse import connect_sse

    with connect_sse(client, "GET", f"{status_url}/stream") as source:
        assert source.response.status_code == 200
        for event in source.iter_sse():
            yield json.loads(event.data)
