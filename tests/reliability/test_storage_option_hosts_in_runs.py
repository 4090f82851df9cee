"""Images on a store whose endpoint, given in storage options, is a private address.

moto's S3 server on 127.0.0.1, behind a WSGI middleware that counts the requests for
the images, holds them; the storage options name it by ``endpoint_url`` (as a MinIO
on a private network would be named).  By default, through the batch flow and both
commands, the rows whose images are on it fail alone, naming their row, field and
option, and the store is never asked for them, while a local image's row (which
does not use the options) is generated; with private addresses allowed
(``allow_private_image_urls``, ``--allow-private-image-urls``) every row is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import pytest
from support import (
    FAKE_AWS,
    explain,
    pika,
    png_bytes,
    point_at,
    process_env,
    report_lines,
    run_batch,
    s3_bucket,
    s3_server,
)

pytestmark = pytest.mark.timeout(120)


@dataclass
class CountingS3:
    """A bucket on moto's S3 server on loopback, and the requests made for ``/in/`` keys."""

    bucket: str
    options: dict[str, Any]
    image_requests: list[str] = field(default_factory=list)


@pytest.fixture
def counting_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingS3]:
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    requests: list[str] = []

    def counting(moto: Callable[..., Any]) -> Callable[..., Any]:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if "/in/" in environ.get("PATH_INFO", ""):
                requests.append(f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}")
            return moto(environ, start_response)

        return app

    with s3_server(counting) as options, s3_bucket(options, "pika-hosts") as bucket:
        fs = fsspec.filesystem("s3", **options, skip_instance_cache=True)
        for n in range(2):
            fs.pipe(f"{bucket}/in/images/{n}.png", png_bytes(color=(60 * n, 100, 200)))
        requests.clear()
        yield CountingS3(bucket, options, requests)


REFUSED = (
    "storage option 'endpoint_url': host '127.0.0.1' resolves to 127.0.0.1, a private, "
    "loopback or link-local address; such images are refused unless "
    "ImageLimits(allow_private_addresses=True)"
)


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed"])
def test_rows_on_a_store_at_a_private_endpoint_fail_alone_unless_allowed(
    allowed: bool,
    counting_s3: CountingS3,
    make_emulator: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    prefect_harness: None,
    tmp_path: Path,
) -> None:
    emu = make_emulator(runners=2, job_seconds=0.05, fps=4, fast=True)
    point_at(emu, monkeypatch)
    (tmp_path / "local.png").write_bytes(png_bytes())
    images = [f"{counting_s3.bucket}/in/images/0.png", str(tmp_path / "local.png")]
    images.append(f"{counting_s3.bucket}/in/images/1.png")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "id,image,prompt\n" + "".join(f"r{n},{image},pan\n" for n, image in enumerate(images))
    )

    _, result = asyncio.run(
        run_batch(
            str(manifest),
            str(tmp_path / "out"),
            image_storage_options=counting_s3.options,
            allow_private_image_urls=allowed,
            fail_on_partial=False,
        )
    )

    lines = report_lines(result.report_url)
    if allowed:
        assert [line["status"] for line in lines] == ["succeeded"] * 3
        assert counting_s3.image_requests, "the store was never asked for the images"
        assert emu.stats()["submissions"] == 3
        return
    assert [line["status"] for line in lines] == ["failed", "succeeded", "failed"]
    for number in (1, 3):
        error = lines[number - 1]["error"]
        assert error == f"row {number}, field 'image': {images[number - 1]}: {REFUSED}"
        assert "testing" not in error
    assert counting_s3.image_requests == []
    assert emu.stats()["submissions"] == 1


def test_the_commands_refuse_a_private_endpoint_unless_allowed(
    counting_s3: CountingS3,
    make_emulator: Callable[..., Any],
    prefect_harness: None,
    tmp_path: Path,
) -> None:
    """The manifest and its images on the store, named by ``--storage-options`` (the
    operator may read a manifest wherever it likes: only image reads are checked)."""
    fs = fsspec.filesystem("s3", **counting_s3.options, skip_instance_cache=True)
    manifest = f"{counting_s3.bucket}/in/manifest.csv"
    fs.pipe(manifest, b"id,image,prompt\nr0,images/0.png,pan\nr1,images/1.png,zoom\n")
    counting_s3.image_requests.clear()
    storage = ["--storage-options", json.dumps(counting_s3.options)]

    refused = pika("estimate", manifest, *storage, "--json", env=process_env(), timeout=60)
    assert refused.returncode == 1, explain(refused)
    invalid = json.loads(refused.stdout)["invalid"]
    assert [row["error"] for row in invalid] == [
        f"row {n + 1}, field 'image': {counting_s3.bucket}/in/images/{n}.png: {REFUSED}"
        for n in range(2)
    ]
    assert [request for request in counting_s3.image_requests if "/images/" in request] == []

    allowed = pika(
        "estimate",
        manifest,
        *storage,
        "--allow-private-image-urls",
        "--json",
        env=process_env(),
        timeout=60,
    )
    assert allowed.returncode == 0, explain(allowed)
    assert json.loads(allowed.stdout)["invalid"] == []

    emu = make_emulator(runners=2, job_seconds=0.05, fps=4, fast=True)
    out = tmp_path / "out"
    run = pika(
        "run",
        manifest,
        "--out",
        str(out),
        *storage,
        "--output-storage-options",
        "{}",
        "--allow-private-image-urls",
        env=process_env(emu),
        timeout=90,
    )
    assert run.returncode == 0, explain(run)
    assert [line["status"] for line in report_lines(out)] == ["succeeded"] * 2
    assert emu.stats()["submissions"] == 2
