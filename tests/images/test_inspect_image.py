"""inspect_image: real images pass; everything else fails with a clear reason."""

from __future__ import annotations

import ftplib
import hashlib
import json
import pickle
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest

from pika_tasks.errors import PikaError, is_transient
from pika_tasks.images import (
    ImageCheck,
    ImageError,
    ImageLimits,
    ImageUnavailableError,
    _fetch,
    check_image,
    inspect_image,
)

LOOPBACK_OK = ImageLimits(allow_private_addresses=True)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


async def test_png_on_local_disk(tmp_path: Path, png: bytes) -> None:
    path = _write(tmp_path / "a.png", png)

    check = await inspect_image(path)

    assert check == ImageCheck(
        image=path,
        size_bytes=len(png),
        width=160,
        height=120,
        format="PNG",
        sha256=hashlib.sha256(png).hexdigest(),
        content_type="image/png",
    )


async def test_jpeg_in_memory(image_bytes: Callable[..., bytes]) -> None:
    data = image_bytes("JPEG", size=(640, 360))
    with fsspec.open("memory://inspect/a.jpg", "wb") as handle:
        handle.write(data)

    check = await inspect_image("memory://inspect/a.jpg")

    assert (check.format, check.content_type, check.width, check.height) == (
        "JPEG",
        "image/jpeg",
        640,
        360,
    )
    assert check.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("format", "content_type"), [("WEBP", "image/webp"), ("GIF", "image/gif"), ("BMP", "image/bmp")]
)
async def test_other_accepted_formats(
    tmp_path: Path, image_bytes: Callable[..., bytes], format: str, content_type: str
) -> None:
    check = await inspect_image(_write(tmp_path / "a.img", image_bytes(format)))

    assert (check.format, check.content_type) == (format, content_type)


async def test_image_on_s3(s3_bucket: tuple[str, dict[str, Any]], png: bytes) -> None:
    bucket, options = s3_bucket
    with fsspec.open(f"{bucket}/in/a.png", "wb", **options) as handle:
        handle.write(png)

    # The S3 server is on 127.0.0.1, named by the options' endpoint_url.
    check = await inspect_image(f"{bucket}/in/a.png", storage_options=options, limits=LOOPBACK_OK)

    assert (check.size_bytes, check.format) == (len(png), "PNG")


