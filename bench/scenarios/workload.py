"""A realistic workload: distinct photo-sized JPEGs and PNGs, the manifest local and on S3.

``pika-tasks run`` on a manifest of N rows over the photos of
:mod:`bench.photos` (1-2 MB each, sent inline as ``data:`` URIs), with the
throughput scenario's emulator (runners, job length) and ``--max-concurrency``:

- ``local``: the manifest and its photos in a folder;
- ``s3``: both on moto's S3 (the flow reads them through s3fs and hands fal
  a signed URL, which the emulator fetches from moto);
- ``frame``: the same rows on the small PNG of the other scenarios, locally:
  the baseline the photos are compared with in the same run.

Figures per variant: the flow run's own duration (its start to its end, as
Prefect recorded them) against the ideal ``ceil(N / runners) * job_seconds``,
the command's wall time, time to first submit, CPU per row (start-up
included), peak RSS, rows lost; and, beside the baseline, the photos' ratios.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bench.cli_run import CliRun, describe, run_cli
from bench.files import write_manifest
from bench.photos import upload_photo_manifest
from bench.runner import Context
from bench.services import MotoS3
from bench.stats import ratio
from bench.targets import at_most

_BUCKET_URL = "s3://bench-workload/run"


def _run(ctx: Context, variant: str, manifest: str, args: list[str]) -> CliRun:
    o = ctx.options
    ideal = math.ceil(o.workload_rows / o.runners) * o.job_seconds
    return run_cli(
        ctx,
        "workload",
        variant,
        manifest=manifest,
        rows=o.workload_rows,
        concurrency=o.concurrency,
        emulator={"runners": o.runners, "job_seconds": o.job_seconds, "fps": o.fps},
        args=args,
        readback=True,
        readback_settle=0.0,
        timeout=max(600.0, 20.0 * ideal + 2.0 * o.workload_rows),
    )


def _one(ctx: Context, variant: str) -> CliRun:
    o = ctx.options
    if variant == "local":
        return _run(ctx, variant, str(ctx.photo_manifest(o.workload_rows)), [])
    if variant == "frame":
        folder = ctx.work / f"frame-manifest-{o.workload_rows}"
        return _run(ctx, variant, str(write_manifest(folder, o.workload_rows, ctx.image)), [])
    folder = ctx.work / "workload-s3"
    folder.mkdir(exist_ok=True)
    with MotoS3(folder / "moto.log") as s3:
        url = upload_photo_manifest(
            f"{_BUCKET_URL}/manifest.csv", o.workload_rows, ctx.photos(), s3.storage_options
        )
        options = json.dumps(s3.storage_options)
        # The output stays local: only the inputs are on S3, whose server is on loopback.
        args = [
            "--storage-options",
            options,
            "--output-storage-options",
            "{}",
            "--allow-private-image-urls",
        ]
        return _run(ctx, variant, url, args)


def run_workload(ctx: Context) -> dict[str, Any]:
    """Each workload variant through ``pika-tasks run``; photos against the small frame."""
    o = ctx.options
    ideal = math.ceil(o.workload_rows / o.runners) * o.job_seconds
    photos = ctx.photos()
    sizes = [path.stat().st_size for path in photos]
    variants: dict[str, dict[str, Any]] = {}
    targets: list[dict[str, Any]] = []
    for variant in o.workload_variants:
        figures = describe(_one(ctx, variant))
        figures["flow_ratio"] = ratio(figures["flow_s"], ideal)
        figures["wall_ratio"] = ratio(figures["wall_s"], ideal)
        variants[variant] = figures
        targets.append(at_most("workload", variant, "rows lost", figures["rows_lost"], 0, 12))
    base = variants.get("frame")
    if base is not None:
        for name, figures in variants.items():
            if name != "frame":
                figures["vs_frame"] = {
                    field: ratio(figures[field], base[field])
                    for field in ("flow_s", "first_submit_s", "cpu_per_row_ms", "peak_rss_mb")
                }
    return {
        "rows": o.workload_rows,
        "runners": o.runners,
        "job_seconds": o.job_seconds,
        "concurrency": o.concurrency,
        "ideal_s": ideal,
        "photos": {
            "count": len(photos),
            "jpeg": sum(1 for path in photos if path.suffix == ".jpg"),
            "png": sum(1 for path in photos if path.suffix == ".png"),
            "min_mb": round(min(sizes) / 1e6, 2),
            "max_mb": round(max(sizes) / 1e6, 2),
            "mean_mb": round(sum(sizes) / len(sizes) / 1e6, 2),
        },
        "variants": variants,
        "targets": targets,
    }
