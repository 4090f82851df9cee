"""A realistic workload: photo-sized JPEGs and PNGs, and manifests that point at them.

Every image is made at run time from a gradient plus Gaussian noise (seeded
by its index, so each one is distinct and the set is the same on every run),
which neither JPEG nor PNG can compress away: each file is between
:data:`MIN_BYTES` and :data:`MAX_BYTES`, within the size fal takes inline as a
``data:`` URI.  Even indexes are JPEGs (about 1600x1200), odd ones PNGs
(about 960x720).

Making thousands of them would take longer than the runs they feed, so a
manifest of N rows points its rows, each with its own id and prompt, at a
pool of a few dozen files in turn (row ``n`` uses image ``n % pool``).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> pool = make_photos(folder / "images", 2)
    >>> [path.suffix for path in pool]
    ['.jpg', '.png']
    >>> all(MIN_BYTES <= path.stat().st_size < MAX_BYTES for path in pool)
    True
    >>> manifest = write_photo_manifest(folder / "m.csv", 3, pool)
    >>> manifest.read_text().splitlines()[1:3]
    ['p00000,images/photo-000.jpg,slow zoom in,0', 'p00001,images/photo-001.png,slow zoom in,1']
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.files import PROMPT

MIN_BYTES = 1_000_000
"""Smallest photo, in bytes."""

MAX_BYTES = 1_950_000
"""Largest photo (exclusive), in bytes: under the flow's 2,000,000-byte ``data:`` URI limit."""

_SHAPES = {"JPEG": (1600, 1200), "PNG": (960, 720)}
_NOISE = {"JPEG": 34.0, "PNG": 10.0}


def _pixels(index: int, width: int, height: int, sigma: float) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:height, 0:width]
    phase = index % 7
    base = np.stack(
        [
            (x * 255 // width + 30 * phase) % 256,
            y * 255 // height,
            ((x + y) * 255 // (width + height) + 17 * phase) % 256,
        ],
        axis=-1,
    ).astype(np.float32)
    base += rng.normal(0.0, sigma, (height, width, 3)).astype(np.float32)
    return np.clip(base, 0, 255).astype(np.uint8)


def _encode(pixels: np.ndarray[Any, Any], fmt: str) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=90)
    else:
        # Level 1: noise does not compress at any level, and it is ten times faster.
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def photo_bytes(index: int) -> tuple[bytes, str]:
    """The ``index``-th photo and its format; its size is within [MIN_BYTES, MAX_BYTES)."""
    fmt = "JPEG" if index % 2 == 0 else "PNG"
    width, height = _SHAPES[fmt]
    # A little variety in size, so that rows are not all the same length.
    scale = 1.0 + 0.04 * (index % 5)
    width, height = int(width * scale) // 8 * 8, int(height * scale) // 8 * 8
    sigma = _NOISE[fmt]
    for _ in range(12):
        data = _encode(_pixels(index, width, height, sigma), fmt)
        if len(data) >= MAX_BYTES:
            width, height = width * 9 // 10, height * 9 // 10
        elif len(data) < MIN_BYTES:
            sigma *= 1.4
        else:
            return data, fmt
    raise RuntimeError(f"photo {index}: {len(data)} bytes, outside [{MIN_BYTES}, {MAX_BYTES})")


def make_photos(folder: Path, count: int) -> list[Path]:
    """Write ``count`` distinct photos into ``folder`` (``photo-NNN.jpg|png``); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        data, fmt = photo_bytes(index)
        path = folder / f"photo-{index:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def manifest_text(rows: int, images: Sequence[str], prompt: str = PROMPT) -> str:
    """A CSV manifest of ``rows`` rows (ids ``pNNNNN``) cycling through ``images``.

    Each row names its photo's index as its seed.  Without a seed the emulator
    derives one from the ``image_url``, which differs for every row whose
    image is sent as a signed URL (S3): every job would then render a video
    of its own, and the emulator's CPU, not the flow's, would set the pace.
    """
    lines = ["id,image,prompt,seed"]
    lines += [f"p{n:05d},{images[n % len(images)]},{prompt},{n % len(images)}" for n in range(rows)]
    return "\n".join(lines) + "\n"


def write_photo_manifest(path: Path, rows: int, pool: Sequence[Path]) -> Path:
    """A local CSV manifest whose rows name ``pool``'s images relative to the manifest."""
    names = [image.relative_to(path.parent).as_posix() for image in pool]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest_text(rows, names))
    return path


def upload_photo_manifest(
    url: str, rows: int, pool: Sequence[Path], storage_options: dict[str, Any]
) -> str:
    """Copy ``pool`` next to a CSV manifest at ``url`` (``s3://bucket/prefix/m.csv``); its URL.

    The manifest names the images relatively (``images/photo-000.jpg``), as a
    user who uploads a folder would.
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    folder = path.rsplit("/", 1)[0]
    bucket = folder.split("/", 1)[0]
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    names = []
    for image in pool:
        name = f"images/{image.name}"
        fs.pipe_file(f"{folder}/{name}", image.read_bytes())
        names.append(name)
    fs.pipe_file(path, manifest_text(rows, names).encode())
    return url
