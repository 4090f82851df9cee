"""Time to first submit: how soon ``pika-tasks run`` starts fal's first job, by manifest size.

One ``pika-tasks run`` per size (20, 2,000 and 20,000 rows by default) over
the realistic workload's photos (:mod:`bench.photos`, local), each against a
fresh emulator and Prefect server: from just before the command starts to
the emulator's first submit, both on the machine's monotonic clock.  The
command (and anything it started) is stopped as soon as the emulator has
seen a submit, so the largest size costs only its time to first submit.
A streaming flow starts at about the same time whatever the size; one that
reads every image first grows with the rows.
"""

from __future__ import annotations

from typing import Any

from bench.cli_run import describe, run_cli
from bench.runner import Context
from bench.stats import ratio
from bench.targets import FIRST_SUBMIT_GROWTH, at_most


def run_first_submit(ctx: Context) -> dict[str, Any]:
    """Time to first submit at every size, and the largest size's against the smallest's."""
    o = ctx.options
    runs: list[dict[str, Any]] = []
    for rows in o.first_submit_rows:
        run = run_cli(
            ctx,
            "first_submit",
            "local",
            manifest=str(ctx.photo_manifest(rows)),
            rows=rows,
            concurrency=o.concurrency,
            emulator={"runners": o.runners, "job_seconds": o.job_seconds, "fps": o.fps},
            stop_at_first_submit=True,
            timeout=o.first_submit_timeout,
        )
        runs.append(describe(run))
    smallest = runs[0]["first_submit_s"] if runs else None
    for figures in runs:
        figures["vs_smallest"] = ratio(figures["first_submit_s"], smallest)
    targets: list[dict[str, Any]] = []
    growth = None
    if len(runs) >= 2:
        growth = runs[-1]["vs_smallest"]
        targets.append(
            at_most(
                "first_submit",
                f"{runs[0]['rows']} -> {runs[-1]['rows']} rows",
                "first submit, largest / smallest manifest (x)",
                growth,
                FIRST_SUBMIT_GROWTH,
                12,
            )
        )
    return {
        "images": "photos",
        "concurrency": o.concurrency,
        "timeout_s": o.first_submit_timeout,
        "runs": runs,
        "growth": growth,
        "targets": targets,
    }
