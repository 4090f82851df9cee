"""Helpers of the batch-flow tests: pointing the flow at an emulator, running and killing
``pika-tasks run`` processes, and holding one at the rename that publishes its report."""

from __future__ import annotations

import inspect
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
    manifest: Path,
    out: Path | str,
    emu: Any,
    *options: str,
    key: str = KEY,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        run_command(manifest, str(out), *options),
        env={**batch_env(emu, key), **(extra_env or {})},
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


def wait_while_running(
    process: subprocess.Popen[bytes], seen: Callable[[], bool], limit: float = 90
) -> None:
    """Poll until ``seen()`` is true; fail if ``process`` ends first or ``limit`` passes."""
    deadline = time.monotonic() + limit
    while not seen():
        assert process.poll() is None, (
            process.stderr.read().decode()[-3000:] if process.stderr else ""
        )
        assert time.monotonic() < deadline, "the awaited point was never reached"
        time.sleep(0.01)


def kill_when(
    process: subprocess.Popen[bytes], seen: Callable[[], bool], limit: float = 90
) -> None:
    """SIGKILL ``process`` as soon as ``seen()`` is true (polled; never a timer)."""
    wait_while_running(process, seen, limit)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


# --------------------------------------------------------------------------- report hold

HOLD_MARKER_VARIABLE = "HOLD_REPORT_RENAME_MARKER"
"""The variable naming the marker file of :func:`hold_report_rename_env`."""


def hold_at_report_rename() -> None:
    """Hold this process at the rename that publishes a run report (``*/_runs/*.jsonl``).

    Run at start-up of a child process (as its ``sitecustomize``), never in the
    tests' own.  A Python audit hook sees every ``os.rename``/``os.replace``
    before the system call is made; at the report's, it writes where the
    report was written and where it goes into the marker file named by
    :data:`HOLD_MARKER_VARIABLE` (whole, by a rename of its own) and then
    blocks the writing thread, so that the test kills the process with the
    report complete in its temporary and not yet at its final path.  The wait
    is bounded only so that a failing test cannot leave the process forever.
    Self-contained: its source is copied into the child's ``sitecustomize``.
    """
    import json
    import os
    import sys
    import threading

    marker = os.environ.get("HOLD_REPORT_RENAME_MARKER")
    if not marker:
        return

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event not in ("os.rename", "os.replace"):
            return
        source, target = (os.fsdecode(os.fspath(arg)) for arg in args[:2])
        folder, name = os.path.split(target)
        if os.path.basename(folder) != "_runs" or not name.endswith(".jsonl"):
            return
        with open(f"{marker}.partial", "w", encoding="utf-8") as handle:
            json.dump({"from": source, "to": target, "pid": os.getpid()}, handle)
        os.replace(f"{marker}.partial", marker)
        threading.Event().wait(120)

    sys.addaudithook(hook)


def hold_report_rename_env(folder: Path, marker: Path) -> dict[str, str]:
    """Environment for a child process held by :func:`hold_at_report_rename`.

    Writes ``folder/sitecustomize.py`` (which Python imports at start-up from
    ``PYTHONPATH``) and returns the variables that load it and name ``marker``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    source = inspect.getsource(hold_at_report_rename)
    (folder / "sitecustomize.py").write_text(
        f"{source}\n\nhold_at_report_rename()\n", encoding="utf-8"
    )
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), HOLD_MARKER_VARIABLE: str(marker)}
