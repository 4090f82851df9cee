"""``python -m bench``: parse the options, run the scenarios, write the results.

Example:
    >>> options = parse_options(["--quick", "--scenarios", "throughput"])
    >>> options.quick, options.scenarios, options.throughput_rows
    (True, ('throughput',), 10)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.files import make_image
from bench.machine import describe_machine, source_state
from bench.options import ALL_SCENARIOS, EXPERIMENTS, THROUGHPUT_VARIANTS, BenchOptions
from bench.report import render
from bench.runner import Context
from bench.tls import self_signed_certificate


def _names(text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(allowed)}")
    return names


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark pika-tasks against the emulator on loopback.",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (~2 min)")
    p.add_argument(
        "--scenarios",
        type=lambda t: _names(t, ALL_SCENARIOS),
        help=f"comma-separated subset of {','.join(ALL_SCENARIOS)}",
    )
    p.add_argument("--rows", type=int, help="rows of the throughput scenario (500)")
    p.add_argument("--runners", type=int, help="emulator runners in the throughput scenario (25)")
    p.add_argument("--job-seconds", type=float, help="job length in the throughput scenario (2)")
    p.add_argument("--concurrency", type=int, help="rows in flight, every variant (50)")
    p.add_argument(
        "--variants",
        type=lambda t: _names(t, THROUGHPUT_VARIANTS + EXPERIMENTS),
        help="throughput variants: flow,client,fal,flow-tagged",
    )
    p.add_argument("--memory-rows", type=int, help="rows of the memory scenario (20)")
    p.add_argument("--video-mb", type=float, help="size of the memory scenario's videos (50)")
    p.add_argument("--transfer-files", type=int, help="files per transfer pass (6)")
    p.add_argument("--scale-rows", type=_counts, help="row counts of the scale runs (1000,5000)")
    p.add_argument("--scale-concurrency", type=int, help="max_concurrency of the scale runs (50)")
    p.add_argument("--photos", type=int, help="distinct photos of the realistic workload (50)")
    p.add_argument("--workload-rows", type=int, help="rows of each realistic-workload run (500)")
    p.add_argument(
        "--first-submit-rows",
        type=_counts,
        help="manifest sizes of the time-to-first-submit runs (20,2000,20000)",
    )
    p.add_argument(
        "--cli-scale-rows",
        type=_counts,
        help="row counts of the whole `pika-tasks run` runs (1000,5000; issue 12: 1000,20000)",
    )
    p.add_argument("--large-videos-rows", type=int, help="rows of the large-video run (500)")
    p.add_argument("--large-video-mb", type=float, help="size of its videos (20)")
    p.add_argument("--results-dir", type=Path, help="where latest.json and latest.md go")
    p.add_argument("--work-dir", type=Path, help="scratch folder, kept (default: temporary)")
    return p


def parse_options(argv: list[str]) -> BenchOptions:
    """Options from the command line, on top of the full or the quick preset."""
    args = parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    pairs = {
        "scenarios": "scenarios",
        "rows": "throughput_rows",
        "runners": "runners",
        "job_seconds": "job_seconds",
        "concurrency": "concurrency",
        "variants": "throughput_variants",
        "memory_rows": "memory_rows",
        "transfer_files": "transfer_files",
        "scale_rows": "scale_rows",
        "scale_concurrency": "scale_concurrency",
        "photos": "photos",
        "workload_rows": "workload_rows",
        "first_submit_rows": "first_submit_rows",
        "cli_scale_rows": "cli_scale_rows",
        "large_videos_rows": "large_videos_rows",
        "results_dir": "results_dir",
        "work_dir": "work_dir",
    }
    for arg, name in pairs.items():
        value = getattr(args, arg)
        if value is not None:
            overrides[name] = value
    if args.video_mb is not None:
        overrides["memory_video_bytes"] = int(args.video_mb * 1_000_000)
    if args.large_video_mb is not None:
        overrides["large_videos_bytes"] = int(args.large_video_mb * 1_000_000)
    if args.quick and args.results_dir is None:
        overrides["results_dir"] = BenchOptions().results_dir / "quick"
    return BenchOptions.smoke(**overrides) if args.quick else BenchOptions.full(**overrides)


def _write(folder: Path, results: dict[str, Any]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "latest.json", folder / "latest.md"
    for path, text in zip(paths, (json.dumps(results, indent=1), render(results)), strict=True):
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(text + "\n")
        temporary.replace(path)
    return paths


def run(options: BenchOptions) -> dict[str, Any]:
    """Run the selected scenarios and return the results (errors recorded, not raised)."""
    started, clock = datetime.now(UTC), time.monotonic()
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="pika-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        options=options,
        work=work,
        image=make_image(work / "frame.png"),
        tls=self_signed_certificate(work / "tls"),
    )
    results: dict[str, Any] = {"targets": [], "errors": {}}
    source_at_start = source_state(ctx.repo)
    from bench.scenarios import SCENARIOS

    try:
        for name in options.scenarios:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            begun = time.monotonic()
            try:
                section = SCENARIOS[name](ctx)
            except Exception as error:
                traceback.print_exc()
                results["errors"][name] = f"{type(error).__name__}: {error}"
                continue
            section["seconds"] = round(time.monotonic() - begun, 1)
            results[name] = section
            results["targets"] += section.get("targets", [])
            print(f"[bench] {name} done in {section['seconds']} s", file=sys.stderr, flush=True)
    finally:
        ctx.close()
        if options.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    results["meta"] = {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - clock, 1),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "machine": describe_machine(),
        # Others may edit the tree during a long run: both ends are recorded.
        "source": {"at_start": source_at_start, "at_end": source_state(ctx.repo)},
        "options": options.as_dict(),
    }
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a scenario could not run."""
    options = parse_options(sys.argv[1:] if argv is None else argv)
    results = run(options)
    json_path, md_path = _write(options.results_dir, results)
    print(render(results))
    print(f"[bench] wrote {json_path} and {md_path}", file=sys.stderr)
    return 1 if results["errors"] else 0
