"""The servers a scenario talks to, each in its own process: emulator, Prefect, S3.

Each is a context manager that starts the process, waits until it answers
and stops it on exit (only the process it started, by its id).

Example:
    >>> with EmulatorProcess({"runners": 2, "job_seconds": 0.1, "fps": 2}) as emu:
    ...     emu.stats()["submissions"]
    0
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from bench.procs import cpu_seconds, free_port


def _stop(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_up(url: str, proc: subprocess.Popen[Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before answering")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    _stop(proc)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:g} s")


class EmulatorProcess:
    """The emulator (with its job clock, see :mod:`bench.emulator_proc`) in a subprocess.

    Args:
        config: fields of ``EmulatorConfig`` (``fast=True`` is added).
        tls: ``(certfile, keyfile)`` to serve https, or None for http.
    """

    def __init__(self, config: dict[str, Any], tls: tuple[Path, Path] | None = None) -> None:
        self.config = {"fast": True, **config}
        self.tls = tls
        self.url = ""
        self.pid = 0
        self.verify: str | bool = str(tls[0]) if tls else True
        self._proc: subprocess.Popen[str] | None = None
        self._cpu_start = 0.0

    def __enter__(self) -> Self:
        command = [sys.executable, "-m", "bench.emulator_proc", json.dumps(self.config)]
        if self.tls:
            command += [str(self.tls[0]), str(self.tls[1])]
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._proc = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            _stop(proc)
            raise RuntimeError("the emulator process exited before printing its URL")
        hello = json.loads(line)
        self.url, self.pid = hello["url"], hello["pid"]
        self._cpu_start = cpu_seconds(self.pid)
        return self

    def _get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", verify=self.verify, timeout=60.0)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``: request counts per route, submissions, bytes served..."""
        stats: dict[str, Any] = self._get("/_emulator/stats")
        return stats

    def jobs(self) -> list[dict[str, Any]]:
        """Every job's timestamps from ``GET /_bench/jobs``."""
        jobs: list[dict[str, Any]] = self._get("/_bench/jobs")["jobs"]
        return jobs

    def cpu_used(self) -> float:
        """CPU seconds the emulator used since it started serving."""
        return round(cpu_seconds(self.pid) - self._cpu_start, 3)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # the emulator serves until its stdin closes
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            _stop(proc)
        self._proc = None


class PrefectServer:
    """``prefect server start`` (SQLite, no UI) with its own ``PREFECT_HOME``.

    Args:
        home: the ``PREFECT_HOME`` folder (database and settings go there).
        log: file for the server's output (counted for error lines later).
        settings: more ``PREFECT_*`` variables for the server alone.
    """

    def __init__(self, home: Path, log: Path, settings: dict[str, str] | None = None) -> None:
        self.home = home
        self.log = log
        self.settings = dict(settings or {})
        self.database = home / "prefect.db"
        """The server's SQLite database (Prefect's default location under its home)."""
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.pid = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._sink: IO[bytes] | None = None
        self._cpu_start = 0.0

    def env(self) -> dict[str, str]:
        """Variables that point a Prefect client at this server."""
        return {
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
        }

    def __enter__(self) -> Self:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env(), **self.settings}
        env.pop("PREFECT_API_URL")
        self._sink = open(self.log, "wb")
        prefect = Path(sys.executable).with_name("prefect")
        self._proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
        )
        self.pid = self._proc.pid
        _wait_until_up(f"{self.api_url}/health", self._proc, 120.0, "the Prefect server")
        self._cpu_start = cpu_seconds(self.pid)
        return self

    def cpu_used(self) -> float:
        """CPU seconds the server used since it answered."""
        return round(cpu_seconds(self.pid) - self._cpu_start, 3)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None


class MotoS3:
    """moto's S3 server on loopback; :attr:`storage_options` are fsspec's options for it."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.storage_options: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "key": "testing",
            "secret": "testing",
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self._sink: IO[bytes] | None = None

    @staticmethod
    def env() -> dict[str, str]:
        """Fake credentials (and a region s3fs does not send as a LocationConstraint)."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def __enter__(self) -> Self:
        self._sink = open(self.log, "wb")
        moto = Path(sys.executable).with_name("moto_server")
        self._proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
            env={**os.environ, **self.env()},
            stdin=subprocess.DEVNULL,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
        )
        _wait_until_up(f"{self.endpoint}/moto-api/", self._proc, 60.0, "the S3 server")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None
