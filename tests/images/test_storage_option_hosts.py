"""Hosts named in storage options are checked like image hosts, before anything is opened.

The options point at real listeners on 127.0.0.1 (an FTP-like banner that records every
connection, moto's S3 server): refused by default, nothing is contacted; read when
``ImageLimits(allow_private_addresses=True)``.  Host names go through the same
resolution seam as image hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest

from pika_tasks.images import ImageError, ImageLimits, _fetch, inspect_image

ALLOWED = ImageLimits(allow_private_addresses=True)
IMAGE = "s3://pika-photos/in/a.png"

# (image, options naming the banner's port, the option path the error must name, host)
Shape = tuple[str, Callable[[int], dict[str, Any]], str, str]
SHAPES: dict[str, Shape] = {
    "endpoint_url": (
        IMAGE,
        lambda port: {"endpoint_url": f"http://127.0.0.1:{port}", "key": "k", "secret": "s"},
        "endpoint_url",
        "127.0.0.1",
    ),
    "client_kwargs": (
        IMAGE,
        lambda port: {"client_kwargs": {"endpoint_url": f"http://localhost:{port}"}},
        "client_kwargs.endpoint_url",
        "localhost",
    ),
    "per-protocol": (
        "simplecache::" + IMAGE,
        lambda port: {"s3": {"endpoint_url": f"https://2130706433:{port}"}},
        "s3.endpoint_url",
        "2130706433",
    ),
    "short-form": (
        IMAGE,
        lambda port: {"endpoint_url": f"http://127.1:{port}"},
        "endpoint_url",
        "127.1",
    ),
    "ipv4-mapped": (
        IMAGE,
        lambda port: {"endpoint_url": f"http://[::ffff:127.0.0.1]:{port}"},
        "endpoint_url",
        "::ffff:127.0.0.1",
    ),
    "user-info": (
        IMAGE,
        lambda port: {"endpoint_url": f"http://AKIDEXAMPLE:pw-s3cr3t@127.0.0.1:{port}"},
        "endpoint_url",
        "127.0.0.1",
    ),
    "proxies": (
        IMAGE,
        lambda port: {"config_kwargs": {"proxies": {"https": f"127.0.0.1:{port}"}}},
        "config_kwargs.proxies.https",
        "127.0.0.1",
    ),
    "host-option": (
        IMAGE,
        lambda port: {"host": f"user@localhost:{port}"},
        "host",
        "localhost",
    ),
    "connection-string": (
        IMAGE,  # any text's URLs are checked, whatever the option's name
        lambda port: {
            "connection_string": "DefaultEndpointsProtocol=http;AccountName=dev;"
            f"AccountKey=c2VjcmV0;BlobEndpoint=http://127.0.0.1:{port}/dev;"
        },
        "connection_string",
        "127.0.0.1",
    ),
    "in-a-list": (
        IMAGE,
        lambda port: {"endpoints": ["https://93.184.216.34", f"http://0.0.0.0:{port}"]},
        "endpoints.1",
        "0.0.0.0",
    ),
    "metadata-service": (
        IMAGE,
        lambda port: {"endpoint_url": "http://169.254.169.254/latest"},
        "endpoint_url",
        "169.254.169.254",
    ),
    "private-network": (
        IMAGE,
        lambda port: {"endpoint_url": "http://10.20.30.40:9000"},
        "endpoint_url",
        "10.20.30.40",
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_private_hosts_in_storage_options_are_refused_before_any_connection(
    shape: str, ftp_banner: Any
) -> None:
    image, options, where, host = SHAPES[shape]
    given = options(ftp_banner.port)

    with pytest.raises(ImageError) as caught:
        await inspect_image(image, storage_options=given)

    message = str(caught.value)
    assert message.startswith(f"{image}: storage option '{where}': host '{host}' resolves to ")
    assert "a private, loopback or link-local address" in message
    assert "allow_private_addresses=True" in message
    assert "s3cr3t" not in message and "c2VjcmV0" not in message
    assert ftp_banner.connections == []


async def test_with_private_addresses_allowed_the_options_are_used(
    ftp_banner: Any,
) -> None:
    """Allowed, the store is opened with the options: it connects to the listener."""
    options = {"endpoint_url": f"http://127.0.0.1:{ftp_banner.port}", "key": "k", "secret": "s"}

    with pytest.raises(ImageError):
        await inspect_image(
            IMAGE,
            storage_options=options,
            limits=ALLOWED.model_copy(update={"timeout_seconds": 10}),
        )

    assert ftp_banner.connections, "the store was never contacted"


async def test_an_image_on_moto_s3_on_loopback_is_refused_unless_allowed(
    s3_bucket: tuple[str, dict[str, Any]], png: bytes
) -> None:
    bucket, options = s3_bucket
    fsspec.filesystem("s3", **options, skip_instance_cache=True).pipe(f"{bucket}/a.png", png)

    with pytest.raises(ImageError, match=r"storage option 'endpoint_url': host '127\.0\.0\.1'"):
        await inspect_image(f"{bucket}/a.png", storage_options=options)
    check = await inspect_image(f"{bucket}/a.png", storage_options=options, limits=ALLOWED)

    assert (check.format, check.size_bytes) == ("PNG", len(png))


async def test_images_that_do_not_use_the_options_are_read(
    tmp_path: Path, png: bytes, ftp_banner: Any
) -> None:
    """Local files and memory read no network host: the options' hosts do not matter."""
    options = {"endpoint_url": f"http://127.0.0.1:{ftp_banner.port}"}
    local = tmp_path / "a.png"
    local.write_bytes(png)
    fsspec.filesystem("memory").pipe("memory://option-hosts/a.png", png)
    try:
        for image in (str(local), f"file://{local}", "memory://option-hosts/a.png"):
            check = await inspect_image(image, storage_options=options)
            assert check.size_bytes == len(png), image
    finally:
        fsspec.filesystem("memory").rm("memory://option-hosts/a.png")
    assert ftp_banner.connections == []


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch, png: bytes) -> list[str]:
    """Stand in for the store (no network here): record the images read, return ``png``."""
    opened: list[str] = []

    def read_store(image: str, options: dict[str, Any], max_bytes: int) -> bytes:
        opened.append(image)
        return png

    monkeypatch.setattr(_fetch, "_read_store", read_store)
    return opened