async def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.png", b"these are not pixels\n")

    with pytest.raises(ImageError) as caught:
        await inspect_image(path)

    assert str(caught.value) == f"{path}: is not an image (Pillow cannot identify it)"
    assert isinstance(caught.value, PikaError)
    assert not is_transient(caught.value)


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
async def test_truncated_image(
    tmp_path: Path, image_bytes: Callable[..., bytes], format: str
) -> None:
    data = image_bytes(format, size=(200, 200), noise=True)
    path = _write(tmp_path / "cut", data[: len(data) // 2])

    with pytest.raises(ImageError, match="is damaged or truncated"):
        await inspect_image(path)


async def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is empty"):
        await inspect_image(_write(tmp_path / "empty.png", b""))


async def test_file_larger_than_the_limit_is_refused_before_reading(
    tmp_path: Path, image_bytes: Callable[..., bytes]
) -> None:
    data = image_bytes("PNG", size=(200, 200), noise=True)
    path = _write(tmp_path / "big.png", data)

    with pytest.raises(ImageError, match=r"is larger than the limit of 1000 bytes \(\d+\)"):
        await inspect_image(path, limits=ImageLimits(max_bytes=1000))


async def test_reads_at_most_max_bytes_plus_one_when_the_size_is_unknown(
    image_bytes: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = image_bytes("PNG", size=(200, 200), noise=True)
    with fsspec.open("memory://inspect/nosize.png", "wb") as handle:
        handle.write(data)
    fs_class = type(fsspec.filesystem("memory"))
    real_info, real_cat = fs_class.info, fs_class.cat_file
    reads: list[int] = []

    def info_without_size(self: Any, path: str, **kwargs: Any) -> dict[str, Any]:
        return {**real_info(self, path, **kwargs), "size": None}

    def counting_cat(
        self: Any, path: str, start: int | None = None, end: int | None = None, **kw: Any
    ) -> bytes:
        chunk: bytes = real_cat(self, path, start=start, end=end, **kw)
        reads.append(len(chunk))
        return chunk

    monkeypatch.setattr(fs_class, "info", info_without_size)
    monkeypatch.setattr(fs_class, "cat_file", counting_cat)

    with pytest.raises(ImageError, match="is larger than the limit of 1000 bytes"):
        await inspect_image("memory://inspect/nosize.png", limits=ImageLimits(max_bytes=1000))
    assert reads == [1001]


async def test_check_image_refuses_oversized_bytes_without_decoding(png: bytes) -> None:
    with pytest.raises(ImageError, match="larger than the limit of 10 bytes"):
        check_image(png, limits=ImageLimits(max_bytes=10))


async def test_too_small_and_too_large_dimensions(
    tmp_path: Path, image_bytes: Callable[..., bytes]
) -> None:
    small = _write(tmp_path / "small.png", image_bytes("PNG", size=(8, 300)))
    wide = _write(tmp_path / "wide.png", image_bytes("PNG", size=(2000, 100)))

    with pytest.raises(ImageError, match="is too small: 8x300, sides must be at least 64 px"):
        await inspect_image(small)
    with pytest.raises(ImageError, match="is too large: 2000x100, sides may be at most 1000 px"):
        await inspect_image(wide, limits=ImageLimits(max_side=1000))
    with pytest.raises(ImageError, match="is too large: 2000x100 is more than 100000 pixels"):
        await inspect_image(wide, limits=ImageLimits(max_pixels=100_000))


async def test_format_not_accepted(tmp_path: Path, image_bytes: Callable[..., bytes]) -> None:
    path = _write(tmp_path / "a.tiff", image_bytes("TIFF"))

    with pytest.raises(
        ImageError, match="is a TIFF image; accepted formats are BMP, GIF, JPEG, PNG, WEBP"
    ):
        await inspect_image(path)


async def test_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as caught:
        await inspect_image(str(tmp_path / "nope.png"))

    assert str(caught.value) == f"{tmp_path / 'nope.png'}: not found"


async def test_missing_s3_object(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    bucket, options = s3_bucket

    with pytest.raises(ImageError, match="not found"):
        await inspect_image(f"{bucket}/nope.png", storage_options=options, limits=LOOPBACK_OK)


async def test_folder_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is a folder"):
        await inspect_image(str(tmp_path))


async def test_unknown_protocol() -> None:
    with pytest.raises(ImageError, match="cannot open its file system"):
        await inspect_image("nosuchproto://bucket/a.png")


async def test_chained_http_urls_are_refused() -> None:
    with pytest.raises(ImageError, match="chained http"):
        await inspect_image("simplecache::https://example.com/a.png")


async def test_keep_data_keeps_the_bytes_privately(tmp_path: Path, png: bytes) -> None:
    path = _write(tmp_path / "a.png", png)

    kept = await inspect_image(path, keep_data=True)
    dropped = await inspect_image(path)

    assert kept._data == png
    assert dropped._data is None
    assert set(json.loads(kept.model_dump_json())) == {
        "image",
        "size_bytes",
        "width",
        "height",
        "format",
        "sha256",
        "content_type",
    }
    assert pickle.loads(pickle.dumps(kept))._data is None
    assert kept == dropped


# --------------------------------------------------------------------------- http(s)


async def test_loopback_http_image_is_refused_by_default(http_server: Any, png: bytes) -> None:
    http_server.routes["/a.png"] = images_route(png)

    with pytest.raises(ImageError) as caught:
        await inspect_image(f"{http_server.url}/a.png")

    assert "resolves to 127.0.0.1, a private, loopback or link-local address" in str(caught.value)
    assert "allow_private_addresses=True" in str(caught.value)
    assert http_server.hits == []  # refused before connecting


async def test_loopback_http_image_with_private_addresses_allowed(
    http_server: Any, png: bytes
) -> None:
    http_server.routes["/a.png"] = images_route(png)

    check = await inspect_image(f"{http_server.url}/a.png?sig=secret", limits=LOOPBACK_OK)

    assert (check.format, check.size_bytes) == ("PNG", len(png))
    assert check.image == f"{http_server.url}/a.png?sig=secret"
    assert check._data is None


@pytest.mark.parametrize(
    "host",
    ["localhost", "10.0.0.1", "169.254.169.254", "[::1]", "[::ffff:127.0.0.1]", "100.64.0.1"],
)
async def test_private_hosts_are_refused(host: str) -> None:
    with pytest.raises(ImageError, match="private, loopback or link-local"):
        await inspect_image(f"http://{host}:9/a.png", limits=ImageLimits(timeout_seconds=5))


async def test_every_redirect_hop_is_checked(
    http_server: Any, png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = http_server.url.rsplit(":", 1)[1]
    http_server.routes["/start"] = images_route(
        b"", 302, {"Location": f"http://localhost:{port}/a.png"}
    )
    http_server.routes["/a.png"] = images_route(png)
    # Pretend 127.0.0.1 is public so the first hop goes through; localhost stays private.
    real_check = _fetch._check_public

    async def check_public(url: str, host: str, port: int) -> None:
        if host != "127.0.0.1":
            await real_check(url, host, port)

    monkeypatch.setattr(_fetch, "_check_public", check_public)

    with pytest.raises(ImageError, match="host 'localhost' resolves to"):
        await inspect_image(f"{http_server.url}/start")
    assert http_server.hits == ["/start"]


async def test_redirects_are_followed_when_allowed(http_server: Any, png: bytes) -> None:
    http_server.routes["/start"] = images_route(b"", 301, {"Location": "/a.png"})
    http_server.routes["/a.png"] = images_route(png)

    check = await inspect_image(f"{http_server.url}/start", limits=LOOPBACK_OK)

    assert check.size_bytes == len(png)
    assert http_server.hits == ["/start", "/a.png"]


async def test_redirect_to_a_file_url_is_refused(http_server: Any) -> None:
    http_server.routes["/start"] = images_route(b"", 302, {"Location": "file:///etc/passwd"})

    with pytest.raises(ImageError, match="redirects to file:///etc/passwd, which is not http"):
        await inspect_image(f"{http_server.url}/start", limits=LOOPBACK_OK)


async def test_redirect_loop_stops(http_server: Any) -> None:
    http_server.routes["/loop"] = images_route(b"", 302, {"Location": "/loop"})

    with pytest.raises(ImageError, match="more than 3 redirects"):
        await inspect_image(
            f"{http_server.url}/loop",
            limits=ImageLimits(allow_private_addresses=True, max_redirects=3),
        )
    assert len(http_server.hits) == 4


async def test_http_not_found(http_server: Any) -> None:
    with pytest.raises(ImageError, match=r"not found \(HTTP 404\)") as caught:
        await inspect_image(f"{http_server.url}/nope.png", limits=LOOPBACK_OK)
    assert not is_transient(caught.value)


async def test_http_server_error_is_transient(http_server: Any) -> None:
    http_server.routes["/busy.png"] = images_route(b"busy", 503)

    with pytest.raises(ImageUnavailableError, match="HTTP 503") as caught:
        await inspect_image(f"{http_server.url}/busy.png", limits=LOOPBACK_OK)
    assert is_transient(caught.value)


async def test_http_declared_size_over_the_limit(http_server: Any, png: bytes) -> None:
    http_server.routes["/big.png"] = images_route(png)

    with pytest.raises(ImageError, match=r"larger than the limit of 100 bytes \(\d+\)"):
        await inspect_image(
            f"{http_server.url}/big.png",
            limits=ImageLimits(allow_private_addresses=True, max_bytes=100),
        )


async def test_http_undeclared_size_over_the_limit(
    http_server: Any, image_bytes: Callable[..., bytes]
) -> None:
    data = image_bytes("PNG", size=(300, 300), noise=True)
    # No Content-Length: the body runs until the connection closes.
    http_server.routes["/stream.png"] = images_route(
        data, headers={"Content-Length": "", "Connection": "close"}
    )

    with pytest.raises(ImageError, match=r"larger than the limit of 5000 bytes$"):
        await inspect_image(
            f"{http_server.url}/stream.png",
            limits=ImageLimits(allow_private_addresses=True, max_bytes=5000),
        )


async def test_http_timeout_is_transient(http_server: Any) -> None:
    http_server.routes["/slow.png"] = images_route(b"", stall=True)

    with pytest.raises(ImageUnavailableError, match="timed out") as caught:
        await inspect_image(
            f"{http_server.url}/slow.png",
            limits=ImageLimits(allow_private_addresses=True, timeout_seconds=0.5),
        )
    assert is_transient(caught.value)


async def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.

    with pytest.raises(ImageUnavailableError, match="cannot be fetched") as caught:
        await inspect_image(f"http://127.0.0.1:{port}/a.png", limits=LOOPBACK_OK)
    assert is_transient(caught.value)


def images_route(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None, stall: bool = False
) -> dict[str, Any]:
    """A route of the ``http_server`` fixture."""
    return {"body": body, "status": status, "headers": headers or {}, "stall": stall}


# --------------------------------------------------------------------------- other protocols

NETWORK_PROTOCOLS = ["ftp", "sftp", "ssh", "smb", "hdfs", "webhdfs", "root"]

# Loopback, private and link-local hosts, plainly and in disguise.
PRIVATE_HOSTS = [
    "127.0.0.1",
    "localhost",
    "10.0.0.1",
    "192.168.1.20",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "2130706433",
    "127.1",
    "0x7f.1",
    "user:password@127.0.0.1",
    "example.com@127.0.0.1",
    "[0:0:0:0:0:ffff:7f00:1]",
    "[0:0:0:0:0:0:0:1]",
]


@pytest.fixture
def nothing_is_opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if the image's store is opened; returns the images it was asked for."""
    opened: list[str] = []

    def read_store(image: str, options: dict[str, Any], max_bytes: int) -> bytes:
        opened.append(image)
        raise AssertionError(f"{image} was opened")

    monkeypatch.setattr(_fetch, "_read_store", read_store)
    return opened


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
@pytest.mark.parametrize("protocol", NETWORK_PROTOCOLS)
async def test_private_hosts_are_refused_over_every_network_protocol(
    protocol: str, host: str, nothing_is_opened: list[str]
) -> None:
    image = f"{protocol}://{host}:2121/a.png"

    with pytest.raises(ImageError, match="private, loopback or link-local") as caught:
        await inspect_image(image)

    assert not isinstance(caught.value, ImageUnavailableError)
    assert "allow_private_addresses=True" in str(caught.value)
    assert "password" not in str(caught.value)  # user info is never shown
    assert nothing_is_opened == []


@pytest.mark.parametrize(
    "image",
    [
        "simplecache::ftp://127.0.0.1/a.png",
        "zip://a.png::sftp://10.1.2.3/images.zip",
        "blockcache::webhdfs://localhost:9870/a.png",
        "filecache::smb://169.254.169.254/share/a.png",
    ],
)
async def test_every_part_of_a_chained_url_is_checked(
    image: str, nothing_is_opened: list[str]
) -> None:
    with pytest.raises(ImageError, match="private, loopback or link-local"):
        await inspect_image(image)
    assert nothing_is_opened == []


@pytest.mark.parametrize("image", ["ftp://[::1]/a.png", "sftp://[::ffff:127.0.0.1]:22/a.png"])
async def test_short_ipv6_hosts_are_refused_before_opening_anything(
    image: str, nothing_is_opened: list[str]
) -> None:
    # fsspec splits chained URLs at "::", so such a URL cannot be opened as written.
    with pytest.raises(ImageError, match="invalid URL"):
        await inspect_image(image)
    assert nothing_is_opened == []


async def test_a_host_name_is_checked_by_every_address_it_resolves_to(
    monkeypatch: pytest.MonkeyPatch, nothing_is_opened: list[str]
) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"files.internal": ["93.184.216.34", "10.9.8.7"]}[host]

    monkeypatch.setattr(_fetch, "_resolve_addresses", resolve)

    with pytest.raises(ImageError, match=r"host 'files\.internal' resolves to 10\.9\.8\.7"):
        await inspect_image("sftp://files.internal/photos/a.png")
    assert nothing_is_opened == []


async def test_a_public_host_is_read(monkeypatch: pytest.MonkeyPatch, png: bytes) -> None:
    resolved: list[tuple[str, int]] = []
    opened: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        resolved.append((host, port))
        return ["93.184.216.34"]

    def read_store(image: str, options: dict[str, Any], max_bytes: int) -> bytes:
        opened.append(image)
        return png

    monkeypatch.setattr(_fetch, "_resolve_addresses", resolve)
    monkeypatch.setattr(_fetch, "_read_store", read_store)

    check = await inspect_image("ftp://anonymous@files.example.com:2121/a.png")

    assert check.format == "PNG"
    assert resolved == [("files.example.com", 2121)]
    assert opened == ["ftp://anonymous@files.example.com:2121/a.png"]


@pytest.mark.parametrize(
    "image",
    [
        "s3://10.0.0.1/a.png",  # a bucket, not a host
        "gs://127.0.0.1/a.png",
        "az://localhost/a.png",
        "abfs://169.254.169.254/a.png",
        "memory://127.0.0.1/a.png",
        "file:///tmp/127.0.0.1/a.png",
    ],
)
async def test_urls_that_name_no_host_are_not_checked(
    image: str, monkeypatch: pytest.MonkeyPatch, png: bytes
) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise AssertionError(f"{host} was resolved")

    monkeypatch.setattr(_fetch, "_resolve_addresses", resolve)
    monkeypatch.setattr(_fetch, "_read_store", lambda image, options, max_bytes: png)

    assert (await inspect_image(image)).format == "PNG"


async def test_memory_image_under_a_loopback_looking_name_is_read(png: bytes) -> None:
    fsspec.filesystem("memory").pipe("memory://127.0.0.1/frame.png", png)
    try:
        check = await inspect_image("memory://127.0.0.1/frame.png")
    finally:
        fsspec.filesystem("memory").rm("memory://127.0.0.1/frame.png")
    assert check.size_bytes == len(png)


async def test_loopback_ftp_image_is_refused_without_a_connection(ftp_banner: Any) -> None:
    with pytest.raises(ImageError, match="private, loopback or link-local"):
        await inspect_image(f"ftp://127.0.0.1:{ftp_banner.port}/a.png")
    assert ftp_banner.connections == []


# --------------------------------------------------------------------------- store errors


async def test_an_ftp_servers_refusal_is_an_unavailable_image_naming_it(ftp_banner: Any) -> None:
    image = f"ftp://reader:hunter2@127.0.0.1:{ftp_banner.port}/frames/a.png"

    with pytest.raises(ImageUnavailableError) as caught:
        await inspect_image(image, limits=LOOPBACK_OK)

    message = str(caught.value)
    assert message.startswith(f"ftp://127.0.0.1:{ftp_banner.port}/frames/a.png: cannot be read: ")
    assert "421 Service not available" in message
    assert "hunter2" not in message and "hunter2" not in repr(caught.value.__dict__)
    assert is_transient(caught.value)
    assert len(ftp_banner.connections) == 1


@pytest.mark.parametrize("step", ["info", "cat_file"])
@pytest.mark.parametrize(
    "error",
    [
        ftplib.error_perm("550 Permission denied."),
        ftplib.error_reply("226 Unexpected reply"),
        RuntimeError("the back-end's client broke"),
        KeyError("size"),
    ],
    ids=["ftp-550", "ftp-reply", "runtime", "key"],
)
async def test_store_errors_that_are_not_oserrors_name_the_image(
    step: str, error: Exception, monkeypatch: pytest.MonkeyPatch, png: bytes
) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("memory://broken-store/a.png", png)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(type(fs), step, broken)
    try:
        with pytest.raises(ImageUnavailableError) as caught:
            await inspect_image("memory://broken-store/a.png")
    finally:
        monkeypatch.undo()
        fs.rm("memory://broken-store/a.png")

    assert str(caught.value).startswith("memory://broken-store/a.png: cannot be read: ")
    assert caught.value.__cause__ is error
    assert isinstance(caught.value, PikaError)


async def test_a_file_system_that_fails_as_it_is_made_names_the_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def url_to_fs(url: str, **options: Any) -> Any:
        raise ftplib.error_temp("421 Too many users")

    monkeypatch.setattr(fsspec.core, "url_to_fs", url_to_fs)

    with pytest.raises(ImageUnavailableError, match=r"^memory://x/a\.png: cannot be read: 421"):
        await inspect_image("memory://x/a.png")
