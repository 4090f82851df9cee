"""deliver_image_url: pass http through, sign store objects, inline or upload the rest."""

from __future__ import annotations

import base64
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import fsspec
import httpx
import pytest
from support import stand_in_check

from pika_tasks.images import (
    ImageError,
    ImageLimits,
    ImageSource,
    deliver_image,
    deliver_image_url,
    inspect_image,
)

# The S3 server is on 127.0.0.1, named by the options' endpoint_url.
S3_ON_LOOPBACK = ImageLimits(allow_private_addresses=True)


class FakeUploader:
    """Records uploads and answers with a made-up storage URL."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str, str]] = []

    async def __call__(self, data: bytes, content_type: str, file_name: str) -> str:
        self.calls.append((data, content_type, file_name))
        return f"https://storage.example/{len(self.calls)}/{file_name}"


def _decode_data_uri(url: str) -> tuple[str, bytes]:
    header, payload = url.split(",", 1)
    assert header.startswith("data:") and header.endswith(";base64")
    return header[5:-7], base64.b64decode(payload)


async def test_http_urls_pass_through_unchanged() -> None:
    url = "https://images.example/a.png?X-Sig=abc"
    check = stand_in_check(url, size_bytes=10)
    uploader = FakeUploader()

    delivered = await deliver_image(check, upload=uploader)

    assert (delivered.url, delivered.source) == (url, ImageSource.HTTP)
    assert await deliver_image_url(check, upload=uploader) == url
    assert uploader.calls == []


async def test_s3_object_becomes_a_presigned_url_fetchable_over_http(
    s3_bucket: tuple[str, dict[str, Any]], png: bytes
) -> None:
    bucket, options = s3_bucket
    with fsspec.open(f"{bucket}/in/a.png", "wb", **options) as handle:
        handle.write(png)
    check = await inspect_image(
        f"{bucket}/in/a.png", storage_options=options, limits=S3_ON_LOOPBACK
    )
    uploader = FakeUploader()

    delivered = await deliver_image(
        check, storage_options=options, upload=uploader, sign_expires_seconds=600
    )

    assert delivered.source is ImageSource.SIGNED_URL
    assert delivered.url.startswith(options["endpoint_url"])
    query = parse_qs(urlsplit(delivered.url).query)
    if "X-Amz-Expires" in query:  # SigV4: a lifetime
        assert query["X-Amz-Expires"] == ["600"]
    else:  # SigV2: an expiry time
        assert abs(int(query["Expires"][0]) - (time.time() + 600)) < 60
    async with httpx.AsyncClient() as client:
        response = await client.get(delivered.url)
    assert response.status_code == 200
    assert response.content == png
    assert uploader.calls == []


async def test_s3_object_without_signing_is_sent_inline(
    s3_bucket: tuple[str, dict[str, Any]], png: bytes
) -> None:
    bucket, options = s3_bucket
    with fsspec.open(f"{bucket}/a.png", "wb", **options) as handle:
        handle.write(png)
    check = await inspect_image(f"{bucket}/a.png", storage_options=options, limits=S3_ON_LOOPBACK)

    delivered = await deliver_image(check, storage_options=options, sign_urls=False)

    assert delivered.source is ImageSource.DATA_URI
    assert _decode_data_uri(delivered.url) == ("image/png", png)


async def test_small_local_image_becomes_a_data_uri(tmp_path: Path, jpeg: bytes) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg)
    check = await inspect_image(str(path))
    uploader = FakeUploader()

    url = await deliver_image_url(check, upload=uploader)

    assert _decode_data_uri(url) == ("image/jpeg", jpeg)
    assert uploader.calls == []


async def test_memory_image_becomes_a_data_uri(png: bytes) -> None:
    with fsspec.open("memory://resolve/a.png", "wb") as handle:
        handle.write(png)
    check = await inspect_image("memory://resolve/a.png")

    delivered = await deliver_image(check)

    assert delivered.source is ImageSource.DATA_URI
    assert _decode_data_uri(delivered.url)[1] == png


async def test_large_local_image_is_uploaded(
    tmp_path: Path, image_bytes: Callable[..., bytes]
) -> None:
    data = image_bytes("PNG", size=(200, 200), noise=True)
    path = tmp_path / "Big Frame.png"
    path.write_bytes(data)
    check = await inspect_image(str(path))
    uploader = FakeUploader()

    delivered = await deliver_image(check, upload=uploader, data_uri_max_bytes=len(data) - 1)

    assert uploader.calls == [(data, "image/png", "Big-Frame.png")]
    assert (delivered.url, delivered.source) == (
        "https://storage.example/1/Big-Frame.png",
        ImageSource.UPLOAD,
    )


async def test_data_uri_threshold_is_inclusive(tmp_path: Path, png: bytes) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png)
    check = await inspect_image(str(path))

    delivered = await deliver_image(check, data_uri_max_bytes=len(png))

    assert delivered.source is ImageSource.DATA_URI


async def test_large_image_without_an_uploader_is_an_error(tmp_path: Path, png: bytes) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png)
    check = await inspect_image(str(path))

    with pytest.raises(ImageError, match="more than the 10 bytes sent inline, and no uploader"):
        await deliver_image_url(check, data_uri_max_bytes=10)


async def test_image_changed_since_inspection_is_refused(
    tmp_path: Path, png: bytes, jpeg: bytes
) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png)
    check = await inspect_image(str(path))
    path.write_bytes(png[:-4] + b"\x00\x00\x00\x00")

    with pytest.raises(ImageError, match="changed since it was inspected"):
        await deliver_image_url(check)


async def test_kept_bytes_are_used_once_then_released(tmp_path: Path, png: bytes) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png)
    check = await inspect_image(str(path), keep_data=True)
    path.unlink()  # proves the kept bytes are used, not a second read

    url = await deliver_image_url(check)

    assert _decode_data_uri(url)[1] == png
    assert check._data is None


async def test_check_that_crossed_a_process_boundary_re_reads(tmp_path: Path, png: bytes) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png)
    check = pickle.loads(pickle.dumps(await inspect_image(str(path), keep_data=True)))

    url = await deliver_image_url(check)

    assert _decode_data_uri(url)[1] == png


async def test_delivered_image_repr_is_short(png: bytes) -> None:
    with fsspec.open("memory://resolve/repr.png", "wb") as handle:
        handle.write(png)
    delivered = await deliver_image(await inspect_image("memory://resolve/repr.png"))

    assert len(repr(delivered)) < 130
    assert "data_uri" in repr(delivered)


def test_image_error_pickles() -> None:
    error = ImageError("https://user:pw@example.com/a.png?sig=1", "not found")

    again = pickle.loads(pickle.dumps(error))

    assert str(again) == str(error) == "https://example.com/a.png: not found"
    assert (again.image, again.reason) == ("https://example.com/a.png", "not found")


async def test_store_that_fails_to_sign_sends_the_bytes(
    png: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with fsspec.open("memory://resolve/nosign.png", "wb") as handle:
        handle.write(png)
    check = await inspect_image("memory://resolve/nosign.png")

    def refuse(self: Any, path: str, expiration: int = 100, **kwargs: Any) -> str:
        raise RuntimeError("no service account")

    monkeypatch.setattr(type(fsspec.filesystem("memory")), "sign", refuse)

    delivered = await deliver_image(check)

    assert delivered.source is ImageSource.DATA_URI
    assert "cannot sign a URL for memory://resolve/nosign.png (no service account)" in caplog.text


async def test_image_that_grew_since_inspection_is_refused(tmp_path: Path, png: bytes) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png)
    check = await inspect_image(str(path))
    path.write_bytes(png + b"more")

    with pytest.raises(ImageError, match=r"changed since it was inspected \(it grew\)"):
        await deliver_image_url(check)
