"""Synchronous file helpers used from async code (kept apart so the loop code stays clear).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.mp4").write_bytes(b"xy")
    >>> count_videos(folder)
    (1, 2)
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import IO, Any

import fsspec
from PIL import Image

PROMPT = "slow zoom in"
"""The prompt of every row: the same work for every variant."""


def make_image(path: Path) -> Path:
    """Write the PNG every row of every variant uses (320x180) and return its path."""
    image = Image.new("RGB", (320, 180), (200, 60, 30))
    image.paste((255, 255, 255), (80, 45, 160, 90))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def image_arguments(path: Path) -> dict[str, Any]:
    """The job input for ``path``: the same ``data:`` URI the batch flow sends for a small image."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"image_url": f"data:image/png;base64,{encoded}", "prompt": PROMPT}


def write_manifest(folder: Path, rows: int, image: Path) -> Path:
    """A CSV manifest of ``rows`` rows, all of them the image ``image`` copied beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "frame.png").write_bytes(image.read_bytes())
    lines = ["id,image,prompt", *(f"r{n:05d},frame.png,{PROMPT}" for n in range(rows))]
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def open_local(path: Path) -> IO[bytes]:
    """Open a local file for writing, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "wb")


def open_url(url: str, storage_options: dict[str, Any]) -> Any:
    """``fsspec.open(url, "wb")``: an open file at any fsspec URL."""
    return fsspec.open(url, "wb", **storage_options).open()


def count_videos(folder: Path) -> tuple[int, int]:
    """Non-empty ``*.mp4`` files in ``folder`` (hidden temporaries aside), and their bytes."""
    count = size = 0
    for path in folder.glob("*.mp4"):
        if path.name.startswith("."):
            continue
        length = path.stat().st_size
        if length > 0:
            count += 1
            size += length
    return count, size
