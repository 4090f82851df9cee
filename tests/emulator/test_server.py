"""The server wrapper, TLS, fast mode, the ASGI app on its own, and the command line."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from emulator_support import decode_video, submit, wait_completed
from support import wait_until
from typer.testing import CliRunner

from pika_tasks.emulator import EmulatorConfig, EmulatorServer, create_app, register_command
from pika_tasks.emulator._tls import self_signed_certificate


def test_context_manager_port_zero_and_stats(client: httpx.Client, image_uri: str) -> None:
    with EmulatorServer(EmulatorConfig(job_seconds=0.1, fps=2), runners=3) as emu:
        assert emu.running and emu.port > 0
        assert emu.url == f"http://127.0.0.1:{emu.port}"
        assert emu.config.runners == 3
        answer = submit(client, emu.url, image_url=image_uri)
        wait_completed(client, answer["status_url"])
        over_http = client.get(f"{emu.url}/_emulator/stats").json()
        assert emu.stats() == over_http
        assert over_http["submissions"] == 1 and over_http["requests"]["submit"] == 1
        reset = client.post(f"{emu.url}/_emulator/reset").json()
        assert reset["submissions"] == 0 and reset["requests"] == {}
        assert client.get(answer["response_url"]).status_code == 200  # jobs are kept
        index = client.get(f"{emu.url}/").json()
        assert index["endpoint"] == f"{emu.url}/fal-ai/pika/v2.2/image-to-video"
    assert not emu.running
    with pytest.raises(httpx.ConnectError):
        client.get(f"{emu.url}/_emulator/stats")
    with pytest.raises(RuntimeError, match="cannot be restarted"):
        emu.start()


def test_stop_ends_open_status_streams(client: httpx.Client, image_uri: str) -> None:
    emu = EmulatorServer(job_seconds=60.0, fps=2).start()
    answer = submit(client, emu.url, image_url=image_uri)
    with client.stream("GET", f"{answer['status_url']}/stream") as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("data: ")
        emu.stop()
        remaining = list(lines)  # the server closed the stream
    assert all("COMPLETED" not in line for line in remaining)
    assert not emu.running


def test_https_with_a_self_signed_certificate(
    make_emulator: Callable[..., Any], tmp_path: Path, image_uri: str
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    emu = make_emulator(job_seconds=0.1, fps=2, ssl_certfile=cert, ssl_keyfile=key)
    assert emu.url.startswith("https://127.0.0.1:")
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(verify=trust, timeout=30) as secure:
        answer = submit(secure, emu.url, image_url=image_uri)
        assert answer["status_url"].startswith(f"{emu.url}/fal-ai/pika/requests/")
        wait_completed(secure, answer["status_url"])
        video = secure.get(secure.get(answer["response_url"]).json()["video"]["url"])
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    with httpx.Client() as default_trust, pytest.raises(httpx.ConnectError):
        default_trust.get(f"{emu.url}/_emulator/stats")


def test_fast_mode_renders_each_distinct_video_once(
    make_emulator: Callable[..., Any], client: httpx.Client, image_uri: str
) -> None:
    emu = make_emulator(fast=True, runners=10, job_seconds=0.05, fps=2)
    answers = [submit(client, emu.url, image_url=image_uri, prompt="zoom in") for _ in range(30)]
    answers.append(submit(client, emu.url, image_url=image_uri, prompt="pan right"))
    for answer in answers:
        wait_completed(client, answer["status_url"])
    stats = emu.stats()
    assert stats["succeeded"] == 31
    assert stats["renders"] == 2 and stats["render_cache_hits"] == 29
    sizes = {client.get(a["response_url"]).json()["video"]["file_size"] for a in answers[:30]}
    assert len(sizes) == 1
    first = client.get(client.get(answers[0]["response_url"]).json()["video"]["url"]).content
    assert len(decode_video(first).frames) == 10


async def test_create_app_serves_asgi_without_a_server(image_uri: str) -> None:
    app = create_app(EmulatorConfig(job_seconds=5.0), runners=1)
    assert app.state.engine.config.runners == 1
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://emu.test") as http,
    ):
        answer = await http.post(
            "/fal-ai/pika/v2.2/image-to-video", json={"image_url": image_uri, "prompt": "x"}
        )
        assert answer.json()["status_url"].startswith("http://emu.test/fal-ai/pika/requests/")
        status = await http.get(answer.json()["status_url"])
        assert status.status_code == 202 and status.json()["status"] == "IN_PROGRESS"


def test_register_adds_the_emulator_command() -> None:
    app = typer.Typer()
    register_command(app)

    @app.command()
    def other() -> None:
        """Another command, so that typer keeps sub-commands."""

    result = CliRunner().invoke(app, ["emulator", "--help"])
    assert result.exit_code == 0
    for option in (
        "--port",
        "--runners",
        "--job-seconds",
        "--fast",
        "--require-key",
        "--error-rate-5xx",
        "--drop-download-rate",
        "--result-ttl-seconds",
        "--ssl-certfile",
        "--fault-route",
        "--min-video-bytes",
    ):
        assert option in result.output
    for bad in (["--runners", "0"], ["--fault-route", "nope"], ["--cancel-running", "x"]):
        refused = CliRunner().invoke(app, ["emulator", "--port", "0", *bad])
        assert refused.exit_code == 2, refused.output


def test_module_entry_point_runs_until_interrupted(image_uri: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pika_tasks.emulator",
            "--port",
            "0",
            "--require-key",
            "topsecret",
            "--job-seconds",
            "0.1",
            "--fps",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not any("Ctrl-C" in line for line in lines):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        output = "".join(lines)
        url = output.split("PIKA_QUEUE_URL=", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert "FAL_QUEUE_RUN_HOST" in output and "topsecret" not in output
        with httpx.Client(timeout=30) as http:
            auth = {"Authorization": "Key topsecret"}
            answer = submit(http, url, image_url=image_uri, headers=auth)
            wait_completed(http, answer["status_url"], headers=auth)
        process.send_signal(signal.SIGINT)
        wait_until(lambda: process.poll() is not None, timeout=15)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
