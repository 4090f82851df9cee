"""Rendering: a still image and a camera path become an H.264 MP4 (PyAV, libx264).

The image is fitted to the frame by *cover*: scaled until it fills the
whole frame, then centre-cropped (no black bars).  That fitted picture is
the first frame.  Around it a mirrored border of :data:`MARGIN` is added so
that moves which look past the edges (dolly out, pans) show a reflection
rather than black.  Each frame is then one Pillow ``resize`` of a view
rectangle of that canvas, converted to yuv420p and encoded with
``preset=ultrafast``.

All of this is CPU work: call :func:`render_video` from a worker thread.

Example:
    >>> from PIL import Image
    >>> from pika_tasks.emulator._motion import choose_motion
    >>> from pika_tasks.emulator._render import RenderSpec, render_video
    >>> spec = RenderSpec(width=320, height=180, fps=2, duration=5)
    >>> video = render_video(Image.new("RGB", (64, 48), "teal"), spec, choose_motion("", "", 0))
    >>> video[4:8]
    b'ftyp'
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image

from pika_tasks.emulator._motion import MAX_REACH, Motion

MARGIN = MAX_REACH + 0.01
"""Mirrored border around the fitted frame, as a fraction of its width and height."""

SIZES: dict[str, tuple[int, int]] = {"720p": (1280, 720), "1080p": (1920, 1080)}
"""Frame size of each resolution."""

X264_OPTIONS: dict[str, str] = {"preset": "ultrafast", "crf": "23", "threads": "1"}
"""Encoder settings: fast, deterministic (one thread), decent quality."""


@dataclass(frozen=True)
class RenderSpec:
    """What to render.

    Attributes:
        width: frame width in pixels (even).
        height: frame height in pixels (even).
        fps: frames per second.
        duration: length in seconds; the video has ``duration * fps`` frames.
    """

    width: int
    height: int
    fps: int
    duration: int

    @classmethod
    def for_resolution(cls, resolution: str, duration: int, fps: int) -> RenderSpec:
        """The spec for a ``"720p"`` or ``"1080p"`` video."""
        width, height = SIZES[resolution]
        return cls(width=width, height=height, fps=fps, duration=duration)

    @property
    def frames(self) -> int:
        """Number of frames."""
        return self.duration * self.fps


def fit_cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale ``image`` to fill ``width`` x ``height`` and centre-crop the overflow.

    This is exactly what the first frame of a video shows (before encoding).
    """
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    box_w, box_h = width / scale, height / scale
    left, top = (image.width - box_w) / 2.0, (image.height - box_h) / 2.0
    return image.resize(
        (width, height), Image.Resampling.BICUBIC, box=(left, top, left + box_w, top + box_h)
    )


def _canvas(fitted: Image.Image) -> tuple[Image.Image, int, int]:
    """The fitted frame with a mirrored border; returns it and the border sizes."""
    pad_x = math.ceil(fitted.width * MARGIN)
    pad_y = math.ceil(fitted.height * MARGIN)
    pixels = np.pad(np.asarray(fitted), ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), "symmetric")
    return Image.fromarray(pixels), pad_x, pad_y


def frame_boxes(spec: RenderSpec, motion: Motion) -> list[tuple[float, float, float, float]]:
    """The view rectangle of every frame, in fitted-frame pixel coordinates."""
    count = spec.frames
    boxes: list[tuple[float, float, float, float]] = []
    for index in range(count):
        progress = index / (count - 1) if count > 1 else 0.0
        zoom, x, y = motion.view(progress)
        view_w, view_h = spec.width / zoom, spec.height / zoom
        centre_x = spec.width * (0.5 + x)
        centre_y = spec.height * (0.5 + y)
        left, top = centre_x - view_w / 2.0, centre_y - view_h / 2.0
        boxes.append((left, top, left + view_w, top + view_h))
    return boxes


def render_video(image: Image.Image, spec: RenderSpec, motion: Motion) -> bytes:
    """Render ``image`` moving along ``motion`` to an H.264 MP4 and return its bytes.

    The file is written with ``movflags=+faststart`` (index first, so it
    plays while downloading), which needs a real file: a temporary one is
    used and removed.
    """
    fitted = fit_cover(image, spec.width, spec.height)
    canvas, pad_x, pad_y = _canvas(fitted)
    handle, path = tempfile.mkstemp(prefix="pika-emulator-", suffix=".mp4")
    os.close(handle)
    try:
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=spec.fps)
            stream.width = spec.width
            stream.height = spec.height
            stream.pix_fmt = "yuv420p"
            stream.options = dict(X264_OPTIONS)
            for index, (left, top, right, bottom) in enumerate(frame_boxes(spec, motion)):
                if index == 0:
                    picture = fitted
                else:
                    box = (left + pad_x, top + pad_y, right + pad_x, bottom + pad_y)
                    picture = canvas.resize(
                        (spec.width, spec.height), Image.Resampling.BILINEAR, box=box
                    )
                frame = av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        with open(path, "rb") as file:
            return file.read()
    finally:
        os.unlink(path)


def free_box_header(size: int) -> bytes:
    """The header of an ISO-BMFF ``free`` box of ``size`` bytes in total (at least 8).

    Players skip ``free`` boxes, so appending one keeps the MP4 valid.
    Sizes beyond 4 GiB use the 64-bit ``largesize`` form (16-byte header).
    """
    if size < 8:
        raise ValueError("a free box takes at least 8 bytes")
    if size < 1 << 32:
        return size.to_bytes(4, "big") + b"free"
    return (1).to_bytes(4, "big") + b"free" + size.to_bytes(8, "big")


def padding_for(length: int, min_bytes: int) -> tuple[bytes, int]:
    """How to pad a ``length``-byte MP4 to at least ``min_bytes``.

    Returns the ``free`` box header to append and the number of zero bytes
    that follow it (both empty/zero when no padding is needed).
    """
    missing = min_bytes - length
    if missing <= 0:
        return b"", 0
    size = max(missing, 8)
    if size >= 1 << 32:
        size = max(size, 16)
    header = free_box_header(size)
    return header, size - len(header)
