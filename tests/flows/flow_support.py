"""Helpers of the batch-flow tests: running and killing ``pika-tasks run`` processes, and
holding one at the rename that publishes its report."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import KEY, pika, pika_command, process_env, wait_until


def start_batch(
    manifest: Path,
    out: Path | str,
    emu: Any,
    *options: str,
    key: str = KEY,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``pika-tasks run MANIFEST --out OUT OPTIONS`` against ``emu``; return the process."""
    return subprocess.Popen(
        pika_command("run", str(manifest), "--out", str(out), *options),
        env=process_env(emu, key=key, **(extra_env or {})),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run_to_end(
    manifest: Path, out: Path | str, emu: Any, *options: str
) -> subprocess.CompletedProcess[str]:
    """Run ``pika-tasks run MANIFEST --out OUT OPTIONS`` against ``emu`` to its end."""
    return pika(
        "run", str(manifest), "--out", str(out), *options, env=process_env(emu), timeout=180
    )


def wait_while_running(
    process: subprocess.Popen[bytes], seen: Callable[[], bool], limit: float = 90
) -> None:
    """Poll until ``seen()`` is true; fail if ``process`` ends first or ``limit`` passes."""

    def reached() -> bool:
        if seen():
            return True
        assert process.poll() is None, (
            process.stderr.read().decode()[-3000:] if process.stderr else ""
        )
        return False

    wait_until(reached, "the awaited point", limit, interval=0.01)


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
