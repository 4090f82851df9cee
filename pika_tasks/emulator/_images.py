"""Input images: read an ``image_url`` (http(s), ``data:`` URI, or a file on this server).

A problem with the image is not a validation error of the request: like
the live model, the job is accepted and then COMPLETES with an error.
:class:`ImageInputError` carries the error type the job reports:

- ``file_download_error``: the URL could not be fetched (status, network, timeout);
- ``image_too_large``: more than ``image_max_bytes`` (or too many pixels);
- ``image_load_error``: the bytes are not an image Pillow can decode.

Example:
    >>> from pika_tasks.emulator._images import decode_data_uri
    >>> decode_data_uri("data:text/plain;base64,aGk=", max_bytes=10)
    b'hi'
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import warnings
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

import httpx
from PIL import Image

LocalLookup = Callable[[str], bytes | None]
"""Returns the bytes of a URL served by this emulator, or ``None`` if it is not one."""


class ImageInputError(Exception):
    """The input image could not be used; the job completes with this error.

    Attributes:
        error_type: ``file_download_error``, ``image_too_large`` or ``image_load_error``.
        message: what went wrong, for the job's ``error`` and the result's ``detail``.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _too_large(max_bytes: int) -> ImageInputError:
    return ImageInputError("image_too_large", f"The image is larger than {max_bytes} bytes.")


def decode_data_uri(uri: str, *, max_bytes: int) -> bytes:
    """The bytes of a ``data:`` URI (base64 or percent-encoded).

    Raises:
        ImageInputError: malformed URI, or more than ``max_bytes`` bytes.
    """
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith("data:"):
        raise ImageInputError("image_load_error", "The data URI is malformed (no comma).")
    if header.endswith(";base64"):
        if len(payload) * 3 // 4 > max_bytes + 3:
            raise _too_large(max_bytes)
        try:
            data = base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ImageInputError("image_load_error", f"The data URI is not base64: {exc}") from exc
    else:
        data = unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


async def fetch_url(
    client: httpx.AsyncClient, url: str, *, max_bytes: int, time_limit: float
) -> bytes:
    """GET ``url`` with a total deadline and a size cap.

    Raises:
        ImageInputError: not 2xx, network error, deadline passed or too large.
    """
    try:
        async with asyncio.timeout(time_limit):
            async with client.stream("GET", url, follow_redirects=True) as response:
                if response.status_code >= 400:
                    raise ImageInputError(
                        "file_download_error",
                        f"Downloading the image failed with HTTP {response.status_code}.",
                    )
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise _too_large(max_bytes)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(max_bytes)
                    chunks.append(chunk)
                return b"".join(chunks)
    except TimeoutError as exc:
        raise ImageInputError(
            "file_download_error", f"Downloading the image took longer than {time_limit:g} s."
        ) from exc
    except httpx.HTTPError as exc:
        raise ImageInputError(
            "file_download_error", f"Downloading the image failed: {type(exc).__name__}."
        ) from exc


async def load_image_bytes(
    url: str,
    *,
    client: httpx.AsyncClient,
    local: LocalLookup,
    max_bytes: int,
    time_limit: float,
) -> bytes:
    """The raw bytes behind an ``image_url``.

    Args:
        url: ``data:`` URI, http(s) URL, or a URL of a file this emulator serves.
        client: HTTP client for remote URLs.
        local: resolves URLs of this emulator's own files without HTTP.
        max_bytes: size cap.
        time_limit: total deadline of a remote fetch, in seconds.

    Raises:
        ImageInputError: the URL cannot be read.
    """
    if url.startswith("data:"):
        return decode_data_uri(url, max_bytes=max_bytes)
    own = local(url)
    if own is not None:
        if len(own) > max_bytes:
            raise _too_large(max_bytes)
        return own
    if not url.startswith(("http://", "https://")):
        raise ImageInputError(
            "file_download_error", "The image URL must be http(s) or a data: URI."
        )
    return await fetch_url(client, url, max_bytes=max_bytes, time_limit=time_limit)


def decode_image(data: bytes) -> Image.Image:
    """Decode image bytes into an RGB Pillow image (CPU work: run it in a thread).

    Raises:
        ImageInputError: not an image, or a decompression bomb.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageInputError("image_too_large", "The image has too many pixels.") from exc
    except Exception as exc:
        raise ImageInputError(
            "image_load_error",
            f"The file at image_url is not a readable image ({type(exc).__name__}).",
        ) from exc
