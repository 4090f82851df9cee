"""Child processes: start them, reap them with their exact resource usage, watch their memory.

A worker's CPU time and peak RSS come from ``os.wait4`` (the kernel's own
accounting, peak included), so nothing is lost between two samples.
Long-lived services (emulator, Prefect server, S3) are sampled with psutil
by :class:`MemoryWatch`, which keeps the peak RSS of each process tree.

Example:
    >>> import sys
    >>> run = run_child([sys.executable, "-c", "pass"], env=None, log=None, timeout=60)
    >>> run.returncode, run.cpu_seconds >= 0
    (0, True)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ChildRun:
    """How a finished child process went.

    Attributes:
        returncode: its exit code (negative: killed by that signal).
        cpu_seconds: user + system CPU time, its reaped children included.
        max_rss_bytes: ``ru_maxrss``; after fork and exec it is at least the parent's
            resident size at the fork, so workers report their own ``VmHWM`` too.
        wall_seconds: from start to exit.
    """

    returncode: int
    cpu_seconds: float
    max_rss_bytes: int
    wall_seconds: float


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (0 when gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def machine_cpu_seconds() -> float:
    """User + system CPU seconds used by the whole machine since boot (all CPUs)."""
    times = psutil.cpu_times()
    return float(times.user + times.system + getattr(times, "nice", 0.0))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (0 when gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


@dataclass
class MemoryWatch:
    """Samples the RSS of named process trees from a thread; keeps each tree's peak.

    Example:
        >>> watch = MemoryWatch(interval=0.01)
        >>> watch.add("me", os.getpid())
        >>> with watch:
        ...     time.sleep(0.05)
        >>> watch.peaks["me"] > 0
        True
    """

    interval: float = 0.1
    pids: dict[str, int] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self, name: str, pid: int) -> None:
        """Watch the tree rooted at ``pid`` under ``name``."""
        self.pids[name] = pid
        self.peaks.setdefault(name, 0)

    def sample(self) -> None:
        """Take one sample of every watched tree."""
        for name, pid in list(self.pids.items()):
            self.peaks[name] = max(self.peaks.get(name, 0), tree_rss(pid))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemoryWatch:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def run_child(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    log: Path | None,
    timeout: float,
    watch: MemoryWatch | None = None,
    name: str = "worker",
    cwd: Path | None = None,
) -> ChildRun:
    """Run ``command`` to its end and return its exit code, CPU time and peak RSS.

    Output (stdout and stderr) goes to ``log``.  The child is killed when
    ``timeout`` passes, and :class:`TimeoutError` raised.
    """
    started = time.monotonic()
    with open(log, "wb") if log else open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
        if watch is not None:
            watch.add(name, proc.pid)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.send_signal(signal.SIGKILL)
                os.wait4(proc.pid, 0)
                proc.returncode = -signal.SIGKILL
                raise TimeoutError(f"{name} did not finish within {timeout:g} s (see {log})")
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        returncode=proc.returncode,
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
        max_rss_bytes=usage.ru_maxrss * 1024,
        wall_seconds=round(time.monotonic() - started, 3),
    )
