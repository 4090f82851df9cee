"""Run ``pika-tasks run`` as a user would, in a subprocess, and measure it from outside.

The batch flow's Python signature is not part of what is measured here: the
command line is.  :func:`run_cli` starts a fresh emulator process (with its
job clock, :mod:`bench.emulator_proc`) and a Prefect server, then
``python -m pika_tasks run MANIFEST --out OUT --max-concurrency C`` with
``PREFECT_API_URL`` pointing at that server and ``PIKA_QUEUE_URL`` at the
emulator, and measures:

- *time to first submit*: from just before the process is started to the
  emulator's first submit, both on this machine's monotonic clock;
- *peak RSS*: the process tree's resident size, sampled with psutil every
  0.1 s, and the command's own ``VmHWM`` (the kernel's peak of the process
  itself, exact between samples);
- *CPU*: user + system time from ``os.wait4`` (start-up and imports
  included: this is what the command costs);
- what it wrote to Prefect (:mod:`bench.prefect_readback`: events and log
  lines of its flow runs), and its flow run's own start and end, when asked.

With ``stop_at_first_submit`` the command is stopped (SIGTERM, then SIGKILL
after a grace period) as soon as the emulator has seen a submit: the
processes stopped are the command and its descendants, by their ids.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.prefect_readback import read_back
from bench.procs import MemoryWatch, machine_cpu_seconds, tree_rss
from bench.runner import Context, count_log_errors, worker_env
from bench.services import EmulatorProcess
from bench.stats import mb, ms

_SAMPLE_SECONDS = 0.1
_STOP_GRACE_SECONDS = 10.0


def vm_hwm(pid: int) -> int:
    """``VmHWM`` of ``pid`` in bytes: the peak resident size of its current image (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def stop_tree(pid: int, grace: float = _STOP_GRACE_SECONDS) -> None:
    """SIGTERM ``pid`` and its descendants, SIGKILL whatever is left after ``grace``.

    Only the processes under ``pid`` (which this module started) are signalled,
    each by its id; ``pid`` itself is reaped by the caller.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    children = procs[1:]
    while time.monotonic() < deadline:
        if root.status() == psutil.STATUS_ZOMBIE and not any(p.is_running() for p in children):
            return
        time.sleep(0.05)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()


@dataclass
class CliRun:
    """How one ``pika-tasks run`` went, measured from outside (raw; scenarios derive figures).

    Attributes:
        rows: rows of its manifest.
        returncode: exit code (0 all rows done, 1 some failed; negative: a signal).
        stopped: stopped on purpose at the first submit.
        timed_out: stopped because it ran past its timeout.
        wall_s: from start to exit.
        first_submit_s: from start to the emulator's first submit (None: no submit).
        cpu_s: user + system CPU of the command (``wait4``), start-up included.
        cpu_at_first_submit_s: its CPU time when the first submit was noticed.
        peak_tree_rss: peak RSS of the command's process tree (psutil samples), bytes.
        peak_hwm: the command's own ``VmHWM`` as last read, bytes.
        peaks: peak RSS of the emulator and the Prefect server, bytes.
        emulator_stats: the emulator's counters at the end.
        jobs: every job's clock (see :mod:`bench.emulator_proc`).
        emulator_cpu_s: the emulator's CPU during the run.
        prefect_cpu_s: the Prefect server's CPU during the run (read-back excluded).
        log_errors: error lines in the command's and the server's logs.
        readback: what it wrote to Prefect (:mod:`bench.prefect_readback`), if asked.
        other_cpu_s: CPU the machine spent outside the run's processes meanwhile.
        written: videos written under the output folder.
        folder: the run's scratch folder (logs stay there).
    """

    rows: int
    returncode: int
    stopped: bool
    timed_out: bool
    wall_s: float
    first_submit_s: float | None
    cpu_s: float
    cpu_at_first_submit_s: float | None
    peak_tree_rss: int
    peak_hwm: int
    peaks: dict[str, int]
    emulator_stats: dict[str, Any]
    jobs: list[dict[str, Any]]
    emulator_cpu_s: float
    prefect_cpu_s: float | None
    log_errors: dict[str, dict[str, int]]
    readback: dict[str, Any] | None
    other_cpu_s: float
    written: int
    folder: str

    @property
    def top_flow_run(self) -> dict[str, Any] | None:
        """The run's top-level flow run (no parent task run) from the read-back, if any."""
        runs = (self.readback or {}).get("flow_runs", [])
        tops = [run for run in runs if run.get("parent_task_run_id") is None]
        return tops[0] if len(tops) == 1 else None

    def flow_seconds(self) -> float | None:
        """The top-level flow run's own duration: its end minus its start, as Prefect has them."""
        run = self.top_flow_run
        if not run or not run.get("start_time") or not run.get("end_time"):
            return None
        start = datetime.fromisoformat(run["start_time"])
        end = datetime.fromisoformat(run["end_time"])
        return round((end - start).total_seconds(), 3)

    def prefect_writes(self) -> int | None:
        """Events plus log lines the run wrote to Prefect (None without a read-back)."""
        if not self.readback:
            return None
        logs = self.readback["logs"]["total"]
        return None if logs is None else int(self.readback["events"]["total"]) + int(logs)


def _submissions(client: httpx.Client, url: str) -> int:
    try:
        response = client.get(f"{url}/_emulator/stats", timeout=5.0)
        return int(response.json().get("submissions", 0))
    except (httpx.HTTPError, ValueError):
        return 0


def _count_videos(out: Path) -> int:
    if not out.exists():
        return 0
    return sum(1 for path in out.glob("*.mp4") if not path.name.startswith("."))


def run_cli(
    ctx: Context,
    scenario: str,
    name: str,
    *,
    manifest: str,
    rows: int,
    concurrency: int,
    emulator: dict[str, Any],
    args: Sequence[str] = (),
    stop_at_first_submit: bool = False,
    readback: bool = False,
    readback_settle: float = 7.0,
    timeout: float = 1800.0,
) -> CliRun:
    """Run ``pika-tasks run MANIFEST`` into a fresh folder against a fresh emulator; measure it.

    Args:
        ctx: the benchmark run's context.
        scenario: scenario name (names the scratch folder).
        name: variant name (names the scratch folder).
        manifest: the manifest's path or URL.
        rows: its row count (for the figures).
        concurrency: ``--max-concurrency``.
        emulator: fields of the emulator's config (``fast=True`` is added).
        args: more arguments for ``pika-tasks run`` (e.g. ``--storage-options``).
        stop_at_first_submit: stop the command once the emulator saw a submit.
        readback: read back the flow runs, events and logs it wrote to Prefect
            (:func:`bench.prefect_readback.read_back`).
        readback_settle: seconds the counts must stay unchanged first (0 when only
            the flow runs' times are wanted).
        timeout: stop the command after this many seconds (``timed_out``).

    The videos are counted, then deleted; logs stay in the run's scratch folder.
    """
    folder = ctx.scratch(f"{scenario}-{name}-{rows}")
    out = folder / "out"
    command = [
        sys.executable,
        "-m",
        "pika_tasks",
        "run",
        manifest,
        "--out",
        str(out),
        "--max-concurrency",
        str(concurrency),
        *args,
    ]
    (folder / "command.json").write_text(json.dumps(command, indent=1))
    log = folder / "cli.log"
    first_cpu: float | None = None
    peak_tree = peak_hwm = 0
    stopped = timed_out = False
    with contextlib.ExitStack() as stack:
        emu = stack.enter_context(EmulatorProcess(emulator))
        prefect = stack.enter_context(ctx.prefect_server(folder))
        env = worker_env(ctx, emu, prefect)
        prefect_cpu_start = prefect.cpu_used()
        services = MemoryWatch()
        services.add("emulator", emu.pid)
        services.add("prefect_server", prefect.pid)
        http = stack.enter_context(httpx.Client())
        machine_start = machine_cpu_seconds()
        since = datetime.now(UTC)
        with services, open(log, "wb") as sink:
            started = time.monotonic()
            proc = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=ctx.repo,
            )
            deadline = started + timeout
            try:
                while True:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    peak_tree = max(peak_tree, tree_rss(proc.pid))
                    peak_hwm = max(peak_hwm, vm_hwm(proc.pid))
                    if first_cpu is None and _submissions(http, emu.url) > 0:
                        with contextlib.suppress(psutil.Error):
                            times = psutil.Process(proc.pid).cpu_times()
                            first_cpu = round(times.user + times.system, 3)
                        if stop_at_first_submit:
                            stopped = True
                            stop_tree(proc.pid)
                            continue
                    if time.monotonic() > deadline and not timed_out:
                        timed_out = True
                        stop_tree(proc.pid)
                        continue
                    time.sleep(_SAMPLE_SECONDS)
            except BaseException:
                # Interrupted (Ctrl-C, an error here): leave nothing running behind.
                stop_tree(proc.pid, grace=2.0)
                os.wait4(proc.pid, 0)
                raise
            wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu = round(usage.ru_utime + usage.ru_stime, 3)
        machine_used = machine_cpu_seconds() - machine_start
        prefect_cpu = round(prefect.cpu_used() - prefect_cpu_start, 3)
        stats = emu.stats()
        # A stopped run of 20,000 rows has a handful of jobs; a whole one has them all.
        jobs = emu.jobs()
        emulator_cpu = emu.cpu_used()
        back = (
            read_back(prefect.api_url, prefect.database, since, readback_settle)
            if readback
            else None
        )
        log_errors = {"cli": count_log_errors(log), "prefect_server": count_log_errors(prefect.log)}
        peaks = dict(services.peaks)
    submitted = [job["submitted_at"] for job in jobs if job.get("submitted_at") is not None]
    written = _count_videos(out)
    shutil.rmtree(out, ignore_errors=True)
    return CliRun(
        rows=rows,
        returncode=proc.returncode,
        stopped=stopped,
        timed_out=timed_out,
        wall_s=round(wall, 3),
        first_submit_s=round(min(submitted) - started, 3) if submitted else None,
        cpu_s=cpu,
        cpu_at_first_submit_s=first_cpu,
        peak_tree_rss=peak_tree,
        peak_hwm=peak_hwm,
        peaks=peaks,
        emulator_stats=stats,
        jobs=jobs,
        emulator_cpu_s=emulator_cpu,
        prefect_cpu_s=prefect_cpu,
        log_errors=log_errors,
        readback=back,
        other_cpu_s=round(max(0.0, machine_used - cpu - emulator_cpu - prefect_cpu), 1),
        written=written,
        folder=str(folder),
    )


