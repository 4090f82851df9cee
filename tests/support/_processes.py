"""The command line, run as a user runs it: ``python -m pika_tasks`` in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def pika_command(*args: str) -> list[str]:
    """The argv of ``pika-tasks ARGS`` run by this interpreter.

    >>> pika_command("run", "m.csv")[1:]
    ['-m', 'pika_tasks', 'run', 'm.csv']
    """
    return [sys.executable, "-m", "pika_tasks", *args]


def pika(
    *args: str, env: dict[str, str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``pika-tasks ARGS`` to completion (``env`` from ``process_env``); return what it did."""
    return subprocess.run(
        pika_command(*args), env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def explain(done: subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]) -> str:
    """The exit code and the tail of a finished process's output, for assertion messages."""
    out, err = (
        text.decode(errors="replace") if isinstance(text, bytes) else (text or "")
        for text in (done.stdout, done.stderr)
    )
    return f"exit {done.returncode}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}"
