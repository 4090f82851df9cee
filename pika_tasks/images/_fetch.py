"""Fetch an image while refusing private addresses (and, when asked, local files elsewhere).

:func:`read_image` reads an image's bytes: http(s) URLs with httpx (every
redirect hop checked), everything else with fsspec.  Before anything is
opened, every host the image's URL or its storage options name must resolve
to public addresses only (unless ``allow_private_addresses``), and every
local file it opens must be inside ``local_root`` when one is set.  The
package's documentation (:mod:`pika_tasks.images`) states the policy in full.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import re
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import fsspec
import httpx
from fsspec.implementations.local import LocalFileSystem

from pika_tasks._locations import HOSTLESS_PROTOCOLS, HTTP_RE, display_location
from pika_tasks.errors import ImageError, ImageTooLargeError, ImageUnavailableError

if TYPE_CHECKING:
    # Types only: the check module reads images through this one.
    from pika_tasks.images._check import ImageCheck, ImageLimits

__all__ = ["open_store", "read_image", "reread_checked"]

_CHAINED_HTTP_RE = re.compile(r"(^|::)https?://", re.IGNORECASE)


async def read_image(image: str, options: dict[str, Any], limits: ImageLimits) -> bytes:
    """The bytes of ``image`` (at most ``limits.max_bytes``), read under the address policy.

    Raises:
        ImageError: refused (private address, outside ``local_root``...), missing or too large.
        ImageUnavailableError: a failure worth retrying, or the deadline passed.
    """
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            if HTTP_RE.match(image):
                return await _fetch_http(image, limits)
            if limits.local_root is not None:
                await asyncio.to_thread(_check_confined, image, options, limits.local_root)
            if not limits.allow_private_addresses:
                await _check_store_hosts(image)
                if options and _reads_with_options(image, options):
                    await _check_option_hosts(image, options)
            return await asyncio.to_thread(_read_store, image, options, limits.max_bytes)
    except TimeoutError as error:
        raise ImageUnavailableError(
            image, f"timed out after {limits.timeout_seconds:g} s"
        ) from error


# --------------------------------------------------------------------------- stores


def open_store(image: str, options: dict[str, Any]) -> tuple[Any, str]:
    """The file system and path of a store URL; chained http(s) URLs are refused."""
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
    fs, path = open_store(image, options)
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


def reread_checked(check: ImageCheck, options: dict[str, Any]) -> bytes:
    """The checked image's bytes again, refused if they are not the ones checked; blocking."""
    try:
        data = _read_store(check.image, options, check.size_bytes)
    except ImageTooLargeError as error:
        raise ImageError(check.image, "changed since it was inspected (it grew)") from error
    if hashlib.sha256(data).hexdigest() != check.sha256:
        raise ImageError(check.image, "changed since it was inspected")
    return data


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
            or protocol in HOSTLESS_PROTOCOLS
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
        if scheme in HOSTLESS_PROTOCOLS or not authority:
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
                raise ImageError(
                    url, f"redirects to {display_location(current)}, which is not http(s)"
                )
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
