"""The names Prefect knows a batch's things by: artifact keys for an output, asset keys for files.

Both are derived from locations a user typed, which can carry secrets (a
password in ``https://user:pass@host/...``, a signature in a query string)
and characters Prefect refuses, so both start from :func:`public_url`: the
location without credentials, query or fragment, a local path made an
absolute ``file://`` URI.

* :func:`artifact_key` follows Prefect's rule for artifact keys (lowercase
  letters, numbers and dashes only): ``pika-{kind}-{slug}-{hash}``, where the
  slug is readable (the end of the output's path) and the hash (8 hex digits
  of the SHA-256 of the public URL) tells apart outputs whose slugs match.
  One output always gets the same key, so Prefect's Artifacts page shows the
  runs of one pipeline together.
* :func:`asset_key` follows Prefect's rule for asset keys (a URI with a
  lowercase scheme, at most 512 characters, none of ``RESTRICTED``).

Nothing here imports Prefect; the tests check the keys with Prefect's own validators.

Example:
    >>> artifact_key("summary", "s3://user:secret@studio-renders/2026/spring?sig=abc")
    'pika-summary-s3-studio-renders-2026-spring-acb8032c'
    >>> asset_key("s3://studio-renders/2026/spring/a.mp4?X-Amz-Signature=abc")
    's3://studio-renders/2026/spring/a.mp4'
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pika_tasks._locations import expand_home

__all__ = ["MAX_ASSET_KEY_LENGTH", "RESTRICTED", "artifact_key", "asset_key", "public_url"]

MAX_ASSET_KEY_LENGTH = 512
"""Prefect's longest asset key."""
RESTRICTED = frozenset("\n\r\t\0 #?&%\"'<>[]{}|\\^`")
"""Characters Prefect refuses in an asset key (``prefect.types.names``)."""

_SLUG_CHARS = 40
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def public_url(location: str) -> str:
    """``location`` as a URI that is safe to show: no credentials, query or fragment.

    A local path becomes an absolute ``file://`` URI; of a chained fsspec URL
    (``simplecache::s3://...``) the last link, the one that names the data, is kept.

    >>> public_url("https://me:pw@cdn.example/a.png?token=t#x")
    'https://cdn.example/a.png'
    >>> public_url("/out/batch one")
    'file:///out/batch one'
    >>> public_url("simplecache::s3://bucket/out/")
    's3://bucket/out'
    """
    location = location.rsplit("::", 1)[-1].strip()
    found = _SCHEME.match(location)
    if found is None or found.group(1).lower() == "file":
        path = location[len(found.group(0)) :] if found else location
        return "file://" + Path(os.path.abspath(expand_home(path))).as_posix()
    parts = urlsplit(location)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    path = parts.path.rstrip("/") if parts.path not in ("", "/") else ""
    return urlunsplit((parts.scheme.lower(), host, path, "", ""))


def artifact_key(kind: str, output: str) -> str:
    """The key of a batch's ``kind`` artifact (``summary``, ``rows``, ``progress``) for ``output``.

    Stable for one output, different for different outputs, never holding
    what :func:`public_url` drops.

    >>> artifact_key("rows", "/srv/videos/spring")
    'pika-rows-file-srv-videos-spring-7889fd27'
    """
    url = public_url(output)
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:8]
    scheme, _, rest = url.partition("://")
    tail = "-".join(part for part in rest.split("/") if part)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{scheme}-{tail}".lower()).strip("-")
    if len(slug) > _SLUG_CHARS:  # the end of the path tells outputs apart best
        slug = slug[-_SLUG_CHARS:].lstrip("-")
    kind = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")
    return f"pika-{kind}-{slug}-{digest}"


def asset_key(location: str) -> str:
    """``location`` as a Prefect asset key: :func:`public_url`, restricted characters encoded.

    A restricted character becomes ``_XX`` (its UTF-8 bytes in hex), since
    Prefect refuses ``%`` too; a key over :data:`MAX_ASSET_KEY_LENGTH` keeps
    its start and ends with a hash of the whole.

    >>> asset_key("/in/my photo #1.png")
    'file:///in/my_20photo_20_231.png'
    >>> len(asset_key("s3://b/" + "x" * 600)) == MAX_ASSET_KEY_LENGTH
    True
    """
    url = public_url(location)
    key = "".join(
        quote(char, safe="").replace("%", "_") if char in RESTRICTED else char for char in url
    )
    if len(key) > MAX_ASSET_KEY_LENGTH:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        key = f"{key[: MAX_ASSET_KEY_LENGTH - len(digest) - 1]}-{digest}"
    return key
