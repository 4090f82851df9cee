"""Scale: one flow run per row count (e.g. 1,000 and 5,000), each on a fresh Prefect server.

Figures per run: wall time, rows lost (rows without a video on disk), peak
RSS of every process (flow worker, Prefect server, emulator), error lines
in the worker's and the server's logs.  Memory is judged bounded when the
flow's peak RSS at the largest row count is at most 1.25 times that at the
smallest (a per-row leak grows with the rows; a bounded flow does not).
"""

from __future__ import annotations

from typing import Any

from bench.runner import Context, run_variant
from bench.stats import mb, ratio
from bench.targets import SCALE_RSS_GROWTH, at_most


def run_scale(ctx: Context) -> dict[str, Any]:
    """Run the flow at every scale row count and compare peak memory between them."""
    o = ctx.options
    runs: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    for rows in o.scale_rows:
        run = run_variant(
            ctx,
            "scale",
            "flow",
            emulator={"runners": o.scale_runners, "job_seconds": o.scale_job_seconds, "fps": o.fps},
            rows=rows,
            concurrency=o.scale_concurrency,
            timeout=max(900.0, 2.0 * rows),
        )
        wall = round(run.worker["ended"] - run.worker["started"], 3)
        figures = {
            "rows": rows,
            "wall_s": wall,
            "rows_per_s": round(rows / wall, 2) if wall else None,
            "rows_ok": run.worker["ok"],
            "rows_lost": rows - run.worker["written"],
            "cpu_s": run.cpu_s,
            "cpu_per_row_ms": round(1000.0 * run.cpu_s / rows, 1) if rows else None,
            "peak_rss_mb": {
                "flow": mb(run.peak_rss),
                "prefect_server": mb(run.peaks.get("prefect_server")),
                "emulator": mb(run.peaks.get("emulator")),
            },
            "prefect_server_cpu_s": run.prefect_cpu_s,
            "log_errors": run.log_errors,
            "other_cpu_s": run.other_cpu_s,
            "queue_requests": run.queue_requests(),
            "folder": run.folder,
        }
        runs.append(figures)
        targets.append(at_most("scale", f"{rows} rows", "rows lost", figures["rows_lost"], 0))
        errors = sum(counts["error_lines"] for counts in run.log_errors.values())
        targets.append(at_most("scale", f"{rows} rows", "Prefect/flow error lines", errors, 0))
    growth = None
    if len(runs) >= 2:
        growth = ratio(runs[-1]["peak_rss_mb"]["flow"], runs[0]["peak_rss_mb"]["flow"])
        targets.append(
            at_most(
                "scale",
                f"{runs[0]['rows']} -> {runs[-1]['rows']} rows",
                "flow peak RSS growth (x)",
                growth,
                SCALE_RSS_GROWTH,
            )
        )
    return {
        "runners": o.scale_runners,
        "job_seconds": o.scale_job_seconds,
        "concurrency": o.scale_concurrency,
        "runs": runs,
        "flow_rss_growth": growth,
        "targets": targets,
    }
