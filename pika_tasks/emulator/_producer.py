"""Turning a job's input into a video: fetch the image, render off the event loop, cache.

:class:`VideoProducer` owns the worker threads that render and the HTTP
client that fetches images.  In fast mode it also keeps:

- a render cache: each distinct (image bytes, resolution, duration, fps,
  camera motion, padding) is rendered once; later jobs share the bytes;
- an image cache: each distinct http(s) ``image_url`` is fetched once.

Example:
    >>> import asyncio
    >>> from pika_tasks.emulator._config import EmulatorConfig
    >>> from pika_tasks.emulator._producer import VideoProducer
    >>> producer = VideoProducer(EmulatorConfig(fps=2))
    >>> asyncio.run(producer.aclose())
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from pika_tasks.emulator._config import EmulatorConfig
from pika_tasks.emulator._images import LocalLookup, decode_image, load_image_bytes
from pika_tasks.emulator._motion import Motion, choose_motion
from pika_tasks.emulator._render import RenderSpec, padding_for, render_video
from pika_tasks.emulator._stats import Stats
from pika_tasks.models import ImageToVideoInput

RENDER_CACHE_SIZE = 256
"""Videos kept by the fast-mode render cache (least recently used are dropped)."""

IMAGE_CACHE_SIZE = 64
"""Fetched images kept by the fast-mode image cache."""

_RenderKey = tuple[str, RenderSpec, Motion, int]


@dataclass(frozen=True)
class RenderedVideo:
    """A rendered MP4, already padded.

    Attributes:
        data: the MP4 bytes plus the header of its padding box, if any.
        zeros: zero bytes that follow ``data`` (the padding box body).
        motion: the camera path used.
        seconds: CPU wall time the render took (0 for a cache hit).
    """

    data: bytes
    zeros: int
    motion: Motion
    seconds: float

    @property
    def size(self) -> int:
        """Length of the whole file in bytes."""
        return len(self.data) + self.zeros


def _render(data: bytes, spec: RenderSpec, motion: Motion, min_bytes: int) -> RenderedVideo:
    started = time.perf_counter()
    video = render_video(decode_image(data), spec, motion)
    header, zeros = padding_for(len(video), min_bytes)
    return RenderedVideo(
        data=video + header, zeros=zeros, motion=motion, seconds=time.perf_counter() - started
    )


def _default_threads(config: EmulatorConfig) -> int:
    if config.render_threads is not None:
        return config.render_threads
    if config.fast:
        return 1
    return max(1, min(config.runners, os.cpu_count() or 1))


class VideoProducer:
    """Fetches input images and renders videos for the engine (event-loop side)."""

    def __init__(self, config: EmulatorConfig, stats: Stats | None = None) -> None:
        self._config = config
        self._stats = stats if stats is not None else Stats()
        self._executor = ThreadPoolExecutor(
            max_workers=_default_threads(config), thread_name_prefix="pika-emulator-render"
        )
        self._client: httpx.AsyncClient | None = None
        self._renders: OrderedDict[_RenderKey, asyncio.Future[RenderedVideo]] = OrderedDict()
        self._images: OrderedDict[str, bytes] = OrderedDict()

    def spec_for(self, request: ImageToVideoInput) -> RenderSpec:
        """The frame size, rate and length of the video for ``request``."""
        return RenderSpec.for_resolution(request.resolution, request.duration, self._config.fps)

    def motion_for(self, request: ImageToVideoInput, seed: int) -> Motion:
        """The camera path for ``request``."""
        return choose_motion(request.prompt, request.negative_prompt, seed)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._config.image_fetch_timeout)
        return self._client

    async def image_bytes(self, url: str, local: LocalLookup) -> bytes:
        """The bytes behind ``url`` (cached per URL in fast mode).

        Raises:
            ImageInputError: the URL cannot be read.
        """
        cached = self._images.get(url) if self._config.fast else None
        if cached is not None:
            self._images.move_to_end(url)
            return cached
        data = await load_image_bytes(
            url,
            client=self._http(),
            local=local,
            max_bytes=self._config.image_max_bytes,
            time_limit=self._config.image_fetch_timeout,
        )
        if self._config.fast and url.startswith(("http://", "https://")):
            self._images[url] = data
            while len(self._images) > IMAGE_CACHE_SIZE:
                self._images.popitem(last=False)
        return data

    async def render(self, data: bytes, spec: RenderSpec, motion: Motion) -> RenderedVideo:
        """Render in a worker thread; in fast mode reuse an earlier identical render.

        Raises:
            ImageInputError: the bytes are not a readable image.
        """
        loop = asyncio.get_running_loop()
        min_bytes = self._config.min_video_bytes
        if not self._config.fast:
            video = await loop.run_in_executor(
                self._executor, _render, data, spec, motion, min_bytes
            )
            self._count(video)
            return video
        key: _RenderKey = (hashlib.sha256(data).hexdigest(), spec, motion, min_bytes)
        future = self._renders.get(key)
        if future is not None and not (future.done() and future.cancelled()):
            self._renders.move_to_end(key)
            self._stats.render_cache_hits += 1
            video = await asyncio.shield(future)
            return RenderedVideo(video.data, video.zeros, video.motion, seconds=0.0)
        future = asyncio.ensure_future(
            loop.run_in_executor(self._executor, _render, data, spec, motion, min_bytes)
        )
        future.add_done_callback(self._forget_unless_success(key))
        self._renders[key] = future
        while len(self._renders) > RENDER_CACHE_SIZE:
            self._renders.popitem(last=False)
        video = await asyncio.shield(future)
        self._count(video)
        return video

    def _count(self, video: RenderedVideo) -> None:
        self._stats.renders += 1
        self._stats.render_seconds += video.seconds

    def _forget_unless_success(
        self, key: _RenderKey
    ) -> Callable[[asyncio.Future[RenderedVideo]], None]:
        def callback(future: asyncio.Future[RenderedVideo]) -> None:
            failed = future.cancelled() or future.exception() is not None
            if failed and self._renders.get(key) is future:
                del self._renders[key]

        return callback

    async def aclose(self) -> None:
        """Close the HTTP client and let the render threads wind down."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        for future in self._renders.values():
            future.cancel()
        self._renders.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
