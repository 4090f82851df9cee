"""Pictures to feed the flows, and a check of the videos they make."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image


def png_bytes(
    width: int = 320, height: int = 180, color: tuple[int, int, int] = (200, 60, 30)
) -> bytes:
    """A small PNG of one colour with a white square, so frames can be compared.

    >>> png_bytes()[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
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


def noise_png(side: int, seed: int = 7) -> bytes:
    """A PNG of random pixels: it does not compress (about 3 MB at 1024 px).

    >>> len(noise_png(64)) > 64 * 64 * 3
    True
    """
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


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


def stand_in_check(image: str, size_bytes: int = 1) -> Any:
    """An ``ImageCheck`` of a 64x64 PNG at ``image``, for tests that read no image.

    >>> stand_in_check("https://images.example/a.png").content_type
    'image/png'
    """
    from pika_tasks.images import ImageCheck

    return ImageCheck(
        image=image,
        size_bytes=size_bytes,
        width=64,
        height=64,
        format="PNG",
        sha256="0" * 64,
        content_type="image/png",
    )
