"""Throughput with large videos: 20 MB each, so that fetching takes real time.

The throughput scenario's batch (500 rows, 25 runners, 2 s jobs, 50 in
flight) with every video padded to 20 MB (the emulator's
``min_video_bytes``), over http:

- ``flow``: ``pika-tasks run`` on a CSV manifest of the small PNG; its
  makespan is the flow run's own duration, its start to its end as Prefect
  recorded them (the command's start-up and read-back are outside it);
- ``client``: our client alone in a worker (:mod:`bench.variants`), the
  reference of what the same fetches cost without the flow.

A flow that holds fal's slot while it copies a video, or fetches serially,
falls behind the ideal ``ceil(N / runners) * job_seconds`` here where the
small videos of the throughput scenario hide it.
"""

from __future__ import annotations

import math
from typing import Any

from bench.cli_run import describe, run_cli
from bench.files import write_manifest
from bench.runner import Context, run_variant
from bench.scenarios.throughput import detection_latencies, queue_span
from bench.stats import mb, ms, percentile, ratio


def run_large_videos(ctx: Context) -> dict[str, Any]:
    """The batch with 20 MB videos through the flow's command and through our client."""
    o = ctx.options
    rows = o.large_videos_rows
    ideal = math.ceil(rows / o.runners) * o.job_seconds
    emulator = {
        "runners": o.runners,
        "job_seconds": o.job_seconds,
        "fps": o.fps,
        "min_video_bytes": o.large_videos_bytes,
    }
    timeout = max(900.0, 20.0 * ideal + 2.0 * rows)
    variants: dict[str, dict[str, Any]] = {}
    for variant in o.large_videos_variants:
        if variant == "flow":
            manifest = write_manifest(ctx.work / f"large-videos-manifest-{rows}", rows, ctx.image)
            run = run_cli(
                ctx,
                "large_videos",
                "flow",
                manifest=str(manifest),
                rows=rows,
                concurrency=o.concurrency,
                emulator=emulator,
                readback=True,
                readback_settle=0.0,
                timeout=timeout,
            )
            figures = describe(run)
            figures["makespan_s"] = figures["flow_s"]
            jobs = run.jobs
        else:
            measured = run_variant(
                ctx,
                "large_videos",
                variant,
                emulator=emulator,
                rows=rows,
                concurrency=o.concurrency,
                timeout=timeout,
            )
            worker = measured.worker
            figures = {
                "rows": rows,
                "makespan_s": round(worker["ended"] - worker["started"], 3),
                "rows_written": worker["written"],
                "rows_lost": rows - worker["written"],
                "written_mb": mb(worker["written_bytes"]),
                "cpu_s": measured.cpu_s,
                "cpu_per_row_ms": ms(measured.cpu_s / rows) if rows else None,
                "peak_rss_mb": mb(measured.peak_rss),
                "bytes_served": measured.emulator_stats.get("bytes_served"),
                "other_cpu_s": measured.other_cpu_s,
                "folder": measured.folder,
            }
            jobs = measured.jobs
        latencies = detection_latencies(jobs)
        figures["makespan_ratio"] = ratio(figures["makespan_s"], ideal)
        figures["queue_span_s"] = queue_span(jobs)
        figures["detection_p50_ms"] = ms(percentile(latencies, 50))
        figures["detection_p95_ms"] = ms(percentile(latencies, 95))
        variants[variant] = figures
    flow, client = variants.get("flow"), variants.get("client")
    if flow and client:
        flow["vs_client"] = ratio(flow["makespan_s"], client["makespan_s"])
    return {
        "rows": rows,
        "runners": o.runners,
        "job_seconds": o.job_seconds,
        "concurrency": o.concurrency,
        "video_mb": mb(o.large_videos_bytes),
        "video_bytes": o.large_videos_bytes,
        "ideal_s": ideal,
        "variants": variants,
        "targets": [],
    }
