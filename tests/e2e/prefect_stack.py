"""A real Prefect stack for end-to-end tests: ``prefect server start`` and process workers.

Everything runs in subprocesses on loopback with an isolated ``PREFECT_HOME``
(SQLite), and is stopped when the test ends, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from support import wait_until

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


class PrefectStack:
    """A Prefect server plus the processes started against it."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.url = f"http://127.0.0.1:{port}/api"
        self.port = port
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.server: subprocess.Popen[bytes] | None = None
        self.server_starts = 0

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PREFECT_", "PIKA_")) and key != "FAL_KEY"
        }
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_HEARTBEAT_SECONDS="5",
            PREFECT_RUNNER_POLL_FREQUENCY="1",
        )
        env.update(extra)
        return env

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.home / f"{name}.log"
        self.logs.append(log)
        with log.open("wb") as sink:
            process = subprocess.Popen(
                args,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def start_server(self) -> None:
        """Start the server (again, after :meth:`stop_server`: same port, same database)."""
        self.server_starts += 1
        self.server = self.start(
            "server" if self.server_starts == 1 else f"server-{self.server_starts}",
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            self.env(),
        )
        wait_until(self._healthy, "the Prefect server to answer", 90, interval=0.2)

    def stop_server(self) -> None:
        """Stop the server alone (SIGTERM; SIGKILL if it lingers); its database stays."""
        server = self.server
        assert server is not None and server.poll() is None, "the server is not running"
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        self.server = None

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def cli(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        cwd: Path = ROOT,
    ) -> str:
        """Run a ``prefect`` command against the server; fail with its output if it fails."""
        done = subprocess.run(
            [PREFECT, *args],
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start_worker(self, pool: str, name: str, env: dict[str, str]) -> None:
        self.start(
            name,
            [PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--name", name],
            env,
        )

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = httpx.request(method, f"{self.url}{path}", timeout=30, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def flow_run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.api("GET", f"/flow_runs/{run_id}")
        return run

    def tail(self, lines: int = 60) -> str:
        text = []
        for log in self.logs:
            if log.exists():
                content = log.read_text(errors="replace").splitlines()[-lines:]
                text.append(f"== {log.name}\n" + "\n".join(content))
        return "\n".join(text)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(self.home, ignore_errors=True)
