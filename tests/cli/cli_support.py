"""Helpers of the CLI tests: run ``python -m pika_tasks`` against an emulator, write manifests."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from helpers import png_bytes
from PIL import Image

from pika_tasks.pipeline import read_report

KEY = "fal-test-KEY-cli-5b1e"


def cli_env(emu: Any | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI process: the emulator's URLs and a key, the tests' Prefect API.

    Without ``emu`` no key is set. Wide columns keep Rich tables from wrapping.
    """
    from prefect.settings import PREFECT_API_URL

    env = {name: value for name, value in os.environ.items() if name != "FAL_KEY"}
    env.update({"COLUMNS": "250", "PIKA_POLL_INTERVAL": "0.05", "PIKA_MAX_POLL_INTERVAL": "0.2"})
    api_url = PREFECT_API_URL.value()
    if api_url:
        # The session's test server: quicker than a temporary server per process.
        env["PREFECT_API_URL"] = api_url
    if emu is not None:
        env.update({"FAL_KEY": KEY, "PIKA_QUEUE_URL": emu.url, "PIKA_STORAGE_URL": emu.url})
    env.update(extra)
    return env


def pika(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pika_tasks ARGS`` to completion and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "pika_tasks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def explain(done: subprocess.CompletedProcess[str]) -> str:
    """The tail of a process's output, for assertion messages."""
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


def write_manifest(folder: Path, rows: list[str], header: str = "id,image,prompt") -> Path:
    """Write ``manifest.csv`` and one distinct PNG per ``images/{n}.png`` (n < 8) it may name."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for n in range(8):
        (folder / "images" / f"{n}.png").write_bytes(png_bytes(color=(30 * n, 90, 200 - 20 * n)))
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")
    return manifest


def write_noise_png(path: Path, side: int = 1024) -> int:
    """A PNG of random pixels (it does not compress: > 2 MB at 1024 px); returns its size."""
    pixels = np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return len(buffer.getvalue())


def report_lines(out: Path) -> list[dict[str, Any]]:
    """The lines of the newest run report under ``out``."""
    reports = sorted((out / "_runs").glob("*.jsonl"))
    assert reports, f"no run report under {out}"
    # Lines are written as rows finish; read in manifest order, as the report reader does.
    return [row.model_dump() for row in read_report(str(reports[-1])).rows]
