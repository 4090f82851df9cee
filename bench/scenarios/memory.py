"""Memory: peak RSS of the worker with large videos, minus the same run with tiny ones.

The worker's peak RSS is the kernel's (``wait4``); a polled figure of the
worker's process tree is kept beside it as a cross-check.  The difference
between the two runs is what the videos' size costs in memory: a streamed
fetch should cost a few chunks per row in flight, not whole files.
"""

from __future__ import annotations

from typing import Any

from bench.runner import Context, Measured, run_variant
from bench.stats import mb
from bench.targets import MEMORY_DELTA_MB, at_most

_JOB_SECONDS = 0.5


def _one(ctx: Context, variant: str, video_bytes: int) -> Measured:
    o = ctx.options
    return run_variant(
        ctx,
        "memory",
        variant,
        emulator={
            "runners": o.memory_concurrency,
            "job_seconds": min(_JOB_SECONDS, o.job_seconds),
            "fps": o.fps,
            "min_video_bytes": video_bytes,
        },
        rows=o.memory_rows,
        concurrency=o.memory_concurrency,
        timeout=900.0,
    )


def run_memory(ctx: Context) -> dict[str, Any]:
    """Tiny and large videos through each memory variant; the RSS difference per variant."""
    o = ctx.options
    variants: dict[str, dict[str, Any]] = {}
    targets: list[dict[str, Any]] = []
    for variant in o.memory_variants:
        tiny = _one(ctx, variant, 0)
        large = _one(ctx, variant, o.memory_video_bytes)
        delta = large.peak_rss - tiny.peak_rss
        variants[variant] = {
            "tiny_peak_rss_mb": mb(tiny.peak_rss),
            "large_peak_rss_mb": mb(large.peak_rss),
            "delta_mb": mb(delta),
            "tiny_polled_rss_mb": mb(tiny.peaks.get("worker")),
            "large_polled_rss_mb": mb(large.peaks.get("worker")),
            "large_bytes_written": large.worker["written_bytes"],
            "other_cpu_s": round(tiny.other_cpu_s + large.other_cpu_s, 1),
            "rows_lost": (o.memory_rows - tiny.worker["written"])
            + (o.memory_rows - large.worker["written"]),
            "large_wall_s": round(large.worker["ended"] - large.worker["started"], 3),
            "folders": [tiny.folder, large.folder],
        }
        delta_mb = variants[variant]["delta_mb"]
        targets.append(
            at_most("memory", variant, "peak RSS, large - tiny (MB)", delta_mb, MEMORY_DELTA_MB)
        )
    return {
        "rows": o.memory_rows,
        "concurrency": o.memory_concurrency,
        "video_mb": mb(o.memory_video_bytes),
        "variants": variants,
        "targets": targets,
    }
