"""Images: check a first frame before paying for a video, then hand fal a URL it can fetch.

Two steps, usually a little apart in a batch run:

1. :func:`inspect_image` reads the image once (fsspec for paths and store
   URLs, httpx for http(s) URLs), checks that it is a decodable PNG, JPEG,
   WebP, GIF or BMP within :class:`ImageLimits`, and returns an
   :class:`ImageCheck` (size, dimensions, format, SHA-256).  Bad images fail
   here, before anything is submitted or billed.
2. :func:`resolve_image_url` picks how fal gets the image (an
   :class:`ImageSource`):

   * an http(s) URL is passed through unchanged;
   * an object on a store that signs URLs (S3, GCS, Azure: fsspec's
     ``fs.sign``) is passed as a signed URL valid for an hour;
   * anything else (local files, ``memory://``, stores that cannot sign)
     becomes a ``data:`` URI when it is at most 2,000,000 bytes, and is
     otherwise uploaded through the ``upload`` callable (fal's storage).

Memory: by default the bytes read by :func:`inspect_image` are dropped once
checked, because a batch inspects every row before submitting any;
:func:`resolve_image_url` re-reads the image when it needs the bytes (data
URI or upload) and refuses it if its SHA-256 changed in between.  Pass
``keep_data=True`` to keep them on the check (never serialised or pickled)
when resolving right after inspecting.

Private addresses: images are fetched only from public addresses, over every
protocol whose URL names a network host: http(s), and fsspec's ``ftp``,
``sftp``, ``ssh``, ``smb``, ``hdfs``, ``webhdfs`` and any other protocol not
known to name something else (each part of a chained URL is checked).  Every
address the host resolves to, and every redirect hop of http(s), is checked;
loopback, private, link-local (cloud metadata), shared, multicast and
reserved ranges are refused, however the address is written (``2130706433``,
``127.1``, ``[::ffff:127.0.0.1]``, ``user@host``; fsspec splits chained URLs
at ``::``, so a store URL with such an IPv6 host is refused as invalid before
anything is opened).  Object stores (``s3``,
``gs``, ``az``, ``abfs``...), whose URL names a bucket or container, and
``file``, ``memory`` and ``data`` URLs name no host and are not checked.
Hosts given in ``storage_options`` are checked by the same rules whenever an
image is read with them (any image but http(s) URLs and local or in-memory
files, which do not use them): every URL in an option's text (``endpoint_url``,
``client_kwargs.endpoint_url``, a connection string's endpoints, proxies...)
and every option named like a host (``host``, ``hostname``, ``server``,
``endpoint``, ``proxy``, ``*_host``...), at any depth; options that hold
credentials are never read, so no part of a secret can reach a message.  Set
``ImageLimits(allow_private_addresses=True)`` for images served on a private
network or on 127.0.0.1 (tests, the local emulator, a MinIO on the LAN).  The
check resolves the host before the connection is made, so a DNS server that
answers differently a moment later is not caught; run workers behind an
egress firewall where that matters.

Local folder: ``ImageLimits(local_root=PATH)`` confines local images to one
folder, for deployments that take manifests from other people.  Every local
file an image URL makes fsspec open (a path, a ``file://`` or ``local://``
URL, the archive or file at the end of a chain such as
``zip://a.png::/data/images.zip`` or ``simplecache::file:///data/a.png``)
must be inside it once ``..`` and symbolic links are resolved; protocols that
read local files from elsewhere (``git``, ``dvc``, ``dir``, ``reference``,
``generic``) are refused.  The check is made just before the read: someone
who can replace a file inside the folder with a link in that moment is not
stopped by it.

Errors (all in :mod:`pika_tasks.errors`, re-exported here)::

    PikaError
    └── ImageError                 the image cannot be used (reason in the message)
        ├── ImageTooLargeError     its file is over ImageLimits.max_bytes
        └── ImageUnavailableError  network trouble, a 429/5xx, or a store's own error
                                   (an FTP server's refusal...): worth retrying
                                   (also a TransportError, so is_transient() says so)

Example:
    >>> import asyncio, io, fsspec
    >>> from PIL import Image
    >>> from pika_tasks.images import inspect_image, resolve_image_url
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (320, 240), "teal").save(buffer, "PNG")
    >>> with fsspec.open("memory://doc/frame.png", "wb") as f:
    ...     _ = f.write(buffer.getvalue())
    >>> check = asyncio.run(inspect_image("memory://doc/frame.png"))
    >>> check.width, check.height, check.format, check.content_type
    (320, 240, 'PNG', 'image/png')
    >>> asyncio.run(resolve_image_url(check, upload=None))[:22]
    'data:image/png;base64,'
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import ipaddress
import logging
import os
import posixpath
import re
import socket
import warnings
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin, urlsplit

import fsspec
import httpx
from fsspec.implementations.local import LocalFileSystem
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from pika_tasks._locations import HOSTLESS_PROTOCOLS as _HOSTLESS_PROTOCOLS
from pika_tasks._locations import HTTP_RE as _HTTP_RE
from pika_tasks._locations import display_location as _display
from pika_tasks.errors import ImageError, ImageTooLargeError, ImageUnavailableError

__all__ = [
    "DEFAULT_LIMITS",
    "ImageCheck",
    "ImageError",
    "ImageLimits",
    "ImageSource",
    "ImageTooLargeError",
    "ImageUnavailableError",
    "ResolvedImage",
    "Uploader",
    "check_image",
    "inspect_image",
    "resolve_image",
    "resolve_image_url",
]

logger = logging.getLogger(__name__)

Uploader = Callable[[bytes, str, str], Awaitable[str]]
"""``upload(data, content_type, file_name) -> url``: puts bytes where fal can fetch them."""

_CHAINED_HTTP_RE = re.compile(r"(^|::)https?://", re.IGNORECASE)
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


class ResolvedImage(BaseModel):
    """The URL fal should fetch, and how it was made."""

    model_config = ConfigDict(frozen=True)

    url: str
    source: ImageSource

    def __repr__(self) -> str:
        # A data URI can be megabytes long.
        shown = self.url if len(self.url) <= 80 else self.url[:77] + "..."
        return f"ResolvedImage(url={shown!r}, source={self.source.value!r})"

    __str__ = __repr__


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
        keep_data: keep the bytes on the check for :func:`resolve_image_url`
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
    options = storage_options or {}
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            if _HTTP_RE.match(image):
                data = await _fetch_http(image, limits)
            else:
                if limits.local_root is not None:
                    await asyncio.to_thread(_check_confined, image, options, limits.local_root)
                if not limits.allow_private_addresses:
                    await _check_store_hosts(image)
                    if options and _reads_with_options(image, options):
                        await _check_option_hosts(image, options)
                data = await asyncio.to_thread(_read_store, image, options, limits.max_bytes)
    except TimeoutError as error:
        raise ImageUnavailableError(
            image, f"timed out after {limits.timeout_seconds:g} s"
        ) from error
    check = await asyncio.to_thread(check_image, data, image=image, limits=limits)
    if keep_data and not _HTTP_RE.match(image):
        check._data = data
    return check


async def resolve_image(
    check: ImageCheck,
    *,
    storage_options: dict[str, Any] | None = None,
    upload: Uploader | None = None,
    data_uri_max_bytes: int = 2_000_000,
    sign_expires_seconds: int = 3600,
    sign_urls: bool = True,
) -> ResolvedImage:
    """Give fal a URL for a checked image, and say how it was made.

    See :func:`resolve_image_url`, which returns only the URL.
    """
    image = check.image
    if _HTTP_RE.match(image):
        return ResolvedImage(url=image, source=ImageSource.HTTP)
    options = storage_options or {}
    try:
        if sign_urls:
            signed = await asyncio.to_thread(_sign, image, options, sign_expires_seconds)
            if signed is not None:
                return ResolvedImage(url=signed, source=ImageSource.SIGNED_URL)
        data = check._data
        if data is None:
            data = await asyncio.to_thread(_reread, check, options)
        if len(data) <= data_uri_max_bytes:
            encoded = base64.b64encode(data).decode("ascii")
            return ResolvedImage(
                url=f"data:{check.content_type};base64,{encoded}", source=ImageSource.DATA_URI
            )
        if upload is None:
            raise ImageError(
                image,
                f"is {len(data)} bytes, more than the {data_uri_max_bytes} bytes sent inline, "
                "and no uploader was given",
            )
        url = await upload(data, check.content_type, _upload_name(image, check.format))
        return ResolvedImage(url=url, source=ImageSource.UPLOAD)
    finally:
        # The bytes served their purpose (or a retry re-reads them): free them now.
        check._data = None


async def resolve_image_url(
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
        >>> asyncio.run(resolve_image_url(check))
        'https://example.com/a.png'
    """
    resolved = await resolve_image(
        check,
        storage_options=storage_options,
        upload=upload,
        data_uri_max_bytes=data_uri_max_bytes,
        sign_expires_seconds=sign_expires_seconds,
        sign_urls=sign_urls,
    )
    return resolved.url


