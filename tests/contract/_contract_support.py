"""Helpers of the contract tests: a driver process per official client, and what fal's
clients' sources say they retry.

Each official client runs unchanged in a process of its own (a driver script
beside this file) that takes one JSON command per line and answers one JSON
line.  The tests arm faults on the emulator between commands and look at what
the client returned and at what reached the emulator.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pika_tasks.emulator import FaultRule
from pika_tasks.emulator._infra import TIMEOUT_TYPE_HEADER, FaultSpec

HERE = Path(__file__).parent
ENDPOINT = "fal-ai/pika/v2.2/image-to-video"
CONTRACT_KEY = "contract-key-0f1e2d"
"""The key both clients send; the emulator requires it."""


class Driver:
    """A driver process speaking one JSON line per command.

    Args:
        argv: the command that starts it.
        env: its environment.
        name: what to call it in failures.
    """

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        # Lives as long as the process (closed in close()), hence no with-block.
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self._process = subprocess.Popen(
            argv,
            cwd=HERE,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"{name}-reader", daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr(self) -> str:
        """What the process wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def call(self, op: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        """Run ``op`` with ``args``; the answer is ``{"ok": ...}`` or ``{"error": ...}``."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self._process.stdin.flush()
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"{self.name} did not answer {op} within {timeout:g} s\n{self.stderr()}"
            ) from None
        if line is None:
            raise AssertionError(f"{self.name} exited during {op}\n{self.stderr()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ok(self, op: str, **args: Any) -> Any:
        """Run ``op``; it must succeed. Returns what the client returned."""
        answer = self.call(op, **args)
        assert "ok" in answer, f"{self.name} {op} failed: {answer['error']}"
        return answer["ok"]

    def error(self, op: str, **args: Any) -> dict[str, Any]:
        """Run ``op``; it must fail. Returns the client's error, described."""
        answer = self.call(op, **args)
        assert "error" in answer, f"{self.name} {op} succeeded: {answer['ok']}"
        error: dict[str, Any] = answer["error"]
        return error

    def close(self) -> None:
        """End the process (closing its input ends its loop)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._stderr.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without fal's, pika's or TLS settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FAL_", "PIKA_", "SSL_CERT_", "NODE_"))
    }
    env.update(extra)
    return env


def node_or_skip() -> str:
    """The ``node`` executable; the test is skipped, saying why, where there is none."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not installed: the contract tests of fal's JavaScript client "
            "(@fal-ai/client) need Node.js 18 or later"
        )
    return node


def install_fal_js() -> None:
    """``npm ci`` the pinned @fal-ai/client unless that exact version is installed."""
    lock = json.loads((HERE / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/@fal-ai/client"]["version"]
    installed = HERE / "node_modules" / "@fal-ai" / "client" / "package.json"
    # Test processes running side by side (pytest -n) install one at a time.
    with open(HERE / ".npm-install.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if installed.exists() and json.loads(installed.read_text())["version"] == wanted:
            return
        npm = shutil.which("npm")
        assert npm is not None, "node is installed but npm is not: cannot install @fal-ai/client"
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=HERE,
            check=True,
            timeout=600,
        )


# What the clients' sources say they retry (fal-ai/fal projects/fal_client
# client.py: _should_retry_response; fal-ai/fal-js libs/client retry.ts and queue.ts).


def _user_timeout(spec: FaultSpec) -> bool:
    return spec.status_code == 504 and TIMEOUT_TYPE_HEADER in spec.headers


def fal_client_retries(spec: FaultSpec) -> bool:
    """fal-client: 408, 409, 429, and a 502/503/504 without ``x-fal-request-id`` that
    mentions nginx (a gateway page); never a 504 that names its timeout type."""
    if _user_timeout(spec):
        return False
    if spec.status_code in (502, 503, 504) and not spec.from_fal:
        return True
    return spec.status_code in (408, 409, 429)


def fal_js_retries(spec: FaultSpec) -> bool:
    """@fal-ai/client: 429, 502, 503 and 504 (queue calls), except a user start-timeout."""
    return not _user_timeout(spec) and spec.status_code in (429, 502, 503, 504)


T = TypeVar("T")


def under_fault(emu: Any, rule: FaultRule | str, call: Callable[[], T]) -> tuple[T, int, int]:
    """Arm ``rule``, make one client call: its answer, the requests its route received, and
    the jobs queued meanwhile."""
    parsed = FaultRule.parse(rule) if isinstance(rule, str) else rule
    emu.inject(parsed)
    before = emu.stats()
    answer = call()
    after = emu.stats()
    # A route has no count until it has been asked once (a fresh or reset emulator).
    sent = after["requests"].get(parsed.route, 0) - before["requests"].get(parsed.route, 0)
    return answer, sent, after["submissions"] - before["submissions"]
