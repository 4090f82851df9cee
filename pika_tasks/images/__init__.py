"""Images: check a first frame before paying for a video, then hand fal a URL it can fetch.

Two steps, usually a little apart in a batch run, in three private modules
(``_check``: decode and judge; ``_fetch``: read under the address policy;
``_deliver``: choose how fal receives the image) behind this package:

1. :func:`inspect_image` reads the image once (fsspec for paths and store
   URLs, httpx for http(s) URLs), checks that it is a decodable PNG, JPEG,
   WebP, GIF or BMP within :class:`ImageLimits`, and returns an
   :class:`ImageCheck` (size, dimensions, format, SHA-256).  Bad images fail
   here, before anything is submitted or billed.
2. :func:`deliver_image` picks how fal gets the image (an
   :class:`ImageSource`) and returns the URL to give it:

   * an http(s) URL is passed through unchanged;
   * an object on a store that signs URLs (S3, GCS, Azure: fsspec's
     ``fs.sign``) is passed as a signed URL valid for an hour;
   * anything else (local files, ``memory://``, stores that cannot sign)
     becomes a ``data:`` URI when it is at most 2,000,000 bytes, and is
     otherwise uploaded through the ``upload`` callable (fal's storage).

Memory: by default the bytes read by :func:`inspect_image` are dropped once
checked, because a batch inspects every row before submitting any;
:func:`deliver_image` re-reads the image when it needs the bytes (data
URI or upload) and refuses it if its SHA-256 changed in between.  Pass
``keep_data=True`` to keep them on the check (never serialised or pickled)
when delivering right after inspecting.

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
    >>> from pika_tasks.images import deliver_image, inspect_image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (320, 240), "teal").save(buffer, "PNG")
    >>> with fsspec.open("memory://doc/frame.png", "wb") as f:
    ...     _ = f.write(buffer.getvalue())
    >>> check = asyncio.run(inspect_image("memory://doc/frame.png"))
    >>> check.width, check.height, check.format, check.content_type
    (320, 240, 'PNG', 'image/png')
    >>> delivered = asyncio.run(deliver_image(check, upload=None))
    >>> delivered.source, delivered.url[:22]
    (<ImageSource.DATA_URI: 'data_uri'>, 'data:image/png;base64,')
"""

from pika_tasks.errors import ImageError, ImageTooLargeError, ImageUnavailableError
from pika_tasks.images._check import (
    DEFAULT_LIMITS,
    ImageCheck,
    ImageLimits,
    check_image,
    inspect_image,
)
from pika_tasks.images._deliver import (
    DeliveredImage,
    ImageSource,
    Uploader,
    deliver_image,
    deliver_image_url,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DeliveredImage",
    "ImageCheck",
    "ImageError",
    "ImageLimits",
    "ImageSource",
    "ImageTooLargeError",
    "ImageUnavailableError",
    "Uploader",
    "check_image",
    "deliver_image",
    "deliver_image_url",
    "inspect_image",
]
