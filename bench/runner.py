"""Run one variant of one scenario: fresh emulator (and Prefect server), one worker, measure.

:func:`run_variant` starts a fresh emulator process (and, for the flow, a
Prefect server), runs a worker process to its end, and gathers everything
measured around it: the worker's exact CPU time and peak RSS (``wait4``),
the peak RSS of every other process (psutil), the emulator's counters and
per-job clock, and the error lines in the logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.options import BenchOptions
from bench.procs import MemoryWatch, machine_cpu_seconds, run_child
from bench.services import EmulatorProcess, MotoS3, PrefectServer
from bench.tls import trust_bundle

FAL_KEY = "bench-key"
"""The key every client sends (the emulator checks none)."""

QUEUE_ROUTES = ("submit", "status", "status_stream", "result", "cancel")
"""The emulator's queue API routes: what "queue requests" counts."""

_ERROR_LINE = re.compile(
    r"\|\s*(ERROR|CRITICAL)\s*\||^ERROR[: ]|Traceback \(most recent call last\)"
)


_DROPPED = "Subscription queue is full, dropping message"


def count_log_errors(path: Path | None) -> dict[str, int]:
    """Error lines, tracebacks, 'database is locked' lines and messages a Prefect server
    dropped (its in-memory broker drops what a full subscription queue cannot take:
    events that never reach the database) in a log file."""
    counts = {"error_lines": 0, "database_locked": 0, "messages_dropped": 0}
    if path is None or not path.exists():
        return counts
    with open(path, errors="replace") as log:
        for line in log:
            if _ERROR_LINE.search(line):
                counts["error_lines"] += 1
            if "database is locked" in line:
                counts["database_locked"] += 1
            if _DROPPED in line:
                counts["messages_dropped"] += 1
    return counts


@dataclass
class Context:
    """What every scenario of one run shares: options, scratch folder, images, certificate."""

    options: BenchOptions
    work: Path
    image: Path
    tls: tuple[Path, Path]
    repo: Path = field(default_factory=lambda: Path(__file__).resolve().parent.parent)
    _shared_prefect: PrefectServer | None = None
    _count: int = 0
    _photos: list[Path] | None = None

    def photos(self) -> list[Path]:
        """The realistic workload's photos in ``work/photos/images``, made on first use."""
        if self._photos is None:
            from bench.photos import make_photos

            self._photos = make_photos(self.work / "photos" / "images", self.options.photos)
        return self._photos

    def photo_manifest(self, rows: int) -> Path:
        """A local CSV manifest of ``rows`` rows over :meth:`photos` (written once per size)."""
        from bench.photos import write_photo_manifest

        path = self.work / "photos" / f"manifest-{rows}.csv"
        if not path.exists():
            write_photo_manifest(path, rows, self.photos())
        return path

    def scratch(self, name: str) -> Path:
        """A new, empty folder for one run."""
        self._count += 1
        folder = self.work / f"{self._count:02d}-{name}"
        folder.mkdir(parents=True)
        return folder

    @contextlib.contextmanager
    def prefect_server(self, folder: Path) -> Iterator[PrefectServer]:
        """A fresh Prefect server, or the one shared server when the options say so."""
        settings = {}
        if self.options.event_flush_seconds is not None:
            # Quick runs only: events reach the database sooner, read-backs wait less.
            settings["PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL"] = str(
                self.options.event_flush_seconds
            )
        if self.options.fresh_prefect_server:
            home, log = folder / "prefect-home", folder / "prefect-server.log"
            with PrefectServer(home, log, settings) as server:
                yield server
            return
        if self._shared_prefect is None:
            home, log = self.work / "prefect-home", self.work / "prefect-server.log"
            shared = PrefectServer(home, log, settings)
            self._shared_prefect = shared.__enter__()
        yield self._shared_prefect

    def close(self) -> None:
        """Stop the shared Prefect server, if one was started."""
        if self._shared_prefect is not None:
            self._shared_prefect.__exit__(None, None, None)
            self._shared_prefect = None