def describe(run: CliRun) -> dict[str, Any]:
    """The figures every scenario reports about one ``pika-tasks run`` (JSON-ready)."""
    whole = not run.stopped and not run.timed_out
    writes = run.prefect_writes()
    back = run.readback or {}
    return {
        "rows": run.rows,
        "returncode": run.returncode,
        "stopped_at_first_submit": run.stopped,
        "timed_out": run.timed_out,
        "wall_s": run.wall_s,
        "first_submit_s": run.first_submit_s,
        "cpu_at_first_submit_s": run.cpu_at_first_submit_s,
        "flow_s": run.flow_seconds(),
        "flow_runs": len(back.get("flow_runs", [])) if run.readback else None,
        "submissions": int(run.emulator_stats.get("submissions", 0)),
        "rows_written": run.written,
        "rows_lost": run.rows - run.written if whole else None,
        "cpu_s": run.cpu_s,
        "cpu_per_row_ms": ms(run.cpu_s / run.rows) if whole and run.rows else None,
        "peak_rss_mb": mb(run.peak_tree_rss),
        "peak_hwm_mb": mb(run.peak_hwm),
        "prefect_server_peak_rss_mb": mb(run.peaks.get("prefect_server")),
        "emulator_peak_rss_mb": mb(run.peaks.get("emulator")),
        "prefect_events": back["events"]["total"] if run.readback else None,
        "prefect_logs": back["logs"]["total"] if run.readback else None,
        "prefect_writes_per_row": round(writes / run.rows, 2) if writes and run.rows else None,
        "prefect_events_by_name": back["events"]["by_name"] if run.readback else None,
        "prefect_logs_by_level": back["logs"]["by_level"] if run.readback else None,
        "prefect_events_sqlite": back["sqlite"]["events"] if run.readback else None,
        "emulator_cpu_s": run.emulator_cpu_s,
        "prefect_server_cpu_s": run.prefect_cpu_s,
        "bytes_served": run.emulator_stats.get("bytes_served"),
        "log_errors": run.log_errors,
        "other_cpu_s": run.other_cpu_s,
        "folder": run.folder,
    }
