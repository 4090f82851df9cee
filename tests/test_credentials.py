"""The FalCredentials block: Prefect's standard checks, secrecy, and the client it builds."""

from __future__ import annotations

import io
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite

from pika_tasks import FalCredentials
from pika_tasks.credentials import LOGO_URL

FAKE_KEY = "fal-test-KEY-7b1d9c"


@pytest.fixture
def _logo_served_from_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The logo is published at LOGO_URL; these machines have no internet, so serve
    the bundled file for that one URL and let every other URL through untouched."""
    import prefect.testing.standard_test_suites.blocks as suite

    logo = resources.files("pika_tasks").joinpath("assets/logo.png").read_bytes()

    def fake_urlopen(url: str, *args: Any, **kwargs: Any) -> Any:
        if url == LOGO_URL:
            return io.BytesIO(logo)
        return urlopen(url, *args, **kwargs)

    monkeypatch.setattr(suite, "urlopen", fake_urlopen)


@pytest.mark.usefixtures("_logo_served_from_package")
class TestFalCredentialsStandard(BlockStandardTestSuite):
    @pytest.fixture
    def block(self) -> type[FalCredentials]:
        return FalCredentials


def test_key_is_secret_in_repr_and_dump() -> None:
    credentials = FalCredentials(key=FAKE_KEY)
    assert FAKE_KEY not in repr(credentials)
    assert FAKE_KEY not in str(credentials)
    assert FAKE_KEY not in credentials.model_dump_json()
    assert credentials.key.get_secret_value() == FAKE_KEY


def test_settings_carry_block_values_and_overrides() -> None:
    credentials = FalCredentials(key=FAKE_KEY, queue_url="http://127.0.0.1:9")
    settings = credentials.get_settings(poll_interval=0.25)
    assert settings.fal_key is not None
    assert settings.fal_key.get_secret_value() == FAKE_KEY
    assert settings.queue_url == "http://127.0.0.1:9"
    assert settings.poll_interval == 0.25


async def test_get_client_talks_to_the_queue_with_the_key(make_emulator: Any) -> None:
    emu = make_emulator(require_key=FAKE_KEY, job_seconds=0.1, fps=4)
    credentials = FalCredentials(key=FAKE_KEY, queue_url=emu.url, storage_url=emu.url)
    async with credentials.get_client() as client:
        handle = await client.submit({"image_url": "data:,not-an-image", "prompt": "check the key"})
    assert handle.request_id
    assert emu.stats()["submissions"] == 1


def test_block_registers_through_the_collections_entry_point(
    prefect_harness: None, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": PREFECT_API_URL.value() or "", "PATH": ""}
    import os

    env = {**os.environ, **env}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "pika_tasks"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fal Credentials" in done.stdout
