"""Transfer: our fetch path against a plain httpx stream copy, to a local folder and to S3.

S3 is moto's server, started here on loopback.  See :mod:`bench.fetching`
for what each method does.
"""

from __future__ import annotations

from typing import Any

from bench.runner import Context, run_variant
from bench.services import MotoS3
from bench.stats import mb, ratio
from bench.targets import LOCAL_FETCH_RATIO, S3_FETCH_RATIO, at_least


def _rate(figures: dict[str, Any]) -> float | None:
    seconds = figures["seconds"]
    return round(figures["bytes"] / 2**20 / seconds, 1) if seconds else None


def run_transfer_scenario(ctx: Context) -> dict[str, Any]:
    """Fetch the same videos both ways to both destinations; MB/s and the ratio ours / httpx."""
    o = ctx.options
    folder = ctx.work / "transfer-s3"
    folder.mkdir(exist_ok=True)
    with MotoS3(folder / "moto.log") as s3:
        run = run_variant(
            ctx,
            "transfer",
            "transfer",
            emulator={
                "runners": o.transfer_files,
                "job_seconds": 0.2,
                "fps": o.fps,
                "min_video_bytes": o.transfer_video_bytes,
            },
            extra={
                "files": o.transfer_files,
                "repeats": o.transfer_repeats,
                "destinations": {
                    "local": (str(folder / "local"), {}),
                    "s3": ("s3://bench-transfer/videos", s3.storage_options),
                },
            },
            timeout=1200.0,
        )
    destinations: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []
    for name, methods in run.worker["transfer"].items():
        ours, plain = _rate(methods["ours"]), _rate(methods["httpx"])
        checked = _rate(methods["httpx+sha256"])
        destinations[name] = {
            "ours_mb_s": ours,
            "httpx_mb_s": plain,
            "ratio": ratio(ours, plain),
            "httpx_sha256_mb_s": checked,
            "ratio_vs_checked": ratio(ours, checked),
            "ours": methods["ours"],
            "httpx": methods["httpx"],
            "httpx+sha256": methods["httpx+sha256"],
        }
        # Issue 12 asks 0.9 of a plain copy to a local folder; S3 keeps issue 7's 0.8.
        local = name == "local"
        targets.append(
            at_least(
                "transfer",
                name,
                "fetch MB/s, ours / httpx",
                destinations[name]["ratio"],
                LOCAL_FETCH_RATIO if local else S3_FETCH_RATIO,
                12 if local else 7,
            )
        )
    return {
        "files": o.transfer_files,
        "file_mb": mb(o.transfer_video_bytes),
        "repeats": o.transfer_repeats,
        "destinations": destinations,
        "worker_peak_rss_mb": mb(run.peak_rss),
        "other_cpu_s": run.other_cpu_s,
        "folder": run.folder,
        "targets": targets,
    }