def worker_env(
    ctx: Context, emulator: EmulatorProcess, prefect: PrefectServer | None
) -> dict[str, str]:
    """The environment of a worker: where the queue is, which certificate to trust."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "PIKA_", "FAL_", "SSL_CERT_"))
    }
    env.update(
        FAL_KEY=FAL_KEY,
        PIKA_QUEUE_URL=emulator.url,
        PIKA_STORAGE_URL=emulator.url,
        # fal-client builds https://{FAL_QUEUE_RUN_HOST}/{application} (read at import).
        FAL_QUEUE_RUN_HOST=emulator.url.split("://", 1)[1],
        PYTHONPATH=os.pathsep.join(filter(None, [str(ctx.repo), env.get("PYTHONPATH")])),
        **MotoS3.env(),
    )
    if emulator.tls:
        # httpx (ours and fal-client's) builds its default context from SSL_CERT_FILE.
        env["SSL_CERT_FILE"] = str(trust_bundle(emulator.tls[0]))
    if prefect is not None:
        env.update(prefect.env())
    else:
        env["PREFECT_HOME"] = str(ctx.work / "prefect-unused")
    return env


@dataclass
class Measured:
    """Everything measured around one worker run (raw; scenarios derive figures).

    ``other_cpu_s`` is the machine's CPU time during the run that none of the
    run's processes used: load from outside the benchmark.
    """

    variant: str
    rows: int
    worker: dict[str, Any]
    child: dict[str, Any]
    peaks: dict[str, int]
    emulator_stats: dict[str, Any]
    jobs: list[dict[str, Any]]
    emulator_cpu_s: float
    prefect_cpu_s: float | None
    log_errors: dict[str, dict[str, int]]
    folder: str
    other_cpu_s: float = 0.0

    @property
    def cpu_s(self) -> float:
        """Worker CPU seconds after start-up (imports excluded), shutdown included."""
        return round(float(self.child["cpu_seconds"]) - float(self.worker["cpu_ready"]), 3)

    @property
    def peak_rss(self) -> int:
        """The worker's peak RSS in bytes (its own ``VmHWM``, see :mod:`bench.worker`)."""
        return int(self.worker["peak_rss_bytes"])

    def queue_requests(self) -> dict[str, int]:
        """Requests per queue route."""
        counts = self.emulator_stats.get("requests", {})
        return {route: int(counts.get(route, 0)) for route in QUEUE_ROUTES if counts.get(route)}


def run_variant(
    ctx: Context,
    scenario: str,
    variant: str,
    *,
    emulator: dict[str, Any],
    tls: bool = False,
    rows: int = 0,
    concurrency: int = 1,
    extra: dict[str, Any] | None = None,
    timeout: float = 1800.0,
    prefix: Sequence[str] = (),
) -> Measured:
    """Run ``variant`` against a fresh emulator configured with ``emulator``.

    ``prefix`` goes before the worker's command, e.g. a profiler's
    ``py-spy record -o FILE --``.

    Raises:
        RuntimeError: the worker failed (its log is named in the message).
    """
    folder = ctx.scratch(f"{scenario}-{variant}-{rows}")
    spec = {
        "variant": variant,
        "rows": rows,
        "concurrency": concurrency,
        "image": str(ctx.image),
        "out": str(folder / "out"),
        "result": str(folder / "result.json"),
        **(extra or {}),
    }
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))
    log = folder / "worker.log"
    with contextlib.ExitStack() as stack:
        emu = stack.enter_context(EmulatorProcess(emulator, ctx.tls if tls else None))
        needs_prefect = variant.startswith("flow")
        prefect = stack.enter_context(ctx.prefect_server(folder)) if needs_prefect else None
        prefect_cpu_start = prefect.cpu_used() if prefect else 0.0
        watch = MemoryWatch()
        watch.add("emulator", emu.pid)
        if prefect is not None:
            watch.add("prefect_server", prefect.pid)
        machine_start = machine_cpu_seconds()
        with watch:
            child = run_child(
                [*prefix, sys.executable, "-m", "bench.worker", str(folder / "spec.json")],
                env=worker_env(ctx, emu, prefect),
                log=log,
                timeout=timeout,
                watch=watch,
                cwd=ctx.repo,
            )
        machine_used = machine_cpu_seconds() - machine_start
        if child.returncode != 0:
            raise RuntimeError(f"{scenario}/{variant} worker exited {child.returncode}: see {log}")
        stats, jobs = emu.stats(), emu.jobs()
        log_errors = {"worker": count_log_errors(log)}
        if prefect is not None:
            log_errors["prefect_server"] = count_log_errors(prefect.log)
        emulator_cpu = emu.cpu_used()
        prefect_cpu = round(prefect.cpu_used() - prefect_cpu_start, 3) if prefect else None
        ours = child.cpu_seconds + emulator_cpu + (prefect_cpu or 0.0)
        measured = Measured(
            variant=variant,
            rows=rows,
            worker=json.loads((folder / "result.json").read_text()),
            child=dataclasses.asdict(child),
            peaks=dict(watch.peaks),
            emulator_stats=stats,
            jobs=jobs,
            emulator_cpu_s=emulator_cpu,
            prefect_cpu_s=prefect_cpu,
            log_errors=log_errors,
            folder=str(folder),
            # CPU the machine spent on anything else meanwhile: other people's work
            # on a shared machine shows here (and makes that run's figures noisier).
            other_cpu_s=round(max(0.0, machine_used - ours), 1),
        )
    # The videos were counted by the worker; logs and results stay for reading.
    shutil.rmtree(folder / "out", ignore_errors=True)
    return measured
