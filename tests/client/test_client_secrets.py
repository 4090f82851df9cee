"""The key: required at construction, sent only to fal's hosts, never shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from _client_support import ARGS, FAKE_KEY, expect, quick_settings
from pydantic import SecretStr

from pika_tasks.client import PikaClient
from pika_tasks.errors import AuthenticationError, MissingKeyError
from pika_tasks.settings import PikaSettings


def test_missing_key_is_refused_with_help(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("FAL_KEY", raising=False)
    with expect(MissingKeyError, match="FAL_KEY"):
        PikaClient()
    with expect(MissingKeyError):
        PikaClient(queue_url="http://127.0.0.1:1")


async def test_key_from_the_environment_and_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    async with PikaClient(poll_interval=0.25) as client:
        assert client.settings.poll_interval == 0.25
        assert client.settings.require_key().get_secret_value() == FAKE_KEY
    base = PikaSettings(fal_key=SecretStr("other"), queue_url="http://a.test")
    async with PikaClient(base, queue_url="http://b.test", fal_key=FAKE_KEY) as client:
        assert client.settings.queue_url == "http://b.test"
        assert client.settings.require_key().get_secret_value() == FAKE_KEY


async def test_repr_hides_the_key() -> None:
    async with PikaClient(quick_settings("http://queue.test")) as client:
        for text in (repr(client), str(client), repr(client.settings), repr(vars(client))):
            assert FAKE_KEY not in text
        assert "queue.test" in repr(client)


async def test_key_goes_to_fal_hosts_only(make_client: Callable[..., PikaClient]) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "storage.test":
            return httpx.Response(
                200,
                json={
                    "upload_url": "https://bucket.test/put?sig=x",
                    "file_url": "https://cdn.test/a",
                },
            )
        return httpx.Response(200, content=b"data")

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = make_client(
        settings=quick_settings("https://queue.test", storage_url="https://storage.test"),
        http=http,
    )
    await client.download("https://cdn.test/video.mp4", lambda chunk: None)
    await client.download("https://queue.test/files/video.mp4", lambda chunk: None)
    assert await client.upload(b"png", content_type="image/png") == "https://cdn.test/a"
    keyed = {request.url.host: "Authorization" in request.headers for request in seen}
    assert keyed == {
        "cdn.test": False,
        "queue.test": True,
        "storage.test": True,
        "bucket.test": False,
    }
    assert seen[0].headers.get("Accept-Encoding") == "identity"


async def test_a_key_echoed_by_the_server_is_scrubbed(
    make_client: Callable[..., PikaClient],
) -> None:
    echo = httpx.Response(
        403, json={"detail": f"Key {FAKE_KEY} is locked. Reason: Exhausted balance"}
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: echo))
    client = make_client("https://queue.test", http=http)
    with expect(AuthenticationError, match="Exhausted balance") as info:
        await client.submit(ARGS)
    assert info.value.status_code == 403


async def test_a_given_http_client_is_left_open(make_client: Callable[..., PikaClient]) -> None:
    http = httpx.AsyncClient()
    async with PikaClient(quick_settings("https://queue.test"), http=http):
        pass
    assert not http.is_closed
    await http.aclose()


def test_unknown_override_is_refused() -> None:
    with pytest.raises(TypeError, match="pol_interval"):
        PikaClient(fal_key=FAKE_KEY, pol_interval=1.0)
