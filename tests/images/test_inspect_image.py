"""inspect_image: real images pass; everything else fails with a clear reason."""

from __future__ import annotations

import hashlib
import json
import pickle
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest

from pika_tasks import images
from pika_tasks.errors import PikaError, is_transient
from pika_tasks.images import (
    ImageCheck,
    ImageError,
    ImageLimits,
    ImageUnavailableError,
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

    check = await inspect_image(f"{bucket}/in/a.png", storage_options=options)

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
        await inspect_image(f"{bucket}/nope.png", storage_options=options)


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
    real_check = images._check_public

    async def check_public(url: str, host: str, port: int) -> None:
        if host != "127.0.0.1":
            await real_check(url, host, port)

    monkeypatch.setattr(images, "_check_public", check_public)

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
