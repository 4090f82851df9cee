"""Transfer: our fetch path against a plain httpx stream copy of the same files.

"Ours" is the body of the ``fetch_video`` task without Prefect around it:
``PikaClient.result`` then ``PikaClient.download`` into
``pika_tasks.storage.atomic_writer_async`` (writes in a worker thread; a
temporary name and a move locally, a multipart upload completed at the end on S3).  The
baseline streams the same URL with ``httpx`` straight into ``fsspec.open``.
Both copy the same files one after another, alternating which goes first
in each round, to a local folder and to S3.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fsspec
import httpx

from bench.files import image_arguments, open_url

Copy = Callable[[int, str], Awaitable[int]]


def _remove(url: str, storage_options: dict[str, Any]) -> None:
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _make_bucket(url: str, storage_options: dict[str, Any]) -> None:
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    fs.mkdir(path.split("/", 1)[0])


async def run_transfer(
    files: int,
    repeats: int,
    image: Path,
    destinations: dict[str, tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    """Copy ``files`` videos ``repeats`` times per destination and method; return MB/s.

    Args:
        files: how many distinct videos (jobs) to fetch.
        repeats: rounds per destination; the first method alternates.
        image: the input image of the jobs.
        destinations: name -> (base URL, fsspec storage options).
    """
    from pika_tasks.client import PikaClient
    from pika_tasks.storage import atomic_writer_async

    arguments = image_arguments(image)
    async with PikaClient() as client, httpx.AsyncClient(timeout=120.0) as http:
        handles = [await client.submit(arguments) for _ in range(files)]
        await asyncio.gather(*(client.wait(handle) for handle in handles))
        urls = [(await client.result(handle)).video.url for handle in handles]

        async def ours(n: int, target: str) -> int:
            output = await client.result(handles[n])
            async with atomic_writer_async(target, options) as sink:
                info = await client.download(output.video.url, sink.writer, write_in_thread=True)
            return info.size

        async def plain(n: int, target: str) -> int:
            size = 0
            async with http.stream("GET", urls[n]) as response:
                response.raise_for_status()
                with open_url(target, options) as sink:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)
                        size += len(chunk)
            return size

        async def plain_checked(n: int, target: str) -> int:
            # The plain copy plus the SHA-256 that ours records: what checking costs.
            size, digest = 0, hashlib.sha256()
            async with http.stream("GET", urls[n]) as response:
                response.raise_for_status()
                with open_url(target, options) as sink:
                    async for chunk in response.aiter_bytes():
                        sink.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
            digest.hexdigest()
            return size

        methods: dict[str, Copy] = {"ours": ours, "httpx": plain, "httpx+sha256": plain_checked}
        results: dict[str, Any] = {}
        for name, (base, options) in destinations.items():
            if base.startswith("s3://"):
                await asyncio.to_thread(_make_bucket, base, options)
            totals = {method: [0, 0.0] for method in methods}
            for round_ in range(repeats):
                order = list(methods) if round_ % 2 == 0 else list(reversed(methods))
                for method in order:
                    folder = f"{base.rstrip('/')}/{method}-{round_}"
                    started = time.perf_counter()
                    for n in range(files):
                        totals[method][0] += await methods[method](n, f"{folder}/{n:03d}.mp4")
                    totals[method][1] += time.perf_counter() - started
                    await asyncio.to_thread(_remove, folder, options)
            results[name] = {
                method: {"bytes": int(size), "seconds": round(seconds, 3)}
                for method, (size, seconds) in totals.items()
            }
    return results
