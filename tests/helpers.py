"""Test helpers shared by several suites: images, video checks, a store that counts reads."""

from __future__ import annotations

import io
import socket
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import av
import fsspec
from fsspec.implementations.memory import MemoryFileSystem
from PIL import Image


def png_bytes(
    width: int = 320, height: int = 180, color: tuple[int, int, int] = (200, 60, 30)
) -> bytes:
    """A small PNG of one colour with a white square, so frames can be compared."""
    image = Image.new("RGB", (width, height), color)
    image.paste((255, 255, 255), (width // 4, height // 4, width // 2, height // 2))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_png(path: Path, **kwargs: Any) -> Path:
    """Write :func:`png_bytes` to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(**kwargs))
    return path


def probe_video(data: bytes) -> dict[str, Any]:
    """Decode an MP4 fully: codec, size, frame count and duration in seconds."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = float(stream.average_rate or stream.base_rate or 0)
        return {
            "codec": stream.codec_context.name,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
            "seconds": frames / rate if rate else 0.0,
        }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_manifest(folder: Path, rows: list[str], header: str = "id,image,prompt") -> Path:
    """Write ``manifest.csv`` and one distinct PNG per ``images/{n}.png`` it names."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for n in range(8):
        (folder / "images" / f"{n}.png").write_bytes(png_bytes(color=(30 * n, 90, 200 - 20 * n)))
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")
    return manifest


async def settled_task_runs(
    flow_run_id: Any, settled: Any, *, timeout: float = 30.0, interval: float = 0.05
) -> list[Any]:
    """The flow run's task runs from the Prefect API, once ``settled(runs)`` holds.

    The server records task runs from events, after the run has returned (a
    custom run name, for one, arrives as a rename): read them until they have
    settled, or until ``timeout`` passes, then return what was read last for the
    caller to assert on.
    """
    import asyncio
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    async with get_client() as api:
        while True:
            runs = await api.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if settled(runs) or time.monotonic() > deadline:
                return list(runs)
            await asyncio.sleep(interval)


class CountingMemoryFileSystem(MemoryFileSystem):
    """fsspec's memory store under ``countmem://``, counting every read of a file's bytes.

    ``before_read(path)`` (when set) runs before each read, in the reading
    thread: a test uses it to hold a read until something else has happened.
    """

    protocol = ("countmem",)
    reads: ClassVar[Counter[str]] = Counter()
    lock: ClassVar[threading.Lock] = threading.Lock()
    before_read: ClassVar[Callable[[str], None] | None] = None

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        # The same store and paths as memory://, under this protocol's name.
        if isinstance(path, str) and path.startswith("countmem://"):
            path = "memory://" + path.removeprefix("countmem://")
        return super()._strip_protocol(path)

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kwargs: Any) -> Any:
        hook = type(self).before_read
        if hook is not None:
            hook(self._strip_protocol(path))
        with self.lock:
            self.reads[self._strip_protocol(path)] += 1
        return super().cat_file(path, start=start, end=end, **kwargs)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" in mode:
            with self.lock:
                self.reads[self._strip_protocol(path)] += 1
        return super()._open(path, mode=mode, **kwargs)


fsspec.register_implementation("countmem", CountingMemoryFileSystem, clobber=True)
