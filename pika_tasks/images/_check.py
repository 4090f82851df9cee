"""Check an image: is it a decodable picture of an accepted format and size?

:func:`check_image` judges bytes (Pillow, no I/O); :func:`inspect_image` reads
an image (through :mod:`pika_tasks.images._fetch`, which refuses private
addresses) and checks it.  :class:`ImageLimits` says what is accepted, and
:class:`ImageCheck` is what a checked image is known by.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import warnings
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from pika_tasks._locations import HTTP_RE
from pika_tasks.errors import ImageError, ImageTooLargeError
from pika_tasks.images._fetch import read_image

__all__ = ["DEFAULT_LIMITS", "ImageCheck", "ImageLimits", "check_image", "inspect_image"]


class ImageLimits(BaseModel):
    """What :func:`inspect_image` accepts.

    Attributes:
        max_bytes: largest file, in bytes (25 MiB). Never more than
            ``max_bytes + 1`` bytes are kept while reading.
        min_side: smallest accepted width and height, in pixels.
        max_side: largest accepted width and height, in pixels.
        max_pixels: largest accepted width x height.
        formats: accepted formats, as Pillow names them.
        decode: decode every pixel, which also catches truncated JPEGs
            (``Image.verify`` alone does not); costs some CPU, in a thread.
        allow_private_addresses: fetch images from loopback, private and
            link-local addresses too, over http(s) and every other protocol
            whose URL names a host (off by default; see the module docs).
            Hosts given in ``storage_options`` are checked the same way, with
            the same switch.
        timeout_seconds: deadline for fetching one image, connect to last byte.
        max_redirects: redirects followed (each one checked) for http(s) images.
        local_root: when set, the folder local images must be in (a path or
            ``file://`` URL): an image whose local file is elsewhere once
            ``..`` and symbolic links are resolved is refused, whether given
            as a path, a ``file://`` URL or the end of a chained URL.  None
            (the default) reads local images from anywhere.

    Example:
        >>> ImageLimits(max_bytes=1_000_000, allow_private_addresses=True).max_side
        8192
        >>> import asyncio
        >>> inside = ImageLimits(local_root="/srv/in")
        >>> asyncio.run(inspect_image("/srv/in/../x.png", limits=inside))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pika_tasks.errors.ImageError: /srv/in/../x.png: is outside /srv/in, the folder ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    min_side: int = Field(default=64, ge=1)
    max_side: int = Field(default=8192, ge=1)
    max_pixels: int = Field(default=40_000_000, ge=1)
    formats: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP"})
    decode: bool = True
    allow_private_addresses: bool = False
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    local_root: str | None = Field(default=None, min_length=1)


DEFAULT_LIMITS = ImageLimits()
"""The limits used when none are given."""


class ImageCheck(BaseModel):
    """An image that passed :func:`inspect_image`.

    Serialises to JSON without the image's bytes (and pickles without them).

    Attributes:
        image: the location that was read.
        size_bytes: its size.
        width: width in pixels.
        height: height in pixels.
        format: Pillow's format name (``PNG``, ``JPEG``...).
        sha256: hex SHA-256 of the bytes.
        content_type: the MIME type (``image/png``...).
    """

    model_config = ConfigDict(frozen=True)

    image: str
    size_bytes: int
    width: int
    height: int
    format: str
    sha256: str
    content_type: str

    _data: bytes | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # Equal when the fields are: whether the bytes are kept does not matter.
        if not isinstance(other, ImageCheck):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(tuple(self.model_dump().values()))

    def drop_data(self) -> None:
        """Forget the image's bytes (kept by ``keep_data=True``) once they are not needed."""
        self._data = None

    def __getstate__(self) -> dict[Any, Any]:
        state: dict[Any, Any] = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private:
            state["__pydantic_private__"] = {**private, "_data": None}
        return state


def check_image(
    data: bytes, *, image: str = "<bytes>", limits: ImageLimits = DEFAULT_LIMITS
) -> ImageCheck:
    """Check that ``data`` is an image within ``limits``; blocking (Pillow).

    Args:
        data: the image file's bytes.
        image: its location, for messages and :attr:`ImageCheck.image`.
        limits: what is accepted.

    Returns:
        The :class:`ImageCheck` (without the bytes).

    Raises:
        ImageError: with the reason (too large, not an image, truncated...).

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("RGB", (100, 80)).save(buffer, "JPEG")
        >>> check_image(buffer.getvalue()).format
        'JPEG'
        >>> check_image(b"hello")
        Traceback (most recent call last):
        ...
        pika_tasks.errors.ImageError: <bytes>: is not an image (Pillow cannot identify it)
    """
    size = len(data)
    if size == 0:
        raise ImageError(image, "is empty")
    if size > limits.max_bytes:
        raise ImageTooLargeError(image, f"is larger than the limit of {limits.max_bytes} bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                format_name = opened.format or "unknown"
                width, height = opened.size
                _check_shape(image, format_name, width, height, limits)
                opened.verify()
            if limits.decode:
                with Image.open(io.BytesIO(data)) as decoded:
                    decoded.load()
        except ImageError:
            raise
        except UnidentifiedImageError as error:
            raise ImageError(image, "is not an image (Pillow cannot identify it)") from error
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageError(image, f"has too many pixels: {error}") from error
        except Exception as error:  # Pillow's parsers raise many kinds on damaged files.
            raise ImageError(image, f"is damaged or truncated ({error})") from error
    content_type = Image.MIME.get(format_name, f"image/{format_name.lower()}")
    return ImageCheck(
        image=image,
        size_bytes=size,
        width=width,
        height=height,
        format=format_name,
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
    )


def _check_shape(
    image: str, format_name: str, width: int, height: int, limits: ImageLimits
) -> None:
    if format_name not in limits.formats:
        accepted = ", ".join(sorted(limits.formats))
        raise ImageError(image, f"is a {format_name} image; accepted formats are {accepted}")
    if min(width, height) < limits.min_side:
        raise ImageError(
            image, f"is too small: {width}x{height}, sides must be at least {limits.min_side} px"
        )
    if max(width, height) > limits.max_side:
        raise ImageError(
            image, f"is too large: {width}x{height}, sides may be at most {limits.max_side} px"
        )
    if width * height > limits.max_pixels:
        raise ImageError(
            image, f"is too large: {width}x{height} is more than {limits.max_pixels} pixels"
        )


async def inspect_image(
    image: str,
    *,
    storage_options: dict[str, Any] | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
    keep_data: bool = False,
) -> ImageCheck:
    """Read an image and check it is usable as a first frame.

    Args:
        image: an http(s) URL, an fsspec URL (``s3://b/a.png``) or a local path.
        storage_options: fsspec options for the image's file system.
        limits: what is accepted; see :class:`ImageLimits`.
        keep_data: keep the bytes on the check for :func:`~pika_tasks.images.deliver_image`
            (otherwise they are dropped here and re-read when needed).

    Returns:
        The :class:`ImageCheck`.

    Raises:
        ImageError: not found, not an image, too large or small, refused address...
        ImageUnavailableError: a network failure worth retrying, or any other
            error of the image's store (e.g. an FTP server's reply).

    Example:
        >>> import asyncio
        >>> asyncio.run(inspect_image("/no/such/image.png"))
        Traceback (most recent call last):
        ...
        pika_tasks.errors.ImageError: /no/such/image.png: not found
    """
    data = await read_image(image, storage_options or {}, limits)
    check = await asyncio.to_thread(check_image, data, image=image, limits=limits)
    if keep_data and not HTTP_RE.match(image):
        check._data = data
    return check
