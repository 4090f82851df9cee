"""What machine and software a run was measured on.

Example:
    >>> info = describe_machine()
    >>> info["nproc"] >= 1 and info["python"].count(".") == 2
    True
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

_PACKAGES = ("pika-tasks", "prefect", "httpx", "fal-client", "uvicorn", "moto", "s3fs")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_state(repo: Path) -> dict[str, Any]:
    """The commit measured and whether the library's files differed from it (read-only git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "pika_tasks")
    return {
        "commit": git("rev-parse", "HEAD"),
        "library_changes": None if changed is None else len(changed.splitlines()),
    }


def describe_machine() -> dict[str, Any]:
    """CPU count and model, memory, OS, Python and package versions."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": os.cpu_count() or 1,
        "cpu": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
    }
