"""Fixtures of the contract tests: one https emulator, and a driver process per official client.

Both clients speak https to the emulator, which serves a throwaway
certificate that each client is told to trust the way its platform reads
trust settings (``SSL_CERT_FILE`` for Python, ``NODE_EXTRA_CA_CERTS`` for Node).
"""

from __future__ import annotations

import base64
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
from _contract_support import (
    CONTRACT_KEY,
    HERE,
    Driver,
    clean_env,
    install_fal_js,
    node_or_skip,
)
from support import png_bytes

from pika_tasks.emulator import EmulatorServer
from pika_tasks.emulator._tls import self_signed_certificate


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(certificate, key, CA bundle with the certificate added) for the https emulator."""
    folder = tmp_path_factory.mktemp("contract-tls")
    cert, key = self_signed_certificate(folder)
    bundle = folder / "trust.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + cert.read_bytes())
    return cert, key, bundle


@pytest.fixture(scope="session")
def contract_emulator(tls_files: tuple[Path, Path, Path]) -> Iterator[EmulatorServer]:
    """The emulator both clients talk to: https, the contract key required, quick jobs."""
    cert, key, _ = tls_files
    with EmulatorServer(
        ssl_certfile=cert,
        ssl_keyfile=key,
        require_key=CONTRACT_KEY,
        runners=4,
        job_seconds=0.4,
        fps=2,
    ) as emu:
        yield emu


@pytest.fixture
def emu(contract_emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    """The shared emulator, with no fault armed and the queue running, before and after."""
    contract_emulator.clear_faults()
    contract_emulator.resume()
    yield contract_emulator
    contract_emulator.clear_faults()
    contract_emulator.resume()


@pytest.fixture(scope="session")
def describe(
    contract_emulator: EmulatorServer, tls_files: tuple[Path, Path, Path]
) -> Iterator[Callable[[str], dict[str, Any]]]:
    """``describe(request_id)``: what the emulator recorded about a request."""
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    with httpx.Client(verify=trust, timeout=10) as http:

        def record(request_id: str) -> dict[str, Any]:
            response = http.get(f"{contract_emulator.url}/_emulator/requests/{request_id}")
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

        yield record


@pytest.fixture(scope="session")
def job_input() -> dict[str, Any]:
    """A small, valid input (the image inline, so that no network is needed)."""
    image = "data:image/png;base64," + base64.b64encode(png_bytes(64, 48)).decode()
    return {"image_url": image, "prompt": "the camera slowly zooms in", "duration": 5}


@pytest.fixture(scope="session")
def fal_py(
    contract_emulator: EmulatorServer, tls_files: tuple[Path, Path, Path]
) -> Iterator[Driver]:
    """fal's Python client (fal-client), unchanged, in a process pointed at the emulator."""
    env = clean_env(
        FAL_KEY=CONTRACT_KEY,
        # fal-client builds https://{FAL_QUEUE_RUN_HOST}/{endpoint}, reading it at import.
        FAL_QUEUE_RUN_HOST=contract_emulator.url.split("://", 1)[1],
        SSL_CERT_FILE=str(tls_files[2]),
    )
    driver = Driver([sys.executable, str(HERE / "fal_client_driver.py")], env, "fal-client")
    yield driver
    driver.close()


@pytest.fixture(scope="session")
def fal_js(
    contract_emulator: EmulatorServer, tls_files: tuple[Path, Path, Path]
) -> Iterator[Driver]:
    """fal's JavaScript client (@fal-ai/client, pinned), unchanged, in a Node process."""
    node = node_or_skip()
    install_fal_js()
    env = clean_env(
        FAL_KEY=CONTRACT_KEY,
        EMULATOR_URL=contract_emulator.url,
        NODE_EXTRA_CA_CERTS=str(tls_files[0]),
    )
    driver = Driver([node, str(HERE / "fal_js_driver.mjs")], env, "@fal-ai/client")
    yield driver
    driver.close()
