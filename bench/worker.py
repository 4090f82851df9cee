"""A benchmark worker: one variant of one scenario in a process of its own.

``python -m bench.worker SPEC.json`` reads its task, imports what the
variant needs, notes its CPU time so far (so that start-up is not counted),
runs the batch and writes its outcome as JSON to the spec's ``result`` path.
The parent reads the process's total CPU time and peak RSS from ``wait4``.

A spec: ``{"variant": "flow" | "client" | "fal" | "transfer", "rows": N,
"concurrency": C, "image": PATH, "out": DIR, "result": PATH}``, and for
``transfer``: ``{"files": K, "repeats": R, "destinations": {...}}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import resource
import sys
from pathlib import Path
from typing import Any

# What each variant imports, loaded before the CPU clock starts.
_PRELOAD = {
    "flow": ["pika_tasks.flows"],
    "flow-tagged": ["pika_tasks.flows"],
    "flow-floor": ["pika_tasks.flows"],
    "pipeline": ["pika_tasks.pipeline", "pika_tasks.client"],
    "client": ["pika_tasks.client"],
    "fal": ["fal_client", "httpx"],
    "transfer": ["pika_tasks.client", "pika_tasks.storage", "s3fs"],
}


def peak_rss_bytes() -> int:
    """This process's peak resident set (``VmHWM``), 0 where /proc is missing.

    Not ``ru_maxrss``: after fork and exec it still holds the parent's
    resident size at fork time, which would hide a small worker's own peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the spec's variant and return its outcome (JSON-ready)."""
    variant = spec["variant"]
    for module in _PRELOAD[variant]:
        importlib.import_module(module)
    cpu_ready = _cpu_now()
    image, out = Path(spec["image"]), Path(spec["out"])
    if variant == "transfer":
        from bench.fetching import run_transfer

        transfer = asyncio.run(
            run_transfer(spec["files"], spec["repeats"], image, spec["destinations"])
        )
        return {
            "variant": variant,
            "cpu_ready": cpu_ready,
            "peak_rss_bytes": peak_rss_bytes(),
            "transfer": transfer,
        }

    from bench.variants import RUNNERS, written

    outcome = asyncio.run(RUNNERS[variant](spec["rows"], spec["concurrency"], image, out))
    files, size = written(out)
    result = dataclasses.asdict(outcome)
    result["error_count"] = len(outcome.errors)
    result["errors"] = sorted(set(outcome.errors))[:10]
    result.update(
        variant=variant,
        cpu_ready=cpu_ready,
        cpu_batch_self=round(_cpu_now() - cpu_ready, 3),
        written=files,
        written_bytes=size,
        peak_rss_bytes=peak_rss_bytes(),
    )
    return result


def main(argv: list[str]) -> int:
    """Entry point: ``python -m bench.worker SPEC.json``."""
    spec = json.loads(Path(argv[0]).read_text())
    result = run(spec)
    Path(spec["result"]).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