async def test_a_host_name_is_checked_by_every_address_it_resolves_to(
    monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    answers = {"minio.internal": ["93.184.216.34", "10.9.8.7"], "s3.example.com": ["93.184.216.34"]}
    resolved: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        resolved.append((host, port))
        return answers[host]

    monkeypatch.setattr(_fetch, "_resolve_addresses", resolve)

    with pytest.raises(ImageError, match=r"'endpoint_url': host 'minio\.internal' resolves to 10"):
        await inspect_image(IMAGE, storage_options={"endpoint_url": "http://minio.internal:9000"})
    assert reads == []
    check = await inspect_image(IMAGE, storage_options={"endpoint_url": "https://s3.example.com"})
    assert check.format == "PNG" and reads == [IMAGE]
    assert resolved == [("minio.internal", 9000), ("s3.example.com", 0)]


async def test_credentials_are_never_read_as_hosts(
    monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    """Options holding secrets are skipped, so no part of one can reach a message."""

    async def resolve(host: str, port: int) -> list[str]:
        raise AssertionError(f"{host} was resolved")

    monkeypatch.setattr(_fetch, "_resolve_addresses", resolve)
    options = {
        "endpoint_url": "http://93.184.216.34:9000",
        "key": "http://127.0.0.1/",
        "secret": "ftp://10.0.0.1/",
        "token": "localhost",
        "client_kwargs": {"aws_session_token": "sftp://127.0.0.1/", "password": "127.0.0.1"},
        "fo": "s3://10.0.0.1/bucket",  # a bucket, not a host
        "cache_storage": "/tmp/127.0.0.1",
    }

    assert (await inspect_image(IMAGE, storage_options=options)).format == "PNG"


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"host": "files/share"}, "storage option 'host' is not a host name"),
        (
            {"endpoint_url": "http://:9000"},
            "storage option 'endpoint_url' holds a URL with no host",
        ),
        ({"endpoint_url": "http://[::1/"}, "storage option 'endpoint_url' holds an invalid URL"),
    ],
)
async def test_options_that_name_no_checkable_host_are_refused(
    options: dict[str, Any], reason: str, reads: list[str]
) -> None:
    with pytest.raises(ImageError, match=reason):
        await inspect_image(IMAGE, storage_options=options)
    assert reads == []
