"""Deliver a checked image to fal: which URL fal is given, and how it was made.

* an http(s) URL is passed through unchanged;
* an object on a store that signs URLs (S3, GCS, Azure: fsspec's ``fs.sign``)
  is passed as a signed URL valid for an hour;
* anything else (local files, ``memory://``, stores that cannot sign) becomes
  a ``data:`` URI when it is at most 2,000,000 bytes, and is otherwise
  uploaded through the ``upload`` callable (fal's storage).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import posixpath
import re
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from pika_tasks._locations import HTTP_RE, display_location
from pika_tasks.errors import ImageError
from pika_tasks.images._check import ImageCheck
from pika_tasks.images._fetch import open_store, reread_checked

__all__ = ["DeliveredImage", "ImageSource", "Uploader", "deliver_image", "deliver_image_url"]

# The package's name, as before it was split: logging configuration keeps working.
logger = logging.getLogger("pika_tasks.images")

Uploader = Callable[[bytes, str, str], Awaitable[str]]
"""``upload(data, content_type, file_name) -> url``: puts bytes where fal can fetch them."""

_FILE_NAME_DROP_RE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


class ImageSource(StrEnum):
    """How fal gets an image."""

    HTTP = "http"
    """An http(s) URL from the manifest, passed through unchanged."""
    SIGNED_URL = "signed_url"
    """A time-limited signed URL of an object on S3, GCS or Azure."""
    DATA_URI = "data_uri"
    """The bytes inline, as a base64 ``data:`` URI."""
    UPLOAD = "upload"
    """The bytes uploaded to fal's storage; the URL it returned."""


class DeliveredImage(BaseModel):
    """The URL fal should fetch, and how it was made."""

    model_config = ConfigDict(frozen=True)

    url: str
    source: ImageSource

    def __repr__(self) -> str:
        # A data URI can be megabytes long.
        shown = self.url if len(self.url) <= 80 else self.url[:77] + "..."
        return f"DeliveredImage(url={shown!r}, source={self.source.value!r})"

    __str__ = __repr__


async def deliver_image(
    check: ImageCheck,
    *,
    storage_options: dict[str, Any] | None = None,
    upload: Uploader | None = None,
    data_uri_max_bytes: int = 2_000_000,
    sign_expires_seconds: int = 3600,
    sign_urls: bool = True,
) -> DeliveredImage:
    """Give fal a URL for a checked image, and say how it was made.

    See :func:`deliver_image_url`, which returns only the URL.
    """
    image = check.image
    if HTTP_RE.match(image):
        return DeliveredImage(url=image, source=ImageSource.HTTP)
    options = storage_options or {}
    try:
        if sign_urls:
            signed = await asyncio.to_thread(_sign, image, options, sign_expires_seconds)
            if signed is not None:
                return DeliveredImage(url=signed, source=ImageSource.SIGNED_URL)
        data = check._data
        if data is None:
            data = await asyncio.to_thread(reread_checked, check, options)
        if len(data) <= data_uri_max_bytes:
            encoded = base64.b64encode(data).decode("ascii")
            return DeliveredImage(
                url=f"data:{check.content_type};base64,{encoded}", source=ImageSource.DATA_URI
            )
        if upload is None:
            raise ImageError(
                image,
                f"is {len(data)} bytes, more than the {data_uri_max_bytes} bytes sent inline, "
                "and no uploader was given",
            )
        url = await upload(data, check.content_type, _upload_name(image, check.format))
        return DeliveredImage(url=url, source=ImageSource.UPLOAD)
    finally:
        # The bytes served their purpose (or a retry re-reads them): free them now.
        check.drop_data()


async def deliver_image_url(
    check: ImageCheck,
    *,
    storage_options: dict[str, Any] | None = None,
    upload: Uploader | None = None,
    data_uri_max_bytes: int = 2_000_000,
    sign_expires_seconds: int = 3600,
    sign_urls: bool = True,
) -> str:
    """The URL fal should fetch for a checked image.

    * http(s) URLs pass through unchanged.
    * Objects on stores that sign URLs (``fs.sign``: S3, GCS, Azure) become
      signed URLs valid ``sign_expires_seconds``; set ``sign_urls=False`` when
      fal cannot reach the store (e.g. a MinIO on a private network).
    * Anything else becomes a base64 ``data:`` URI when it is at most
      ``data_uri_max_bytes``, else the URL ``upload(data, content_type,
      file_name)`` returns (pass ``PikaClient.upload``).

    Args:
        check: from :func:`inspect_image`.
        storage_options: fsspec options for the image's file system.
        upload: async uploader for large images, or None.
        data_uri_max_bytes: largest image sent inline (fal refuses data URIs
            of a few MB).
        sign_expires_seconds: lifetime of signed URLs; it must cover the time
            the job waits in fal's queue.
        sign_urls: try ``fs.sign`` for store objects.

    Returns:
        The URL for :meth:`ManifestRow.to_input <pika_tasks.manifest.ManifestRow.to_input>`.

    Raises:
        ImageError: too large to inline and no uploader, or the image changed
            since inspection.  (A store that fails to sign, e.g. GCS with user
            credentials, is logged and the bytes are sent instead.)

    Example:
        >>> import asyncio
        >>> check = ImageCheck(image="https://example.com/a.png", size_bytes=1, width=64,
        ...                    height=64, format="PNG", sha256="0" * 64, content_type="image/png")
        >>> asyncio.run(deliver_image_url(check))
        'https://example.com/a.png'
    """
    delivered = await deliver_image(
        check,
        storage_options=storage_options,
        upload=upload,
        data_uri_max_bytes=data_uri_max_bytes,
        sign_expires_seconds=sign_expires_seconds,
        sign_urls=sign_urls,
    )
    return delivered.url


def _sign(image: str, options: dict[str, Any], expires: int) -> str | None:
    """A signed http(s) URL for the object, or None when its store cannot sign."""
    fs, path = open_store(image, options)
    try:
        url = fs.sign(path, expiration=expires)
    except NotImplementedError:
        return None
    except Exception as error:  # back-ends raise their own credential errors
        # E.g. GCS with user credentials cannot sign; the bytes still reach fal.
        logger.warning(
            "cannot sign a URL for %s (%s); sending the image's bytes instead",
            display_location(image),
            error,
        )
        return None
    return url if isinstance(url, str) and HTTP_RE.match(url) else None


def _upload_name(image: str, format_name: str) -> str:
    base = posixpath.basename(image.split("::", 1)[0].replace("\\", "/"))
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = _FILE_NAME_DROP_RE.sub("-", stem).strip("-.")[:100] or "image"
    return f"{stem}.{_EXTENSIONS.get(format_name, format_name.lower())}"
