"""Helpers of the batch-flow tests: pointing the flow at an emulator, running and killing
``pika-tasks run`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

KEY = "fal-test-KEY-flows-91c4"


def point_at(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point PikaSettings (read from the environment by the flow) at ``emu``."""
    monkeypatch.setenv("FAL_KEY", KEY)
    monkeypatch.setenv("PIKA_QUEUE_URL", emu.url)
    monkeypatch.setenv("PIKA_STORAGE_URL", emu.url)
    monkeypatch.setenv("PIKA_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("PIKA_MAX_POLL_INTERVAL", "0.2")


def batch_env(emu: Any, key: str = KEY) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        "FAL_KEY": key,
        "PIKA_QUEUE_URL": emu.url,
        "PIKA_STORAGE_URL": emu.url,
        "PIKA_POLL_INTERVAL": "0.05",
        "PIKA_MAX_POLL_INTERVAL": "0.2",
        # The harness's API: quicker than an ephemeral server per process.
        "PREFECT_API_URL": PREFECT_API_URL.value() or "",
    }


def run_command(manifest: Path, out: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "pika_tasks", "run", str(manifest), "--out", out, *options]


def start_batch(
    manifest: Path, out: Path | str, emu: Any, *options: str, key: str = KEY
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        run_command(manifest, str(out), *options),
        env=batch_env(emu, key),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run_to_end(
    manifest: Path, out: Path | str, emu: Any, *options: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        run_command(manifest, str(out), *options),
        env=batch_env(emu),
        capture_output=True,
        timeout=180,
    )


def kill_when(
    process: subprocess.Popen[bytes], seen: Callable[[], bool], limit: float = 90
) -> None:
    """SIGKILL ``process`` as soon as ``seen()`` is true (polled; never a timer)."""
    deadline = time.monotonic() + limit
    while not seen():
        assert process.poll() is None, (
            process.stderr.read().decode()[-3000:] if process.stderr else ""
        )
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
