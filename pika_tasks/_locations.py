"""Where a file is, shown without secrets: the one rule for naming images in messages.

An error or a log line may name an image, but never the credentials its URL
carries: http(s) URLs lose their query string (often a signature) and user
info; the URLs of other protocols that name a network host
(``ftp://user:pw@host/a.png``, in any part of a chained URL) lose their user
info.  Protocols whose URL names no host keep theirs whole: for them the part
before ``@`` is not a login (``github://org:repo@sha/a.png``).

Local paths written ``~/...`` or ``~user/...`` are expanded by one rule too,
:func:`expand_home`, which never raises for a name no user can have.

Standard library only, so that :mod:`pika_tasks.errors` can use it.

Example:
    >>> display_location("https://cdn.example/a.png?X-Amz-Signature=abc")
    'https://cdn.example/a.png'
    >>> display_location("ftp://me:secret@files.example/a.png")
    'ftp://files.example/a.png'
    >>> display_location("github://org:repo@main/a.png")
    'github://org:repo@main/a.png'
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["HOSTLESS_PROTOCOLS", "HTTP_RE", "display_location", "expand_home", "protocol_of"]

HTTP_RE = re.compile(r"^https?://", re.IGNORECASE)
_URL_WITH_USER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")

HOSTLESS_PROTOCOLS = frozenset(
    {
        "file",
        "local",
        "memory",
        "data",
        "asynclocal",
        "s3",
        "s3a",
        "gs",
        "gcs",
        "az",
        "abfs",
        "abfss",
        "adl",
        "oci",
        "ocilake",
        "oss",
        "tos",
        "tosfs",
        "hf",
        "github",
        "gist",
        "git",
        "gdrive",
        "dropbox",
        "box",
        "dbfs",
        "lakefs",
        "wandb",
        "dvc",
        "zip",
        "tar",
        "libarchive",
        "reference",
        "simplecache",
        "filecache",
        "blockcache",
        "cached",
        "dir",
        "generic",
        "async_wrapper",
        "asyncwrapper",
    }
)
"""fsspec protocols whose URL does not name a network host.

Local and in-process data, object stores and hosted services (the URL names a
bucket, container or repository; the endpoint comes from the options), and
wrappers (caches, archives) whose target is the next URL of a chain.  Every
other protocol (ftp, sftp, ssh, smb, hdfs, webhdfs, root, webdav...) is taken
to name a host: a protocol installed later is checked rather than trusted.
"""


def expand_home(path: str) -> str:
    """``os.path.expanduser``, except that it never raises.

    ``~name`` of an unknown user is left as it is (as ``expanduser`` does), and
    so is a name no user can have: with a NUL byte in it, the user lookup raises
    ``ValueError`` instead.

    Example:
        >>> expand_home("~no-such-user-here/a.png")
        '~no-such-user-here/a.png'
        >>> expand_home("~\\x00/a.png")
        '~\\x00/a.png'
    """
    try:
        return os.path.expanduser(path)
    except ValueError:
        return path


def protocol_of(url: str) -> str | None:
    """The protocol of ``url`` as fsspec splits it (``split_protocol``), or None.

    Example:
        >>> protocol_of("s3://b/a.png"), protocol_of("/in/a.png"), protocol_of("C://x")
        ('s3', None, None)
    """
    if "://" in url:
        protocol = url.split("://", 1)[0]
        if len(protocol) > 1:  # not a Windows drive letter
            return protocol
    if url.startswith("data:"):
        return "data"
    return None


def display_location(image: str) -> str:
    """``image`` fit for messages and logs: no query string or credentials on URLs."""
    if HTTP_RE.match(image):
        parts = urlsplit(image)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    return "::".join(_without_user_info(part) for part in image.split("::"))


def _without_user_info(url: str) -> str:
    """``url`` without ``user:password@`` when its protocol names a host."""
    if protocol_of(url) in HOSTLESS_PROTOCOLS:
        return url
    return _URL_WITH_USER_RE.sub(r"\1", url)
