"""Input images: storage uploads, http(s) URLs, data URIs, and images that fail the job."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from emulator_support import LoopbackHttp, data_uri, png_bytes, submit, wait_completed


def _upload(client: httpx.Client, base: str, data: bytes, **headers: str) -> dict[str, str]:
    initiated = client.post(
        f"{base}/storage/upload/initiate",
        params={"storage_type": "gcs"},
        json={"content_type": "image/png", "file_name": "frame.png"},
        headers=headers,
    )
    assert initiated.status_code == 200
    urls = initiated.json()
    assert set(urls) == {"upload_url", "file_url"}
    put = client.put(urls["upload_url"], content=data, headers={"Content-Type": "image/png"})
    assert put.status_code == 200
    return {"upload_url": urls["upload_url"], "file_url": urls["file_url"]}


def _failed(client: httpx.Client, base: str, image_url: str) -> tuple[dict[str, Any], Any]:
    answer = submit(client, base, image_url=image_url)
    final = wait_completed(client, answer["status_url"])
    return final, client.get(answer["response_url"])


def test_upload_then_use_the_file_url(
    make_emulator: Callable[..., Any], client: httpx.Client
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2, require_key="k")
    auth = {"Authorization": "Key k"}
    data = png_bytes()
    unauthorised = client.post(
        f"{emu.url}/storage/upload/initiate",
        json={"content_type": "image/png", "file_name": "a.png"},
    )
    assert unauthorised.status_code == 401
    urls = _upload(client, emu.url, data, **auth)
    file_url = urls["file_url"]
    served = client.get(file_url)
    assert served.content == data and served.headers["content-type"] == "image/png"
    answer = submit(client, emu.url, image_url=file_url, headers=auth)
    final = wait_completed(client, answer["status_url"], headers=auth)
    assert "error" not in final
    result = client.get(answer["response_url"], headers=auth)
    assert result.status_code == 200
    stats = emu.stats()
    assert stats["uploads"] == 1 and stats["upload_bytes"] == len(data)
    reused = client.put(urls["upload_url"], content=b"x")
    assert reused.status_code == 404 and "already used" in reused.json()["detail"]


def test_image_from_an_http_url(emulator: Any, client: httpx.Client) -> None:
    with LoopbackHttp(body=png_bytes()) as origin:
        answer = submit(client, emulator.url, image_url=f"{origin.url}/picture.png")
        final = wait_completed(client, answer["status_url"])
    assert "error" not in final
    assert client.get(answer["response_url"]).status_code == 200


def test_not_an_image_fails_the_job_with_422(emulator: Any, client: httpx.Client) -> None:
    final, result = _failed(client, emulator.url, data_uri(b"plain text", "text/plain"))
    assert final["error_type"] == "image_load_error" and final["error"]
    assert result.status_code == 422
    (item,) = result.json()["detail"]
    assert item["loc"] == ["body", "image_url"] and item["type"] == "image_load_error"
    assert emulator.stats()["failed"] == 1


def test_unreachable_url_fails_the_job(emulator: Any, client: httpx.Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    final, result = _failed(client, emulator.url, f"http://127.0.0.1:{port}/gone.png")
    assert final["error_type"] == "file_download_error"
    assert result.status_code == 422
    final, _ = _failed(client, emulator.url, f"{emulator.url}/files/missing.png")
    assert final["error_type"] == "file_download_error"
    final, _ = _failed(client, emulator.url, "ftp://example.invalid/a.png")
    assert final["error_type"] == "file_download_error"


def test_too_large_images_fail_the_job(
    make_emulator: Callable[..., Any], client: httpx.Client
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2, image_max_bytes=1000)
    big = png_bytes()
    assert len(big) > 1000
    final, _ = _failed(client, emu.url, data_uri(big))
    assert final["error_type"] == "image_too_large"
    with LoopbackHttp(body=big) as origin:
        final, _ = _failed(client, emu.url, f"{origin.url}/big.png")
    assert final["error_type"] == "image_too_large"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_slow_image_url_times_out(
    make_emulator: Callable[..., Any], client: httpx.Client, silent_port: int
) -> None:
    emu = make_emulator(job_seconds=0.1, fps=2, image_fetch_timeout=0.3)
    final, _ = _failed(client, emu.url, f"http://127.0.0.1:{silent_port}/slow.png")
    assert final["error_type"] == "file_download_error"
    assert "0.3" in final["error"]
