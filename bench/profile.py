"""Profile one throughput variant's worker with py-spy and summarise where its time goes.

``python -m bench.profile flow --rows 200`` runs the variant exactly as the
throughput scenario does (fresh emulator over TLS, fresh Prefect server for
the flow) under ``py-spy record`` and writes
``bench/results/profile-<variant>.txt``: the share of samples in which each
function is on the stack (inclusive), for the functions that matter most.
Sampling distorts CPU figures; use the benchmark itself for those.

With ``--gil`` only the thread holding the interpreter lock is sampled, so a
sample is Python's own CPU time, and the summary opens with that time per
row, by part (:func:`by_part`): Prefect's task engine, the task bodies, the
client, the pipeline's bookkeeping, and so on.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.files import make_image
from bench.options import BenchOptions
from bench.runner import Context, run_variant
from bench.tls import self_signed_certificate
from bench.variants import RUNNERS

_LINE_NUMBER = re.compile(r":\d+\)")


def summarise(raw: Path, top: int = 150) -> str:
    """Inclusive sample shares per function from py-spy's ``raw`` (collapsed stacks) output."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        for frame in {_LINE_NUMBER.sub(")", frame) for frame in stack.split(";")}:
            inclusive[frame] += samples
    lines = [f"{total} samples; share of samples with the function on the stack", ""]
    for frame, samples in inclusive.most_common(top):
        lines.append(f"{100.0 * samples / max(total, 1):5.1f}%  {frame}")
    return "\n".join(lines) + "\n"


_CLIENT_MARKS = ("PikaClient", "httpx", "httpcore", "anyio/streams/tls")


def _part_of(stack: str) -> str:
    """The part of the process a sampled stack (root first, ``;``-joined) belongs to."""
    frames = stack.split(";")
    on_main_thread = "_bootstrap (threading.py" not in frames[0]
    is_client = any(mark in stack for mark in _CLIENT_MARKS)
    if "_find_and_load" in stack:
        return "start-up imports"
    if "call_task_fn" in stack:
        if is_client:
            return "our client and HTTP, in the task bodies"
        return "the rest of the task bodies (their Prefect logging, state and result)"
    if "prefect/task_engine.py" in stack:
        return "Prefect's task engine around the bodies"
    if "prefect/events" in stack:
        return "Prefect's events worker"
    if "prefect/logging" in stack or "logging/__init__" in stack:
        return "logging"
    if "prefect/" in stack:
        return "the rest of Prefect"
    if "_WorkItem.run" in stack:
        return "worker threads (files, images, hashes)"
    if not on_main_thread and "run_forever" in stack:
        return "the status follower's thread (its loop and client)"
    if is_client:
        return "our client and HTTP, on the flow's loop"
    if "pika_tasks" in stack:
        return "the row pipeline and flow wiring"
    return "the event loop itself and the rest"


def by_part(raw: Path, rows: int, rate: int) -> str:
    """Milliseconds of sampled time per row, by part of the process (most first).

    Meant for ``--gil`` profiles, where a sample is time with the interpreter
    lock held: Python's own CPU, which threads cannot share.
    """
    parts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            parts[_part_of(stack)] += int(count)
    per_row = 1000.0 / rate / max(rows, 1)
    during = sum(n for part, n in parts.items() if part != "start-up imports")
    lines = [f"{during * per_row:.2f} ms a row of sampled time (start-up imports apart), by part:"]
    lines += [f"{n * per_row:7.2f} ms  {part}" for part, n in parts.most_common()]
    return "\n".join(lines) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    """Profile a variant and write its summary."""
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("variant", choices=sorted(RUNNERS))
    p.add_argument("--rows", type=int, default=200)
    p.add_argument("--rate", type=int, default=50, help="samples per second")
    p.add_argument("--out", type=Path, default=BenchOptions().results_dir)
    p.add_argument("--idle", action="store_true", help="sample waiting threads too")
    p.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (CPU in Python)"
    )
    p.add_argument("--keep-raw", action="store_true", help="keep py-spy's collapsed stacks")
    args = p.parse_args(argv)
    options = BenchOptions.full(throughput_rows=args.rows)
    work = Path(tempfile.mkdtemp(prefix="pika-bench-profile-"))
    ctx = Context(
        options=options,
        work=work,
        image=make_image(work / "frame.png"),
        tls=self_signed_certificate(work / "tls"),
    )
    raw = work / "profile.txt"
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    try:
        run_variant(
            ctx,
            "profile",
            args.variant,
            emulator={"runners": options.runners, "job_seconds": options.job_seconds, "fps": 4},
            tls=True,
            rows=args.rows,
            concurrency=options.concurrency,
            prefix=[
                py_spy,
                "record",
                "-r",
                str(args.rate),
                "-f",
                "raw",
                "-o",
                str(raw),
                *(["--idle"] if args.idle else []),
                *(["--gil"] if args.gil else []),
                "--",
            ],
        )
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / f"profile-{args.variant}.txt"
        summary = summarise(raw)
        if args.gil:
            summary = by_part(raw, args.rows, args.rate) + summary
        target.write_text(summary)
        if args.keep_raw:
            shutil.copy(raw, args.out / f"profile-{args.variant}.raw.txt")
        print(target.read_text())
    finally:
        ctx.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
