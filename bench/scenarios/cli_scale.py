"""Scale through the command line: whole ``pika-tasks run`` runs at 1,000 to 20,000 rows.

Each run is a whole batch on the small PNG of the other scenarios, with a
fast emulator and many runners (the scale scenario's: 50 runners, 1 s jobs,
``--max-concurrency 50``), on a fresh Prefect server.  Figures per run:

- peak RSS of the command's process tree (psutil, every 0.1 s) and its own
  ``VmHWM``;
- Prefect writes per row: the events and log lines of the run's flow runs,
  read back from the server once its counts are steady (see
  :mod:`bench.prefect_readback`), and their breakdown by event name;
- wall time, CPU per row, rows lost, error lines in the command's and the
  server's logs, and the messages the server's in-memory broker dropped
  ("Subscription queue is full"): a server short of CPU drops events, which
  then never reach its database or the UI.

Memory is judged by the largest run's peak against the smallest's (issue 12:
at most 1.15x from 1,000 to 20,000 rows); ``--cli-scale-rows 1000,20000``
gives issue 12's sizes (the 20,000-row run takes about a quarter of an hour
here).
"""

from __future__ import annotations

from typing import Any

from bench.cli_run import describe, run_cli
from bench.files import write_manifest
from bench.runner import Context
from bench.stats import ratio
from bench.targets import CLI_RSS_GROWTH, PREFECT_WRITES_PER_ROW, at_most


def run_cli_scale(ctx: Context) -> dict[str, Any]:
    """A whole run at every size; memory growth and Prefect writes per row."""
    o = ctx.options
    runs: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    for rows in o.cli_scale_rows:
        manifest = write_manifest(ctx.work / f"cli-scale-manifest-{rows}", rows, ctx.image)
        run = run_cli(
            ctx,
            "cli_scale",
            "flow",
            manifest=str(manifest),
            rows=rows,
            concurrency=o.scale_concurrency,
            emulator={"runners": o.scale_runners, "job_seconds": o.scale_job_seconds, "fps": o.fps},
            readback=True,
            readback_settle=o.readback_settle,
            timeout=max(900.0, 0.25 * rows + 300.0),
        )
        figures = describe(run)
        figures["rows_per_s"] = ratio(rows, figures["wall_s"])
        runs.append(figures)
        subject = f"{rows} rows"
        errors = sum(counts["error_lines"] for counts in run.log_errors.values())
        dropped = sum(counts["messages_dropped"] for counts in run.log_errors.values())
        targets += [
            at_most("cli_scale", subject, "rows lost", figures["rows_lost"], 0, 12),
            at_most("cli_scale", subject, "Prefect/flow error lines", errors, 0, 12),
            # Dropped events never reach the UI, and the writes counted below miss them.
            at_most("cli_scale", subject, "Prefect server messages dropped", dropped, 0, 12),
            at_most(
                "cli_scale",
                subject,
                "Prefect writes per row (events + log lines)",
                figures["prefect_writes_per_row"],
                PREFECT_WRITES_PER_ROW,
                12,
            ),
        ]
    growth = None
    if len(runs) >= 2:
        growth = ratio(runs[-1]["peak_rss_mb"], runs[0]["peak_rss_mb"])
        targets.append(
            at_most(
                "cli_scale",
                f"{runs[0]['rows']} -> {runs[-1]['rows']} rows",
                "peak RSS, largest / smallest run (x)",
                growth,
                CLI_RSS_GROWTH,
                12,
            )
        )
    return {
        "runners": o.scale_runners,
        "job_seconds": o.scale_job_seconds,
        "concurrency": o.scale_concurrency,
        "runs": runs,
        "rss_growth": growth,
        "targets": targets,
    }