# --------------------------------------------------------------------------- stores


def _url_to_fs(image: str, options: dict[str, Any]) -> tuple[Any, str]:
    if _CHAINED_HTTP_RE.search(image):
        # fsspec's http file system would bypass the private-address check.
        raise ImageError(image, "chained http(s) URLs are not supported: give the URL itself")
    try:
        fs, path = fsspec.core.url_to_fs(image, **options)
    except (ValueError, ImportError, TypeError) as error:
        raise ImageError(image, f"cannot open its file system: {error}") from error
    except Exception as error:
        # Some file systems connect as they are made (ftp, sftp): the server's refusal.
        raise _store_error(image, error) from error
    return fs, str(path)


def _read_store(image: str, options: dict[str, Any], max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` (+1 to detect more) of an fsspec image; blocking."""
    fs, path = _url_to_fs(image, options)
    try:
        info = fs.info(path)
        if info.get("type") == "directory":
            raise ImageError(image, "is a folder, not a file")
        size = info.get("size")
        if isinstance(size, int) and size > max_bytes:
            raise ImageTooLargeError(
                image, f"is larger than the limit of {max_bytes} bytes ({size})"
            )
        data: bytes = fs.cat_file(path, start=0, end=max_bytes + 1)
    except ImageError:
        raise
    except FileNotFoundError as error:
        raise ImageError(image, "not found") from error
    except IsADirectoryError as error:
        raise ImageError(image, "is a folder, not a file") from error
    except PermissionError as error:
        raise ImageError(image, f"permission denied: {error}") from error
    except Exception as error:
        # OSError and timeouts, but also a store's own errors (ftplib's replies,
        # a back-end's client errors), which are not OSErrors.
        raise _store_error(image, error) from error
    if len(data) > max_bytes:
        raise ImageTooLargeError(image, f"is larger than the limit of {max_bytes} bytes")
    return data


def _store_error(image: str, error: Exception) -> ImageUnavailableError:
    """A store's failure to read ``image``, as this module's transient error naming it."""
    detail = str(error).strip() or type(error).__name__
    return ImageUnavailableError(image, f"cannot be read: {detail}")


def _reread(check: ImageCheck, options: dict[str, Any]) -> bytes:
    """The checked image's bytes again, refused if they are not the ones checked; blocking."""
    try:
        data = _read_store(check.image, options, check.size_bytes)
    except ImageTooLargeError as error:
        raise ImageError(check.image, "changed since it was inspected (it grew)") from error
    if hashlib.sha256(data).hexdigest() != check.sha256:
        raise ImageError(check.image, "changed since it was inspected")
    return data


def _sign(image: str, options: dict[str, Any], expires: int) -> str | None:
    """A signed http(s) URL for the object, or None when its store cannot sign."""
    fs, path = _url_to_fs(image, options)
    try:
        url = fs.sign(path, expiration=expires)
    except NotImplementedError:
        return None
    except Exception as error:  # back-ends raise their own credential errors
        # E.g. GCS with user credentials cannot sign; the bytes still reach fal.
        logger.warning(
            "cannot sign a URL for %s (%s); sending the image's bytes instead",
            _display(image),
            error,
        )
        return None
    return url if isinstance(url, str) and _HTTP_RE.match(url) else None


def _upload_name(image: str, format_name: str) -> str:
    base = posixpath.basename(image.split("::", 1)[0].replace("\\", "/"))
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = _FILE_NAME_DROP_RE.sub("-", stem).strip("-.")[:100] or "image"
    return f"{stem}.{_EXTENSIONS.get(format_name, format_name.lower())}"


# --------------------------------------------------------------------------- hosts


def _store_hosts(image: str) -> list[tuple[str, int]]:
    """The network hosts (with ports, 0 when none) that the parts of a store URL name.

    Both the standard parse of the URL and fsspec's own (which most network
    file systems use to pick the host they connect to) are taken, so that the
    two cannot disagree about where a connection goes.
    """
    found: list[tuple[str, int]] = []
    for part in image.split("::"):
        protocol = fsspec.core.split_protocol(part)[0]
        if (
            protocol is None
            or protocol in _HOSTLESS_PROTOCOLS
            # Refused outright when the store is opened (see _url_to_fs).
            or protocol in ("http", "https")
            # fsspec refuses protocols it does not know: nothing would be opened.
            or protocol not in fsspec.available_protocols()
        ):
            continue
        try:
            parts = urlsplit(part)
            port = parts.port or 0
        except ValueError as error:
            raise ImageError(image, f"invalid URL: {error}") from error
        hosts = [parts.hostname or ""]
        inferred = str(fsspec.utils.infer_storage_options(part).get("host") or "")
        if inferred.startswith("[") and inferred.endswith("]"):
            inferred = inferred[1:-1]
        hosts.append(inferred)
        named = list(dict.fromkeys(host for host in hosts if host))
        if parts.netloc and not named:
            raise ImageError(image, f"its {protocol}:// URL names no host")
        found.extend((host, port) for host in named)
    return found


async def _check_store_hosts(image: str) -> None:
    """Refuse a store URL that names a private, loopback or link-local host."""
    for host, port in _store_hosts(image):
        await _check_public(image, host, port)


# Protocols that read no network host whatever options they get: an image read with
# only these does not use the options' hosts.
_LOCAL_PROTOCOLS = frozenset({"file", "local", "memory", "data"})

# Option names whose value is a host (``host:port``, ``user@host``) rather than a URL.
_HOST_OPTION_NAMES = frozenset(
    {"host", "hostname", "server", "endpoint", "address", "netloc", "proxy", "proxies"}
)
_HOST_OPTION_SUFFIXES = ("_host", "_hostname", "_server", "_endpoint", "_address", "_proxy")

# Options that hold credentials are never read for hosts: no part of a secret can
# then reach an error message.
_SECRET_OPTION_RE = re.compile(r"key|secret|token|passw|credential|sas|auth", re.IGNORECASE)

# A URL's scheme and authority inside any text (a value, a connection string).
_URL_IN_TEXT_RE = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*)://([^\s/?#;,'\"<>]*)")


def _links(image: str, options: dict[str, Any]) -> list[tuple[str, str]]:
    """Each link of an image's (maybe chained) URL as fsspec opens it: ``(path, protocol)``.

    fsspec's own split of a chain, the one ``url_to_fs`` makes, so that the paths
    checked are the paths opened (it also honours a ``protocol`` option).
    """
    # It updates nested option dicts in place: give it copies.
    copied = {
        key: dict(value) if isinstance(value, dict) else value for key, value in options.items()
    }
    try:
        chain = fsspec.core._un_chain(image, copied)
    except (ValueError, ImportError, TypeError, KeyError) as error:
        raise ImageError(image, f"cannot open its file system: {error}") from error
    return [(str(path), str(protocol)) for path, protocol, _ in chain]


def _reads_with_options(image: str, options: dict[str, Any]) -> bool:
    """True when reading ``image`` may use the options (some link is not local or in memory)."""
    return any(protocol not in _LOCAL_PROTOCOLS for _, protocol in _links(image, options))


def _option_hosts(
    image: str, options: Any, path: str = "", hosts_inside: bool = False
) -> list[tuple[str, str, int]]:
    """The hosts named in storage options: ``(option path, host, port)``, port 0 when none.

    Every URL in any text value (whatever the option's name), and the value of
    every option named like a host or inside one (botocore's ``proxies``:
    ``{"http": "10.0.0.1:3128"}``); options holding credentials are skipped.
    """
    if isinstance(options, dict):
        items = [(str(key), value) for key, value in options.items()]
    elif isinstance(options, list | tuple):
        items = [(str(index), value) for index, value in enumerate(options)]
    else:
        return []
    found: list[tuple[str, str, int]] = []
    for key, value in items:
        if _SECRET_OPTION_RE.search(key):
            continue
        where = f"{path}.{key}" if path else key
        names_hosts = hosts_inside or _is_host_option(key)
        if isinstance(value, dict | list | tuple):
            found.extend(_option_hosts(image, value, where, names_hosts))
        elif isinstance(value, str):
            urls = _urls_in(image, where, value)
            found.extend((where, host, port) for host, port in urls)
            if names_hosts and "://" not in value and value.strip():
                found.append((where, *_bare_host(image, where, value)))
    return found


def _urls_in(image: str, where: str, text: str) -> list[tuple[str, int]]:
    """The hosts of the URLs in an option's text, but those of protocols that name none."""
    found: list[tuple[str, int]] = []
    for match in _URL_IN_TEXT_RE.finditer(text):
        scheme, authority = match.group(1).lower(), match.group(2)
        if scheme in _HOSTLESS_PROTOCOLS or not authority:
            continue
        try:
            parts = urlsplit(f"{scheme}://{authority}")
            port = parts.port or 0
        except ValueError as error:
            raise ImageError(
                image, f"storage option {where!r} holds an invalid URL: {error}"
            ) from error
        if not parts.hostname:
            raise ImageError(image, f"storage option {where!r} holds a URL with no host")
        found.append((parts.hostname, port))
    return found


def _is_host_option(name: str) -> bool:
    lowered = name.lower()
    return lowered in _HOST_OPTION_NAMES or lowered.endswith(_HOST_OPTION_SUFFIXES)


def _bare_host(image: str, where: str, value: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``user@host:port``, ``[v6]:port`` or a bare IPv6 address."""
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))), 0
    except ValueError:
        pass
    try:
        parts = urlsplit(f"//{text}")
        host, port = parts.hostname, parts.port or 0
    except ValueError as error:
        raise ImageError(image, f"storage option {where!r} is not a host: {error}") from error
    if not host or parts.path or parts.query or parts.fragment:
        raise ImageError(image, f"storage option {where!r} is not a host name")
    return host, port


async def _check_option_hosts(image: str, options: dict[str, Any]) -> None:
    """Refuse storage options that name a private, loopback or link-local host."""
    checked: set[tuple[str, int]] = set()
    for where, host, port in _option_hosts(image, options):
        if (host, port) not in checked:
            checked.add((host, port))
            await _check_public(image, host, port, prefix=f"storage option {where!r}: ")


# --------------------------------------------------------------------------- local folder

# Protocols that read local files from a place the folder check cannot follow (a
# repository or base folder given in the URL or options, references listed in a
# file, a protocol picked per path): refused while images are confined to a folder.
_UNCONFINABLE_PROTOCOLS = frozenset({"asynclocal", "dir", "dvc", "generic", "git", "reference"})


def _check_confined(image: str, options: dict[str, Any], root: str) -> None:
    """Refuse ``image`` when a local file it opens is outside ``root``; blocking (realpath)."""
    folder = _real_path(LocalFileSystem._strip_protocol(os.path.expanduser(root)))
    for path, protocol in _links(image, options):
        if protocol in _UNCONFINABLE_PROTOCOLS:
            raise ImageError(
                image,
                f"{protocol}:// can read local files outside {root}, the folder local images "
                "are confined to, and is refused",
            )
        if not issubclass(fsspec.get_filesystem_class(protocol), LocalFileSystem):
            continue
        try:
            real = _real_path(path)
        except (ValueError, OSError) as error:  # a NUL byte, a loop of links...
            raise ImageError(image, f"is not a usable local path: {error}") from error
        try:
            inside = os.path.commonpath([folder, real]) == folder
        except ValueError:  # another drive (Windows)
            inside = False
        if not inside:
            raise ImageError(
                image,
                f"is outside {root}, the folder local images are confined to "
                "(after resolving '..' and symbolic links)",
            )


def _real_path(path: str) -> str:
    """``path`` absolute, with ``..`` and every symbolic link resolved, case-folded on Windows."""
    return os.path.normcase(os.path.realpath(path))


# --------------------------------------------------------------------------- http(s)


async def _resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (a seam for tests)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _check_public(url: str, host: str, port: int, prefix: str = "") -> None:
    """Refuse ``host`` unless every address it resolves to is public (``prefix``: who named it)."""
    try:
        literal = ipaddress.ip_address(host)
        addresses = [str(literal)]
    except ValueError:
        try:
            addresses = await _resolve_addresses(host, port)
        except OSError as error:
            raise ImageUnavailableError(
                url, f"{prefix}cannot resolve host {host!r}: {error}"
            ) from error
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise ImageError(
                url,
                f"{prefix}host {host!r} resolves to {address}, a private, loopback or link-local "
                "address; such images are refused unless "
                "ImageLimits(allow_private_addresses=True)",
            )


async def _fetch_http(url: str, limits: ImageLimits) -> bytes:
    """GET an http(s) image, checking every hop and keeping at most ``max_bytes + 1``."""
    timeout = httpx.Timeout(limits.timeout_seconds)
    headers = {"Accept": "image/*", "Accept-Encoding": "identity"}
    current = url
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout) as client:
        for _ in range(limits.max_redirects + 1):
            parts = urlsplit(current)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ImageError(url, f"redirects to {_display(current)}, which is not http(s)")
            if not limits.allow_private_addresses:
                port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
                await _check_public(url, parts.hostname, port)
            try:
                async with client.stream("GET", current, headers=headers) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    _check_status(url, response)
                    return await _read_limited(url, response, limits.max_bytes)
            except httpx.TimeoutException as error:
                raise ImageUnavailableError(url, f"timed out: {error!r}") from error
            except httpx.InvalidURL as error:
                raise ImageError(url, f"invalid URL: {error}") from error
            except httpx.TransportError as error:
                raise ImageUnavailableError(url, f"cannot be fetched: {error!r}") from error
    raise ImageError(url, f"more than {limits.max_redirects} redirects")


def _check_status(url: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 300:
        return
    if status in (404, 410):
        raise ImageError(url, f"not found (HTTP {status})")
    if status == 429 or status >= 500:
        raise ImageUnavailableError(url, f"the server answered HTTP {status}")
    raise ImageError(url, f"the server answered HTTP {status}")


async def _read_limited(url: str, response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ImageTooLargeError(url, f"is larger than the limit of {max_bytes} bytes ({declared})")
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        buffer += chunk[: max_bytes + 1 - len(buffer)]
        if len(buffer) > max_bytes:
            raise ImageTooLargeError(url, f"is larger than the limit of {max_bytes} bytes")
    return bytes(buffer)
